using Periscope.Memory;
using Periscope.Qemu;
using Periscope.Targets;

namespace Periscope.Watch;

/// <summary>
/// QMP stop/cont for the sweep, made safe beside a GDB stub whose watchpoints also stop the guest. QEMU has one run
/// state: a watchpoint hit leaves it in "debug", and a QMP `cont` would resume it from there while the watchpoint
/// handler still reads the writer's registers; the handler's GDB `c` would resume a guest the sweep paused to confirm
/// a difference. So both hold <see cref="Gate"/> while the guest must stay stopped, and each resumes only a stop it
/// made: the sweep `cont`s only from "paused" (its own QMP stop), never from "debug" (the stub's).
/// </summary>
public sealed class SharedStopControl(QmpClient qmp) : IVmControl
{
    /// <summary>Held from the sweep's stop to its continue, and by the watchpoint handler while the guest is stopped at a hit.</summary>
    public object Gate { get; } = new();
    private bool _held, _resumeWithCont;

    public IReadOnlyList<CpuState> ReadCpuStates() => qmp.QueryRegisters();

    public bool Stop()
    {
        Monitor.Enter(Gate);
        try
        {
            string status = qmp.QueryStatus();
            if (status == "running")
            {
                qmp.Stop();
                _resumeWithCont = true;
            }
            else if (status == "debug") _resumeWithCont = false; // stopped at a watchpoint: the handler resumes it
            else
            {
                Monitor.Exit(Gate); // paused by someone else: stays paused, nothing to resume
                return false;
            }
            _held = true;
            return true;
        }
        catch
        {
            Monitor.Exit(Gate);
            throw;
        }
    }

    public void Continue()
    {
        if (!_held) return;
        try
        {
            // A watchpoint can hit between the status query and the QMP stop: then the guest is in "debug" and the
            // handler, waiting on the gate, must be the one to resume it.
            if (_resumeWithCont && qmp.QueryStatus() == "paused") qmp.Continue();
        }
        finally
        {
            _held = false;
            Monitor.Exit(Gate);
        }
    }

    public void Dispose() { }
}
