using System.Net.Sockets;

namespace Herd.Primary;

/// <summary>What <see cref="PrimaryProtocol"/> asks of the primary it answers for (<see cref="ClusterPrimary"/>): its workers, policy and events.</summary>
internal interface IProtocolHost
{
    /// <summary>The policy new servers take; fixed by the time a worker can ask for one.</summary>
    SchedulingPolicy SchedulingPolicy { get; }

    /// <summary>Someone chose the policy (in code or by <see cref="ClusterPrimary.PolicyVariable"/>). Under the primary's lock.</summary>
    bool PolicyChosen { get; }

    /// <summary>New servers start held (<see cref="ClusterPrimary.HoldServers"/>). Under the primary's lock.</summary>
    bool HoldsServers { get; }

    /// <inheritdoc cref="ClusterPrimary.Stopping"/>
    bool Stopping { get; }

    /// <summary>Every connected worker but <paramref name="worker"/>. Takes the primary's lock.</summary>
    Worker[] ConnectedBut(Worker worker);

    /// <summary>Elects the one worker that runs one-worker jobs again, as one became ready or is leaving. Not under the primary's lock.</summary>
    void Reelect();

    /// <summary>Asks the worker to leave, gracefully (Node's <c>worker.disconnect()</c>).</summary>
    void BeginDisconnect(Worker worker);

    /// <summary>Raises <see cref="ClusterPrimary.Online"/>, in order with the primary's other events.</summary>
    void PostOnline(Worker worker);

    /// <summary>Raises <see cref="ClusterPrimary.Listening"/>, in order with the primary's other events.</summary>
    void PostListening(Worker worker, ListeningAddress address);

    /// <summary>Raises <see cref="ClusterPrimary.Message"/>, in order, unless the worker was cut off before its turn.</summary>
    void PostMessage(Worker worker, ClusterMessage message, int size);

    /// <summary>Raises <see cref="ClusterPrimary.BindFailed"/> (the address as host:port or a path), at once.</summary>
    void OnBindFailed(string address, SocketError error);
}
