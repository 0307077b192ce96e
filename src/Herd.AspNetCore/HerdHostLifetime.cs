using Microsoft.Extensions.Hosting;

namespace Herd.AspNetCore;

/// <summary>
/// A worker's host lifetime, in place of ConsoleLifetime, which stops the app at once on SIGTERM or SIGINT whatever
/// else handles them. In a worker those belong to the primary (a Ctrl-C or systemd's stop reaches every process of
/// the group, and the primary drains), and the app stops when the primary disconnects it (<see cref="HerdWorkerLifetime"/>).
/// </summary>
internal sealed class HerdHostLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
