using Microsoft.Extensions.Logging;

namespace Herd;

/// <summary>The logger Herd uses until the application gives it one: warnings and errors to stderr.</summary>
internal sealed class StderrLogger : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        Console.Error.WriteLine($"herd[{Environment.ProcessId}] {logLevel}: {formatter(state, exception)}{(exception is null ? "" : Environment.NewLine + exception)}");
    }
}
