using System.Globalization;
using System.Text;
using Grpc.Core;

namespace Herd.GrpcApp;

/// <summary>
/// A gRPC service without generated code, so that the app and the tests share its two methods: Unary answers the
/// worker's pid, Count streams the pid as many times as asked. The methods' names are the C# methods' names, which is
/// how ASP.NET Core's binder finds them (virtual, and declared on the type that binds them, as generated code does).
/// </summary>
[BindServiceMethod(typeof(PidService), nameof(BindService))]
public class PidService
{
    private static readonly Marshaller<string> s_text = Marshallers.Create(Encoding.UTF8.GetBytes, Encoding.UTF8.GetString);

    public static Method<string, string> UnaryMethod { get; } = new(MethodType.Unary, "herd.Pid", nameof(Unary), s_text, s_text);

    public static Method<string, string> CountMethod { get; } = new(MethodType.ServerStreaming, "herd.Pid", nameof(Count), s_text, s_text);

    public static void BindService(ServiceBinderBase binder, PidService? service)
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddMethod(UnaryMethod, service is null ? null : service.Unary);
        binder.AddMethod(CountMethod, service is null ? null : service.Count);
    }

    public virtual Task<string> Unary(string request, ServerCallContext context) => Task.FromResult(Pid);

    public virtual async Task Count(string request, IServerStreamWriter<string> responses, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(responses);
        for (int i = 0; i < int.Parse(request, CultureInfo.InvariantCulture); i++) await responses.WriteAsync(Pid);
    }

    private static string Pid => Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
}
