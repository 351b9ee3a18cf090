using System.Collections.Concurrent;
using System.Diagnostics;
using Periscope.Integrity.Evidence;
using Periscope.Journal;
using Periscope.Linux;
using Periscope.Qemu.Gdb;
using Periscope.Targets;
using Periscope.X86;

namespace Periscope.Watch;

/// <summary>
/// `watch --protect`: write watchpoints (GDB Z2) on protected kernel objects through QEMU's GDB stub, used read-only.
/// A hit stops the whole VM; the handler, holding the <see cref="SharedStopControl.Gate"/> the sweep also holds while
/// it pauses, reads the writer's registers (`g`), the object's bytes and the current task, lets the guest continue
/// (`c`) and only then names the writer and journals the write, so the guest is stopped for a few stub round trips.
/// It runs on its own thread with its own attach of the RAM file (a kernel model is not shared between threads).
/// QEMU names the watchpoint (its start), not the written address, so the bytes written are found by comparing the
/// object with the copy taken when it was armed (and after each hit).
/// </summary>
public sealed class ProtectedWriteMonitor : IDisposable
{
    private static readonly TimeSpan StubTimeout = TimeSpan.FromSeconds(10);
    private readonly WatchTarget _spec;
    private readonly Target _target;
    private readonly LinuxKernel _kernel;
    private readonly GdbRemoteClient _gdb;
    private readonly object _gate;
    private readonly WatchRecorder _recorder;
    private readonly TextWriter _log;
    private readonly IReadOnlyList<ProtectedObject> _objects;
    private readonly Dictionary<ProtectedObject, byte[]> _shadow = [];
    private readonly ulong _currentTaskPerCpu;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private EvidenceIndex _evidence;
    private long _windowStart = Stopwatch.GetTimestamp();
    private int _inWindow, _suppressed;

    /// <summary>Journal sequence of the last protected write per location, for the sweep's finding of the same change.</summary>
    public ConcurrentDictionary<string, long> WritesByLocation { get; } = new(StringComparer.Ordinal);
    public IReadOnlyList<ProtectedObject> Objects => _objects;
    /// <summary>Watchpoint stops handled (each one a stop of the guest).</summary>
    public long Hits => Interlocked.Read(ref _hits);
    private long _hits;
    /// <summary>Total time the guest was held stopped by this handler.</summary>
    public TimeSpan StoppedTime => TimeSpan.FromTicks(Interlocked.Read(ref _stoppedTicks));
    private long _stoppedTicks;

    private ProtectedWriteMonitor(WatchTarget spec, Target target, GdbRemoteClient gdb, object gate, IReadOnlyList<ProtectedObject> objects,
        WatchRecorder recorder, TextWriter log)
    {
        _spec = spec;
        _target = target;
        _kernel = target.Kernel;
        _gdb = gdb;
        _gate = gate;
        _objects = objects;
        _recorder = recorder;
        _log = log;
        _currentTaskPerCpu = CurrentTaskPerCpuOffset(_kernel);
        _evidence = new EvidenceIndex(EvidenceCollector.Collect(_kernel));
        _thread = new Thread(Run) { IsBackground = true, Name = $"watch {spec.Name} watchpoints" };
    }

    /// <summary>
    /// Attaches to the RAM file a second time, finds the objects, connects to the stub (QEMU stops the guest when a
    /// client connects), arms one write watchpoint per object, copies the objects while the guest is stopped and lets
    /// the guest run again if it was running (or stopped at an earlier client's watchpoint) before.
    /// </summary>
    public static ProtectedWriteMonitor Start(WatchTarget spec, IReadOnlyList<ProtectedObjectKind> kinds, string statusBefore, object gate,
        WatchOptions options, WatchRecorder recorder, TextWriter log, List<string> missing)
    {
        string socket = spec.GdbSocket ?? throw new InvalidOperationException($"[{spec.Name}] --protect needs the guest's GDB stub socket");
        var target = Target.AttachLive(spec.RamFile, control: null, new TargetOptions { Limits = options.Limits });
        GdbRemoteClient? gdb = null;
        try
        {
            var objects = ProtectedObjects.Resolve(target.Kernel, kinds, missing);
            if (objects.Count == 0) throw new InvalidOperationException($"none of the protected objects was found ({string.Join("; ", missing)})");
            gdb = GdbRemoteClient.ConnectUnix(socket, StubTimeout, options.Limits.MaxGdbPacketBytes);
            var monitor = new ProtectedWriteMonitor(spec, target, gdb, gate, objects, recorder, log);
            lock (gate)
            {
                foreach (var o in objects)
                {
                    // A watch that died without detaching left its watchpoints in QEMU: remove them, or each hit would
                    // stop the guest twice. "Not found" (an error reply) is the normal case.
                    try { gdb.RemoveWatchpoint(WatchpointKind.Write, o.Start, o.Length); } catch (GdbProtocolException) { }
                    gdb.InsertWatchpoint(WatchpointKind.Write, o.Start, o.Length);
                    monitor._shadow[o] = monitor.ReadObject(o);
                }
                if (statusBefore is "running" or "debug") gdb.Continue();
            }
            monitor._thread.Start();
            return monitor;
        }
        catch
        {
            gdb?.Dispose();
            target.Dispose();
            throw;
        }
    }

    private byte[] ReadObject(ProtectedObject o)
    {
        var bytes = new byte[o.Length];
        _kernel.KernelSpace.Read(o.Start, bytes);
        return bytes;
    }

    private void Run()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var stop = _gdb.WaitForStop(TimeSpan.FromMilliseconds(250));
                // A stop that is not a write watchpoint is QEMU announcing a QMP stop (the sweep's, or an operator's):
                // whoever stopped the guest resumes it.
                if (stop is { Watch: WatchpointKind.Write, WatchAddress: { } address }) OnHit(stop, address);
            }
        }
        catch (Exception e) when (e is IOException or TimeoutException or GdbProtocolException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            if (!_stop.IsCancellationRequested) _log.WriteLine($"periscope watch: [{_spec.Name}] watchpoints stopped: {e.Message}");
        }
    }

    private readonly record struct Stopped(GdbX86_64Registers Registers, byte[] Now, ulong Task, int Pid, int Tgid, string? Comm, ulong StackTop, TimeSpan Held);

    private void OnHit(GdbStopReply stop, ulong address)
    {
        var o = _objects.FirstOrDefault(x => x.Start == address) ?? _objects.FirstOrDefault(x => x.Contains(address));
        if (o is null || !TakeBudget())
        {
            lock (_gate) _gdb.Continue();
            return;
        }
        Interlocked.Increment(ref _hits);
        Stopped s;
        long started = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (stop.Thread is { } thread) _gdb.SelectThread(thread);
            var regs = GdbX86_64Registers.Parse(_gdb.ReadRegisters());
            var now = ReadObject(o);
            var (task, pid, tgid, comm) = CurrentTask(regs);
            _kernel.KernelSpace.TryReadUInt64(regs.Rsp, out ulong stackTop);
            _gdb.Continue();
            s = new Stopped(regs, now, task, pid, tgid, comm, stackTop, Stopwatch.GetElapsedTime(started));
            Interlocked.Add(ref _stoppedTicks, s.Held.Ticks);
            // Journalled with the gate still held (the guest already runs): a sweep confirming the same change under
            // its pause then always finds this record and links its finding to it.
            Record(o, stop, s);
        }
    }

    /// <summary>At most MaxProtectedWritesPerSecond handled stops a second; the rest only continue the guest and are counted.</summary>
    private bool TakeBudget()
    {
        if (Stopwatch.GetElapsedTime(_windowStart) >= TimeSpan.FromSeconds(1)) { _windowStart = Stopwatch.GetTimestamp(); _inWindow = 0; }
        if (_inWindow >= _kernel.Limits.MaxProtectedWritesPerSecond) { _suppressed++; return false; }
        _inWindow++;
        return true;
    }

    private (ulong Task, int Pid, int Tgid, string? Comm) CurrentTask(GdbX86_64Registers regs)
    {
        // In the kernel GS holds the per-CPU base; a vCPU stopped after swapgs on the way out has it in KERNEL_GS_BASE.
        var mode = _kernel.KernelSpace.Mode;
        ulong perCpu = mode.IsKernelAddress(regs.GsBase) ? regs.GsBase : mode.IsKernelAddress(regs.KernelGsBase) ? regs.KernelGsBase : 0;
        if (perCpu == 0 || !_kernel.KernelSpace.TryReadUInt64(perCpu + _currentTaskPerCpu, out ulong task) || !mode.IsKernelAddress(task)) return (0, 0, 0, null);
        var t = _kernel.Offsets.Task;
        Span<byte> word = stackalloc byte[4];
        int pid = _kernel.KernelSpace.Read(task + (ulong)t.Pid, word) == 4 ? System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(word) : 0;
        int tgid = _kernel.KernelSpace.Read(task + (ulong)t.Tgid, word) == 4 ? System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(word) : 0;
        Span<byte> commBytes = stackalloc byte[Math.Clamp(t.CommSize, 1, 64)];
        string? comm = null;
        if (_kernel.KernelSpace.Read(task + (ulong)t.Comm, commBytes) == commBytes.Length)
        {
            int nul = commBytes.IndexOf((byte)0);
            comm = System.Text.Encoding.UTF8.GetString(nul < 0 ? commBytes : commBytes[..nul]);
        }
        return (task, pid, tgid, comm);
    }

    /// <summary>Per-CPU offset of `current`: current_task (up to 6.1) or pcpu_hot.current_task (6.2+). The same rule
    /// as the tracer's TaskResolver (Periscope.Events), which watch does not depend on.</summary>
    private static ulong CurrentTaskPerCpuOffset(LinuxKernel kernel)
    {
        if (kernel.Symbols.TryGetAddress("current_task", out ulong current)) return current;
        if (kernel.Symbols.TryGetAddress("pcpu_hot", out ulong hot) && kernel.Btf?.FindStruct("pcpu_hot") is { } s && s.HasMember("current_task"))
            return hot + (ulong)s.Offset("current_task");
        return ulong.MaxValue / 2; // unknown: reads fail and the task is reported as unknown
    }

    /// <summary>A changed entry: where, and its bytes before and after.</summary>
    private sealed record Change(string Location, ulong Address, byte[] Old, byte[] New);

    private List<Change> Diff(ProtectedObject o, byte[] before, byte[] now)
    {
        var changes = new List<Change>();
        int entry = o.EntrySize;
        for (int i = 0; i < now.Length;)
        {
            if (before[i] == now[i]) { i++; continue; }
            int start = i / entry * entry;
            int end = Math.Min(now.Length, (i / entry + 1) * entry);
            // Code: one run of changed bytes (gaps of up to 8 equal bytes joined) is one change.
            if (entry == 1)
            {
                end = i + 1;
                for (int j = end; j < now.Length && j < end + 8; j++) if (before[j] != now[j]) end = j + 1;
            }
            ulong va = o.Start + (ulong)start;
            changes.Add(new Change(o.Location(va), va, before[start..end], now[start..end]));
            i = end;
            if (changes.Count == 64) break; // a wholesale rewrite: the first 64 are named, the count says the rest
        }
        return changes;
    }

    private void Record(ProtectedObject o, GdbStopReply stop, Stopped s)
    {
        var before = _shadow[o];
        var changes = Diff(o, before, s.Now);
        _shadow[o] = s.Now;
        var writer = Resolve(s.Registers.Rip);
        var stackTop = _kernel.KernelSpace.Mode.IsKernelAddress(s.StackTop) ? _evidence.Resolve(s.StackTop) : null;
        string what = changes.Count == 0 ? $"{o.Name}: written, no byte changed"
            : string.Join("; ", changes.Take(4).Select(c => $"{c.Location} at 0x{c.Address:x}: {Convert.ToHexStringLower(c.Old)} -> {Convert.ToHexStringLower(c.New)}"))
              + (changes.Count > 4 ? $"; and {changes.Count - 4} more" : "");
        string task = s.Task == 0 ? "task unknown" : $"task {s.Pid} ({s.Comm ?? "?"})";
        string line = $"write to protected {what}; by RIP 0x{s.Registers.Rip:x} ({writer.Description}), {task}; guest held {s.Held.TotalMilliseconds:0.#} ms"
                      + (_suppressed > 0 ? $"; {_suppressed} more stops not recorded (over IntrospectionLimits.MaxProtectedWritesPerSecond)" : "");
        var record = _recorder.Record(_spec.Name, JournalRecordKind.ProtectedWrite, line, w =>
        {
            w.WriteString("object", o.Name);
            w.WriteString("objectKind", o.Kind.ToString());
            w.WriteString("watchpoint", $"0x{o.Start:x}");
            if (changes.Count > 0)
            {
                w.WriteString("location", changes[0].Location);
                w.WriteString("address", $"0x{changes[0].Address:x}");
            }
            w.WriteStartArray("changes");
            foreach (var c in changes)
            {
                w.WriteStartObject();
                w.WriteString("location", c.Location);
                w.WriteString("address", $"0x{c.Address:x}");
                w.WriteString("old", Convert.ToHexStringLower(c.Old));
                w.WriteString("new", Convert.ToHexStringLower(c.New));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("rip", $"0x{s.Registers.Rip:x}");
            w.WriteString("ripOwner", writer.Owner.ToString());
            w.WriteString("ripModule", writer.Module?.Name);
            w.WriteString("ripDescription", writer.Description);
            w.WriteString("stackTop", $"0x{s.StackTop:x}");
            if (stackTop is not null) w.WriteString("stackTopDescription", stackTop.Description);
            w.WriteString("vcpuThread", stop.Thread);
            w.WriteString("task", $"0x{s.Task:x}");
            w.WriteNumber("pid", s.Pid);
            w.WriteNumber("tgid", s.Tgid);
            w.WriteString("comm", s.Comm);
            w.WriteNumber("heldMicros", (long)s.Held.TotalMicroseconds);
            w.WriteNumber("suppressed", _suppressed);
        });
        _suppressed = 0;
        foreach (var c in changes) WritesByLocation[c.Location] = record.Sequence;
    }

    /// <summary>Names an address with the evidence index taken at arming (hidden modules included); an address it
    /// does not place (a module loaded since) makes it collect the evidence again, once per hit.</summary>
    private ControlTarget Resolve(ulong va)
    {
        var target = _evidence.Resolve(va);
        if (target.Owner != CodeOwnerKind.Unowned) return target;
        _kernel.Refresh();
        _evidence = new EvidenceIndex(EvidenceCollector.Collect(_kernel));
        return _evidence.Resolve(va);
    }

    /// <summary>Stops the handler, then removes the watchpoints and lets the guest go (`D`) if QEMU is still there.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        if (_thread.IsAlive) _thread.Join(TimeSpan.FromSeconds(15));
        try { lock (_gate) _gdb.Detach(); }
        catch (Exception e) when (e is IOException or TimeoutException or GdbProtocolException or ObjectDisposedException or System.Net.Sockets.SocketException) { }
        _gdb.Dispose();
        _target.Dispose();
        _stop.Dispose();
    }
}
