using Microsoft.Extensions.Configuration;

namespace Herd.Tests;

/// <summary>The Herd section of an app's configuration.</summary>
public sealed class ConfigurationTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    [Fact]
    public void The_herd_section_sets_the_supervisor()
    {
        var options = Config(("Herd:Workers", "3"), ("Herd:KillTimeout", "00:00:07"), ("Herd:MaxRequests", "1000")).GetSupervisorOptions();
        Assert.Equal(3, options.Workers);
        Assert.Equal(TimeSpan.FromSeconds(7), options.KillTimeout);
        Assert.Equal(1000, options.MaxRequests);
        Assert.Equal(new SupervisorOptions().ReadyTimeout, options.ReadyTimeout);
    }

    [Theory]
    [InlineData("Herd:KillTimout", "00:00:07", "KillTimout")]
    [InlineData("Herd:ReloadBatchSize", "0", "ReloadBatchSize")]
    public void A_bad_key_or_value_names_it(string key, string value, string named)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Config((key, value)).GetSupervisorOptions());
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Herd", "ReloadBatchSize", "0", "Herd:ReloadBatchSize: ReloadBatchSize must be at least 1.")]
    [InlineData("App:Cluster", "MaxWorkers", "0", "App:Cluster:MaxWorkers: MaxWorkers must be at least 1.")]
    [InlineData("App:Cluster", "Workers", "-1", "App:Cluster:Workers: Workers cannot be negative.")]
    [InlineData("Herd", "DrainDelay", "-00:00:01", "Herd:DrainDelay: DrainDelay cannot be negative.")]
    public void A_value_out_of_range_is_named_by_its_configuration_path(string section, string key, string value, string message)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Config(($"{section}:{key}", value)).GetSupervisorOptions(section));
        Assert.Equal(message, error.Message);
    }
}
