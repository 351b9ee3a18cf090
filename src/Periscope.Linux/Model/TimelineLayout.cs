using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>Where a timekeeper is and where its tkr_mono.base and offs_real are (offsets from its start).</summary>
public sealed record TimekeeperLocation(ulong Address, int MonoBase, int OffsReal, string How);

/// <summary>
/// What `timeline` reads, from BTF when the kernel has it, else inferred from the data when timeline asks (the rules in
/// <see cref="TimelineRules"/>; nothing else needs them, so attach does not pay for them): task_struct.start_time, and
/// the timekeeper. With BTF the timekeeper is the shadow timekeeper (before 6.13 the static <c>shadow_timekeeper</c>,
/// since then a member of struct tk_data in <c>tk_core</c> or <c>timekeeper_data[TIMEKEEPER_CORE]</c>); without BTF it is
/// <c>tk_core.timekeeper</c> (tk_core by kallsyms or by ktime_get's code), which timekeeping_advance() leaves equal to
/// the shadow copy at every update. A member not found is said (<see cref="StartTimeMissing"/>, <see cref="TimekeeperMissing"/>).
/// </summary>
public sealed class TimelineLayout
{
    public int? StartTime { get; private init; }
    public string? StartTimeMissing { get; private init; }
    public TimekeeperLocation? Timekeeper { get; private init; }
    public string? TimekeeperMissing { get; private init; }
    /// <summary>How start_time was inferred (candidates and rule); null with BTF.</summary>
    public StartTimeDecision? StartTimeEvidence { get; private init; }

    public static TimelineLayout For(LinuxKernel kernel)
    {
        var layouts = kernel.Layouts;
        TimekeeperLocation? tk = layouts.FromBtf ? BtfTimekeeper(kernel, out string? tkWhy) : InferredTimekeeper(kernel, out tkWhy);
        if (layouts.FromBtf)
        {
            bool has = layouts.TryOffset("task_struct", "start_time", out int start);
            return new TimelineLayout
            {
                StartTime = has ? start : null, StartTimeMissing = has ? null : "BTF has no task_struct.start_time",
                Timekeeper = tk, TimekeeperMissing = tkWhy,
            };
        }
        var decision = InferStartTime(kernel, tk);
        return new TimelineLayout
        {
            StartTime = decision.StartTime,
            StartTimeMissing = decision.StartTime is null ? $"task_struct.start_time not inferred: {decision.Rule}{(decision.Candidates.Count > 0 ? $" (candidates: {string.Join(", ", decision.Candidates.Select(c => $"0x{c:x}"))})" : "")}" : null,
            StartTimeEvidence = decision,
            Timekeeper = tk, TimekeeperMissing = tkWhy,
        };
    }

    private static TimekeeperLocation? BtfTimekeeper(LinuxKernel kernel, out string? why)
    {
        why = null;
        var l = kernel.Layouts;
        if (!l.TryOffset("timekeeper", "offs_real", out int offsReal) || !l.TryOffset("timekeeper", "tkr_mono.base", out int monoBase))
        {
            why = "BTF has no timekeeper.offs_real or tkr_mono.base";
            return null;
        }
        if (kernel.Symbols.TryGetAddress("shadow_timekeeper", out ulong shadow)) return new(shadow, monoBase, offsReal, "shadow_timekeeper");
        if (!l.TryOffset("tk_data", "shadow_timekeeper", out int inData))
        {
            why = "kallsyms has no shadow_timekeeper and BTF no struct tk_data";
            return null;
        }
        if (kernel.Symbols.TryGetAddress("tk_core", out ulong core)) return new(core + (ulong)inData, monoBase, offsReal, "tk_core.shadow_timekeeper");
        if (kernel.Symbols.TryGetAddress("timekeeper_data", out ulong data) && l.TryStructSize("tk_data", out int size))
        {
            // TIMEKEEPER_CORE indexes timekeeper_data (enum timekeeper_ids); it is 0 where the enum is not in BTF.
            long index = l.Btf!.TryFindEnumerator("TIMEKEEPER_CORE", out long id) ? id : 0;
            if (index is < 0 or > 64) { why = $"TIMEKEEPER_CORE is {index}"; return null; }
            return new(data + (ulong)(index * size) + (ulong)inData, monoBase, offsReal, "timekeeper_data[TIMEKEEPER_CORE].shadow_timekeeper");
        }
        why = "kallsyms has neither shadow_timekeeper, tk_core nor timekeeper_data";
        return null;
    }

    private static TimekeeperLocation? InferredTimekeeper(LinuxKernel kernel, out string? why)
    {
        if (!kernel.DataAddresses.TryGet("tk_core", out var core))
        {
            why = "tk_core not found (not in kallsyms, and not by ktime_get's code)";
            return null;
        }
        var window = new byte[TimelineRules.TimekeeperWindow];
        if (kernel.Reader.Read(core.Address, window) != window.Length)
        {
            why = $"tk_core at 0x{core.Address:x} is unreadable";
            return null;
        }
        if (TimelineRules.InferTimekeeper(window, kernel.Reader.PointerSize, kernel.Reader.IsKernelPointer, out string rejected) is not { } d)
        {
            why = $"tk_core at 0x{core.Address:x} ({core.How}): {rejected}";
            return null;
        }
        why = null;
        return new TimekeeperLocation(core.Address + (ulong)d.TimekeeperInCore, d.MonoBase, d.OffsReal, $"tk_core.timekeeper ({core.How}; {d.Rule})");
    }

    /// <summary>The task_structs of the listed tasks and threads (at most MaxTimelineInferenceTasks), compared by
    /// <see cref="TimelineRules.InferStartTime"/>; "now" is the timekeeper's tkr_mono.base plus an hour of slack (tasks
    /// start between timekeeping updates), or unbounded without a timekeeper.</summary>
    private static StartTimeDecision InferStartTime(LinuxKernel kernel, TimekeeperLocation? tk)
    {
        var r = kernel.Reader;
        int bytes = kernel.Layouts.TryStructSize("task_struct", out int size) && size > 0 ? Math.Min(size, kernel.Limits.MaxInferenceTaskBytes) : kernel.Limits.MaxInferenceTaskBytes;
        byte[]? Read(ulong task)
        {
            var w = new byte[bytes];
            return r.Read(task, w) == w.Length ? w : null;
        }
        var windows = new List<TaskWindow>();
        byte[]? idle = null;
        foreach (var t in kernel.Tasks.SelectMany(t => t.Threads.Select(th => (th.Address, Pid: th.Tid)).Prepend((t.Address, t.Pid))).DistinctBy(t => t.Address))
        {
            if (t.Pid == 0) { idle ??= Read(t.Address); continue; }
            if (windows.Count >= kernel.Limits.MaxTimelineInferenceTasks) break;
            if (Read(t.Address) is { } w) windows.Add(new TaskWindow(t.Pid, w));
        }
        ulong bound = ulong.MaxValue >> 1;
        if (tk is not null && r.TryU64(tk.Address + (ulong)tk.MonoBase, out ulong monoBase) && monoBase < bound) bound = monoBase + 3_600UL * 1_000_000_000;
        var o = kernel.Offsets.Task;
        return TimelineRules.InferStartTime(windows, idle, r.PointerSize, bound, [(o.Pid, 4), (o.Tgid, 4)]);
    }
}
