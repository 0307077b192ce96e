// A gRPC app that knows nothing of Herd: herd run clusters it as any other.
using Herd.GrpcApp;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddGrpc();
var app = builder.Build();
app.MapGrpcService<PidService>();
app.Run();
