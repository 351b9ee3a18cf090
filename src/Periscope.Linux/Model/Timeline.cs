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
/// offs_real (CLOCK_REALTIME − CLOCK_MONOTONIC), read from the shadow timekeeper, the copy timekeeping_advance() updates
/// first and copies into tk_core: before 6.13 the static <c>shadow_timekeeper</c> (tk_core's struct is anonymous, so its
/// layout is not in BTF); since then a member of struct tk_data (in BTF), in <c>tk_core</c> and, since the auxiliary
/// clocks (6.17), in <c>timekeeper_data[TIMEKEEPER_CORE]</c>.
/// Modules are not timestamped by the kernel (struct module has no load time) and so are not listed.
/// </summary>
public sealed class TimelineReader(LinuxKernel kernel)
{
    public IReadOnlyList<TimelineEvent> Read(bool withKernelLog)
    {
        long? offsReal = null;
        ulong? snapshot = null;
        try
        {
            if (FindTimekeeper(out string? why) is { } tk)
            {
                offsReal = tk["offs_real"].ReadInt64();
                snapshot = (ulong)tk["tkr_mono.base"].ReadInt64();
            }
            else kernel.Diagnostics.Report("timeline", $"{why}: events carry no wall-clock time");
        }
        catch (Objects.ObjectFaultException e) { kernel.Diagnostics.ReportIncomplete("timeline", $"timekeeper: {e.Message}", e.Address); }
        DateTimeOffset? Wall(ulong monotonic) =>
            offsReal is { } off && off > 0 ? DateTimeOffset.UnixEpoch.AddTicks(((long)monotonic + off) / 100) : null;

        var events = new List<TimelineEvent> { new(0, Wall(0), TimelineEventKind.Boot, null, "boot (CLOCK_MONOTONIC 0)") };
        foreach (var task in kernel.ProcessTable)
        {
            if (task.Pid == 0) continue;
            var t = kernel.Object("task_struct", task.Address);
            if (!t.HasMember("start_time") || !t["start_time"].TryReadRaw(out ulong start)) continue;
            events.Add(new TimelineEvent(start, Wall(start), TimelineEventKind.ProcessStart, task.Pid, task.Name));
        }
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

    /// <summary>The shadow timekeeper wherever this kernel keeps it, or null with the reason.</summary>
    private Objects.KernelObject? FindTimekeeper(out string? why)
    {
        why = null;
        if (kernel.Symbols.TryGetAddress("shadow_timekeeper", out ulong shadow)) return kernel.Object("timekeeper", shadow);
        if (kernel.Btf?.FindStruct("tk_data") is not { } tkData || !tkData.HasMember("shadow_timekeeper"))
        {
            why = "kallsyms has no shadow_timekeeper and BTF no struct tk_data";
            return null;
        }
        if (kernel.Symbols.TryGetAddress("tk_core", out ulong core)) return kernel.Object("tk_data", core)["shadow_timekeeper"];
        if (kernel.Symbols.TryGetAddress("timekeeper_data", out ulong data))
        {
            // TIMEKEEPER_CORE indexes timekeeper_data (enum timekeeper_ids); it is 0 where the enum is not in BTF.
            long index = kernel.Btf.TryFindEnumerator("TIMEKEEPER_CORE", out long id) ? id : 0;
            if (index is < 0 or > 64) { why = $"TIMEKEEPER_CORE is {index}"; return null; }
            ulong size = (ulong)kernel.Objects.Type("tk_data").Size;
            return kernel.Object("tk_data", data + (ulong)index * size)["shadow_timekeeper"];
        }
        why = "kallsyms has neither shadow_timekeeper, tk_core nor timekeeper_data";
        return null;
    }
}
