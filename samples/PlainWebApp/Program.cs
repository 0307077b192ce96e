// An ordinary minimal-API app that has never heard of Herd: `herd run -i 2 -- dotnet PlainWebApp.dll` clusters it.
using System.Globalization;

var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();
app.MapGet("/", () => "hello world\n");
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
app.Run();
