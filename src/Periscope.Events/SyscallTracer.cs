using Periscope.Events.Ring;
using Periscope.Events.Syscalls;
using Periscope.Events.Tasks;
using Periscope.Linux;
using Periscope.Memory;
using Periscope.TraceRing;

namespace Periscope.Events;

/// <summary>One syscall of the guest: who made it, what it was called with, and what it returned.</summary>
/// <param name="Seq">The entry record's sequence number (per vCPU).</param>
/// <param name="Timestamp">Host monotonic time of the entry (Stopwatch ticks).</param>
/// <param name="Task">The caller (task_struct address, ids and comm at entry); null when it could not be told.</param>
/// <param name="Return">The return value; null when the call has not returned (exit, exit_group, or the trace ended).</param>
/// <param name="ExitTask">The caller as it was when the call returned (after a successful execve: the new program).</param>
public sealed record SyscallEvent(ulong Seq, uint Vcpu, long Timestamp, TracedTask? Task, long Number, string? Name,
    SyscallArguments Raw, IReadOnlyList<DecodedArgument> Arguments, long? Return, TracedTask? ExitTask)
{
    public string DisplayName => Name ?? $"syscall_{Number}";
    public string ReturnText => Return is { } r ? SyscallFormatter.ReturnText(Name, r) : "?";
}

/// <summary>What the tracer saw besides the events: ring totals and the events it could not complete.</summary>
/// <param name="UnknownTask">Events whose calling task could not be established (not shown: no pid to filter on).</param>
/// <param name="UnmatchedExits">Returns without an entry (the entry was lost or came before the trace began).</param>
public sealed record TraceTotals(RingTotals Ring, ulong Events, ulong UnknownTask, ulong UnmatchedExits);

/// <summary>
/// Turns the plugin's records into syscall events: pairs each return with its entry (by the pt_regs address, which is
/// unique per task while the call runs), names calls through the guest's own sys_call_table, finds the calling task
/// from the vCPU's per-CPU `current`, and decodes arguments from the caller's memory at once, while they are fresh.
/// </summary>
public sealed class SyscallTracer
{
    private readonly TraceRingReader _ring;
    private readonly PtRegsLayout _regs;
    private readonly TaskResolver _tasks;
    private readonly SyscallFormatter _formatter;
    private readonly IntrospectionLimits _limits;
    private readonly Dictionary<ulong, SyscallEvent> _inFlight = [];
    private readonly HashSet<ulong> _filteredInFlight = [];
    private readonly RingTotals _atStart;
    private readonly ulong _pendingAtStart;
    private ulong _events, _unknownTask, _unmatchedExits;
    private Func<TracedTask, bool> _filter = _ => true;
    private Func<string?, bool> _calls = _ => true;
    private Action<SyscallEvent> _sink = _ => { };

    /// <param name="backlog">Also decode the records already waiting in the ring (events from before we attached, whose
    /// calling task may no longer be known); by default the trace starts now.</param>
    public SyscallTracer(TraceRingReader ring, LinuxKernel kernel, IntrospectionLimits limits, bool backlog = false)
    {
        _ring = ring;
        _limits = limits;
        _regs = PtRegsLayout.FromBtf(kernel.Btf ?? throw new InvalidOperationException("tracing needs the kernel's BTF (struct pt_regs)"));
        Names = SyscallTable.Read(kernel, limits);
        _tasks = new TaskResolver(kernel, limits, _regs.Size);
        _formatter = new SyscallFormatter(_tasks, limits);
        if (kernel.Layout.PageOffsetBase is { } directMap)
        {
            var t = kernel.Offsets.Task;
            ring.TellTaskIds(t.Pid, t.Tgid, t.Comm);
            ring.TellCurrentTask(_tasks.CurrentTaskPerCpuOffset, directMap);
            var capture = new byte[Math.Min(Names.Count, TraceRingLayout.CaptureTableEntries)];
            for (int nr = 0; nr < capture.Length; nr++) capture[nr] = SyscallFormatter.CaptureCode(Names.Name(nr));
            ring.TellArgumentCapture(kernel.Offsets.Task.Mm, kernel.Offsets.Mm.Pgd, (int)kernel.Layout.Mode, _regs.OrigAx, [.. _regs.ArgumentOffsets], capture);
        }
        if (!backlog) ring.SkipWaiting();
        _atStart = ring.Totals;
        _pendingAtStart = ring.Pending;
    }

    /// <summary>Records read in one go: tasks are read once per batch, and output is written once per batch.</summary>
    public const int BatchRecords = 4096;

    public SyscallTable Names { get; }
    public TaskResolver Tasks => _tasks;
    public SyscallFormatter Formatter => _formatter;

    /// <summary>Only events of tasks this accepts are decoded and delivered.</summary>
    public Func<TracedTask, bool> Filter { set => _filter = value; }

    /// <summary>Only calls whose name this accepts are decoded and delivered (e.g. process starts and ends).</summary>
    public Func<string?, bool> Calls { set => _calls = value; }

    /// <summary>Counts since this tracer attached: records already waiting in the ring count as produced now.</summary>
    public TraceTotals Totals
    {
        get
        {
            var now = _ring.Totals;
            ulong produced = now.Produced - _atStart.Produced + _pendingAtStart;
            return new TraceTotals(new RingTotals(produced, now.Delivered, now.Dropped - _atStart.Dropped, now.Gaps), _events, _unknownTask, _unmatchedExits);
        }
    }

    /// <summary>
    /// Delivers events to <paramref name="sink"/> until <paramref name="stop"/> says so, QEMU exits, or
    /// <paramref name="cancel"/> fires. Polls the ring, sleeping 1 ms when it is empty: a reader spinning on QEMU's
    /// cache lines slows the guest (measured 4×, engineering.md).
    /// </summary>
    /// <param name="batchDone">Called after each batch of records (at most <see cref="BatchRecords"/>): the moment to
    /// write out what the sink collected.</param>
    public void Run(Action<SyscallEvent> sink, Func<bool> stop, CancellationToken cancel, Action? batchDone = null)
    {
        _sink = sink;
        while (!cancel.IsCancellationRequested && !stop())
        {
            int n = _ring.Drain(OnRecord, BatchRecords);
            batchDone?.Invoke();
            if (n > 0) { _tasks.FlushUserSpaces(); continue; }
            var state = _ring.State;
            if (state is PluginState.Exited or PluginState.Uninstalled) break;
            Thread.Sleep(1);
        }
    }

    /// <summary>Reads what is waiting now and returns (for tests and one-shot use).</summary>
    public int DrainOnce(Action<SyscallEvent> sink)
    {
        _sink = sink;
        int n = _ring.Drain(OnRecord);
        _tasks.FlushUserSpaces();
        return n;
    }

    /// <summary>Calls still in flight when the trace stops (shown as unfinished).</summary>
    public IReadOnlyList<SyscallEvent> Unfinished => [.. _inFlight.Values.OrderBy(e => e.Timestamp)];

    private void OnRecord(in RawTraceRecord record)
    {
        var regs = record.Regs;
        if (record.Kind == RecordKind.SyscallEntry)
        {
            if (regs.IsEmpty) { _unknownTask++; return; }
            long nr = _regs.Number(regs);
            TracedTask? task = Caller(record);
            if (task is null) { _unknownTask++; return; }
            _filteredInFlight.Remove(record.PtRegs);
            if (!_calls(Names.Name(nr)) || !_filter(task))
            {
                if (_filteredInFlight.Count >= _limits.MaxTracedTasks) _filteredInFlight.Clear();
                _filteredInFlight.Add(record.PtRegs);
                return;
            }
            string? name = Names.Name(nr);
            var args = _regs.Arguments(regs);
            var ev = new SyscallEvent(record.Seq, record.Vcpu, record.Timestamp, task, nr, name, args, _formatter.Arguments(name, args, task.Mm, record.CapturedArgument, record.CapturedTruncated), null, null);
            _events++;
            if (name is "exit" or "exit_group")
            {
                _sink(ev);   // never returns
                return;
            }
            if (_inFlight.Remove(record.PtRegs, out var previous)) _sink(previous);   // its return was lost
            if (_inFlight.Count >= _limits.MaxTracedTasks) FlushOldest();
            _inFlight[record.PtRegs] = ev;
        }
        else if (record.Kind is RecordKind.SyscallExit or RecordKind.ReturnToUser)
        {
            // The shared return to user mode also returns from interrupts and exceptions: only a return whose pt_regs
            // hold a call in flight is a syscall's. pt_regs are unique per task while it is in the kernel.
            if (_filteredInFlight.Remove(record.PtRegs)) return;
            if (!_inFlight.Remove(record.PtRegs, out var entry))
            {
                if (record.Kind == RecordKind.SyscallExit) _unmatchedExits++;
                return;
            }
            if (regs.IsEmpty) { _sink(entry); return; }
            bool exec = entry.Name is "execve" or "execveat";
            if (exec) _tasks.Forget(record.Current);   // a new program: new mm and name
            TracedTask? now = Caller(record) ?? entry.Task;
            long ret = _regs.Return(regs);
            var done = entry with { Return = ret, ExitTask = now };
            if (exec) done = done with { Arguments = ExecArgv(entry, ret, now) };
            _sink(done);
        }
    }

    /// <summary>The task that made the record's event. The plugin's `current` (from CPU state at the event) with the
    /// ids and name it copied then, when it did; otherwise the task found from the vCPU and the stack now.</summary>
    private TracedTask? Caller(in RawTraceRecord record)
    {
        if (record.HasIds && record.Current != 0)
            return _tasks.DescribeAtEvent(record.Current, record.Pid, record.Tgid, record.Comm);
        ulong taskAddress = _tasks.Resolve(record.Current, record.GsBase, record.PtRegs, out bool exited);
        return taskAddress == 0 ? null : _tasks.Describe(taskAddress, exited);
    }

    /// <summary>
    /// execve's argv, known only at its return: the caller's array lives in the memory the exec replaces, so a consumer
    /// that reads it late (any time after the call entered) would read the new program's memory. After a successful
    /// exec it is what the kernel copied onto the new program's stack (mm->arg_start..arg_end); after a failed one the
    /// caller's memory is still its own.
    /// </summary>
    private IReadOnlyList<DecodedArgument> ExecArgv(SyscallEvent entry, long ret, TracedTask? now)
    {
        IReadOnlyList<string>? argv = null;
        int at = -1;
        for (int i = 0; i < entry.Arguments.Count; i++) if (entry.Arguments[i].Kind == ArgumentKind.Argv) at = i;
        if (at < 0) return entry.Arguments;
        ulong array = entry.Arguments[at].Raw;
        if (ret == 0 && now is { Mm: not 0 }) argv = _tasks.ReadArgvFromMm(now.Mm);
        else if (ret < 0 && entry.Task is { Mm: not 0 } caller) argv = _formatter.ReadArgv(caller.Mm, array);
        if (argv is null) return entry.Arguments;
        var list = entry.Arguments.ToArray();
        list[at] = SyscallFormatter.ArgvArgument(array, argv);
        return list;
    }

    private void FlushOldest()
    {
        foreach (var e in _inFlight.Values.OrderBy(e => e.Timestamp).Take(_inFlight.Count / 2).ToList())
        {
            _inFlight.Remove(_inFlight.First(kv => ReferenceEquals(kv.Value, e)).Key);
            _sink(e);
        }
    }
}
