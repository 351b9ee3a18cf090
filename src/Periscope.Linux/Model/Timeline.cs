namespace Periscope.Linux.Model;

/// <summary>What happened, for <see cref="TimelineEvent"/>.</summary>
public enum TimelineEventKind
{
    /// <summary>CLOCK_MONOTONIC 0: the kernel started timekeeping.</summary>
    Boot,
    /// <summary>A process (thread-group leader or kernel thread) started: task->start_time.</summary>
    ProcessStart,
    /// <summary>A kernel log record (printk's local_clock timestamp, close to CLOCK_MONOTONIC).</summary>
    KernelLog,
    /// <summary>The timekeeper's last update: about when the memory was read or dumped.</summary>
    Snapshot,
}

/// <summary>One timestamped event: nanoseconds since boot (CLOCK_MONOTONIC) and, when the timekeeper could be read, the
/// wall-clock time (UTC as the guest's clock had it).</summary>
public sealed record TimelineEvent(ulong MonotonicNs, DateTimeOffset? Wall, TimelineEventKind Kind, int? Pid, string Description);

/// <summary>
/// Everything the kernel timestamps, in one list sorted by time: boot, each process's start (task->start_time), the
/// kernel log's records (on request), and the timekeeper's last update. Wall-clock times come from the timekeeper's
/// offs_real (CLOCK_REALTIME − CLOCK_MONOTONIC). Where the members and the timekeeper are comes from
/// <see cref="TimelineLayout"/> (BTF, else inferred from the data); the reads are the same either way.
/// Modules are not timestamped by the kernel (struct module has no load time) and so are not listed.
/// </summary>
public sealed class TimelineReader(LinuxKernel kernel)
{
    public IReadOnlyList<TimelineEvent> Read(bool withKernelLog)
    {
        var r = kernel.Reader;
        var layout = TimelineLayout.For(kernel);
        long? offsReal = null;
        ulong? snapshot = null;
        if (layout.Timekeeper is { } tk)
        {
            if (r.TryU64(tk.Address + (ulong)tk.OffsReal, out ulong off) && r.TryU64(tk.Address + (ulong)tk.MonoBase, out ulong monoBase))
                (offsReal, snapshot) = ((long)off, monoBase);
            else kernel.Diagnostics.ReportIncomplete("timeline", $"timekeeper at 0x{tk.Address:x} ({tk.How}) is unreadable", tk.Address);
        }
        else kernel.Diagnostics.Report("timeline", $"{layout.TimekeeperMissing}: events carry no wall-clock time");
        DateTimeOffset? Wall(ulong monotonic) =>
            offsReal is { } off && off > 0 ? DateTimeOffset.UnixEpoch.AddTicks(((long)monotonic + off) / 100) : null;

        var events = new List<TimelineEvent> { new(0, Wall(0), TimelineEventKind.Boot, null, "boot (CLOCK_MONOTONIC 0)") };
        if (layout.StartTime is { } startTime)
            foreach (var task in kernel.ProcessTable)
            {
                if (task.Pid == 0 || !r.TryU64(task.Address + (ulong)startTime, out ulong start)) continue;
                events.Add(new TimelineEvent(start, Wall(start), TimelineEventKind.ProcessStart, task.Pid, task.Name));
            }
        else kernel.Diagnostics.ReportIncomplete("timeline", $"{layout.StartTimeMissing}: process starts not listed");
        if (withKernelLog)
            foreach (var record in new PrintkLog(kernel).Read())
                events.Add(new TimelineEvent(record.TimestampNs, Wall(record.TimestampNs), TimelineEventKind.KernelLog, null, record.Text));
        if (snapshot is { } s)
        {
            // tkr_mono.base only moves at a timekeeping update (a tick; none while a NOHZ CPU idles), while start_time
            // and printk read the clocksource itself: an event after the last update is later than the base. Memory
            // was read after every event it records, so the snapshot is no earlier than the latest of them.
            ulong latest = events.Max(e => e.MonotonicNs);
            events.Add(latest > s
                ? new TimelineEvent(latest, Wall(latest), TimelineEventKind.Snapshot, null,
                    $"memory read after the last event above (the timekeeper's last update was {latest - s} ns before it)")
                : new TimelineEvent(s, Wall(s), TimelineEventKind.Snapshot, null, "timekeeper's last update (about when memory was read)"));
        }
        // Stable: events of one time keep the order above (boot first, the snapshot after what it follows).
        return events.OrderBy(e => e.MonotonicNs).ToList();
    }
}
