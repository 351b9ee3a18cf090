using Periscope.Memory;
using Periscope.Qemu;

namespace Periscope.Targets;

/// <summary>Live-guest control through QMP: registers, stop and cont. No command that writes guest state is used.</summary>
public sealed class QmpVmControl(QmpClient client, bool ownsClient = true) : IVmControl
{
    public static QmpVmControl Connect(string socketPath) => new(QmpClient.Connect(socketPath));

    public IReadOnlyList<CpuState> ReadCpuStates() => client.QueryRegisters();
    public bool Stop()
    {
        if (client.QueryStatus() != "running") return false;
        client.Stop();
        return true;
    }

    public void Continue() => client.Continue();
    public void Dispose() { if (ownsClient) client.Dispose(); }
}
