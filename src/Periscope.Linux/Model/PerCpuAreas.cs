using Periscope.Linux.Kallsyms;
using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>One possible CPU and the offset of its per-CPU area (__per_cpu_offset[cpu]).</summary>
public readonly record struct CpuArea(int Cpu, ulong Offset)
{
    /// <summary>This CPU's copy of the per-CPU variable whose kallsyms address is <paramref name="perCpuSymbol"/>.</summary>
    public ulong Of(ulong perCpuSymbol) => unchecked(Offset + perCpuSymbol);
}

/// <summary>Why the per-CPU areas are not all known.</summary>
public enum PerCpuGapKind
{
    /// <summary>The kernel lacks what the reading needs (no CONFIG_SMP symbols, no BTF type): nothing was read.</summary>
    Unavailable,
    /// <summary>nr_cpu_ids or a __per_cpu_offset slot could not be read.</summary>
    Unreadable,
    /// <summary>nr_cpu_ids holds an impossible value.</summary>
    Corrupt,
    /// <summary>nr_cpu_ids exceeds the caller's limit: only the first CPUs up to it are listed.</summary>
    CapReached,
}

public sealed record PerCpuGap(PerCpuGapKind Kind, string Message);

/// <summary>
/// The possible CPUs and their per-CPU offsets: CPU ids below nr_cpu_ids (guest data, capped by the caller's limit)
/// that __cpu_possible_mask holds (holes have no per-CPU area), each with __per_cpu_offset[cpu]. The one place that
/// reads them: the kernel model (idle tasks) and the run-queue check both use it.
/// </summary>
public sealed record PerCpuAreas(IReadOnlyList<CpuArea> Cpus, uint NrCpuIds, IReadOnlyList<PerCpuGap> Gaps)
{
    /// <param name="maxCpus">The cap on nr_cpu_ids; <paramref name="limitName"/> names it in the message.</param>
    /// <param name="what">What the caller reads per CPU, for the message ("CPUs", "run queues").</param>
    public static PerCpuAreas Read(GuestReader reader, KernelSymbols symbols, int maxCpus, string limitName, string what = "CPUs") =>
        Read(reader, symbols.TryGetAddress, maxCpus, limitName, what);

    /// <summary>Finds a kernel data object's address by name (kallsyms, or <see cref="KernelDataAddresses"/>).</summary>
    public delegate bool AddressLookup(string name, out ulong address);

    /// <param name="vcpus">The vCPUs the memory source reports: the CPU count when nr_cpu_ids has no address (a kernel
    /// without data symbols); 0 when unknown.</param>
    public static PerCpuAreas Read(GuestReader reader, AddressLookup lookup, int maxCpus, string limitName, string what = "CPUs", int vcpus = 0)
    {
        if (!lookup("__per_cpu_offset", out ulong offsets))
            return new([], 0, [new(PerCpuGapKind.Unavailable, "__per_cpu_offset has no address (a kernel without CONFIG_SMP, or without KALLSYMS_ALL and not found by code)")]);
        uint cpus;
        if (!lookup("nr_cpu_ids", out ulong nrCpuIds))
        {
            if (vcpus <= 0)
                return new([], 0, [new(PerCpuGapKind.Unavailable, "nr_cpu_ids has no address and the memory source reports no vCPUs")]);
            cpus = (uint)vcpus;
        }
        else if (!reader.TryU32(nrCpuIds, out cpus))
            return new([], 0, [new(PerCpuGapKind.Unreadable, $"nr_cpu_ids at 0x{nrCpuIds:x} is unreadable")]);
        var gaps = new List<PerCpuGap>();
        if (cpus == 0)
            return new([], 0, [new(PerCpuGapKind.Corrupt, "nr_cpu_ids is 0: a running kernel has at least one CPU")]);
        uint readable = cpus;
        if (cpus > (uint)maxCpus)
        {
            gaps.Add(new(PerCpuGapKind.CapReached, $"nr_cpu_ids is {cpus}: only the first {maxCpus} {what} are read (the limit {limitName} is {maxCpus})"));
            readable = (uint)maxCpus;
        }
        bool hasPossibleMask = lookup("__cpu_possible_mask", out ulong possibleMask);
        var result = new List<CpuArea>();
        for (uint cpu = 0; cpu < readable; cpu++)
        {
            if (hasPossibleMask && reader.TryULong(possibleMask + cpu / (ulong)(8 * reader.PointerSize) * (ulong)reader.PointerSize, out ulong word) && (word >> (int)(cpu % (ulong)(8 * reader.PointerSize)) & 1) == 0) continue;
            if (!reader.TryULong(offsets + cpu * (ulong)reader.PointerSize, out ulong offset))
            {
                gaps.Add(new(PerCpuGapKind.Unreadable, $"__per_cpu_offset[{cpu}] is unreadable"));
                if (reader.Budget.AnyExhausted) break;
                continue;
            }
            result.Add(new CpuArea((int)cpu, offset));
        }
        return new(result, cpus, gaps);
    }
}

/// <summary>A CPU's idle task (rq->idle): pid 0, named swapper/CPU; CPU 0's is init_task itself.</summary>
public sealed record IdleTask(int Cpu, LinuxTask Task);

/// <summary>
/// Each possible CPU's idle task, from the per-CPU run queues (the `runqueues` per-CPU variable at
/// __per_cpu_offset[cpu], struct rq from BTF). The idle tasks of CPUs other than 0 are on no task list (they have
/// pid 0); crash and drgn list them in ps as swapper/N, and so does Periscope. A run queue must name its own CPU
/// (rq->cpu) and its idle task must have pid 0 and PF_IDLE; anything else is rejected with a diagnostic.
/// </summary>
public sealed class IdleTasks(GuestReader reader, KernelOffsets offsets, KernelSymbols symbols, IntrospectionLimits limits, Diagnostics diagnostics, TaskList tasks,
    ulong initTask = 0, IReadOnlyList<CpuState>? cpus = null)
{
    private const string Area = "idle tasks";

    public IReadOnlyList<IdleTask> Read()
    {
        if (offsets.RunQueue is not { } rq || !symbols.TryGetAddress("runqueues", out ulong runqueues))
        {
            // No struct rq (no BTF) or no data symbols: each CPU's idle_threads pointer, found through idle_thread_get's code.
            var fromCode = FromIdleThreads();
            if (fromCode.Count > 0) return fromCode;
            diagnostics.Report(Area, offsets.RunQueue is null
                ? "unavailable: the kernel's types describe no struct rq with cpu, curr and idle, and idle_threads was not found through idle_thread_get"
                : "unavailable: kallsyms lists no runqueues, and idle_threads was not found through idle_thread_get");
            return [];
        }
        var areas = PerCpuAreas.Read(reader, symbols, limits.MaxCpus, nameof(IntrospectionLimits.MaxCpus));
        foreach (var gap in areas.Gaps)
        {
            if (gap.Kind == PerCpuGapKind.Unavailable) diagnostics.Report(Area, $"unavailable: {gap.Message}");
            else diagnostics.ReportIncomplete(Area, gap.Message);
        }
        var result = new List<IdleTask>();
        foreach (var cpu in areas.Cpus)
        {
            ulong runQueue = cpu.Of(runqueues);
            if (!reader.IsKernelPointer(runQueue) || !reader.TryI32(runQueue + (ulong)rq.Cpu, out int owner))
            {
                diagnostics.ReportIncomplete(Area, $"cpu {cpu.Cpu}: run queue 0x{runQueue:x} (__per_cpu_offset 0x{cpu.Offset:x}) is unreadable");
                continue;
            }
            if (owner != cpu.Cpu)
            {
                diagnostics.ReportIncomplete(Area, $"cpu {cpu.Cpu}: the run queue at 0x{runQueue:x} names cpu {owner}", runQueue);
                continue;
            }
            if (!reader.TryPointer(runQueue + (ulong)rq.Idle, out ulong idle) || !reader.IsKernelPointer(idle))
            {
                diagnostics.ReportIncomplete(Area, $"cpu {cpu.Cpu}: rq->idle 0x{idle:x} is unreadable or not a kernel pointer", runQueue);
                continue;
            }
            if (tasks.ReadOne(idle) is not { } task) continue; // reported by the task reader
            if (task.Pid != 0 || (task.Flags & KernelMacros.PF_IDLE) == 0)
            {
                diagnostics.ReportIncomplete(Area, $"cpu {cpu.Cpu}: rq->idle 0x{idle:x} has pid {task.Pid} and flags 0x{task.Flags:x}: not an idle task (pid 0, PF_IDLE 0x{KernelMacros.PF_IDLE:x})", idle);
                continue;
            }
            result.Add(new IdleTask(cpu.Cpu, task with { IdleCpu = cpu.Cpu }));
        }
        return result;
    }

    /// <summary>
    /// Each CPU's idle task from <c>idle_threads</c> at <c>__per_cpu_offset[cpu]</c>, both located in idle_thread_get's code
    /// (<see cref="IdleThreadsDecoder"/>) and accepted only when the data agrees: CPU 0's idle thread is init_task
    /// (idle_thread_set_boot_cpu), every other is a task with pid 0 and PF_IDLE. The number of CPUs is the number of vCPUs
    /// the memory source reports; without vCPU state, offsets are read until one is zero or its idle thread is NULL (a CPU
    /// that is not possible or never came up), at most MaxCpus. On i386 a vCPU in the kernel holds its per-CPU offset as
    /// the FS segment base (the per-CPU segment, GDT_ENTRY_PERCPU): where known, it must equal the array's entry.
    /// </summary>
    private List<IdleTask> FromIdleThreads()
    {
        var result = new List<IdleTask>();
        if (IdleThreadsDecoder.Decode(reader, symbols, out string? reason) is not { } code)
        {
            diagnostics.Report(Area, reason!);
            return result;
        }
        int word = reader.PointerSize;
        var vcpus = cpus ?? [];
        int count = vcpus.Count > 0 ? Math.Min(vcpus.Count, limits.MaxCpus) : limits.MaxCpus;
        var perCpuOffsets = new List<ulong>();
        for (int cpu = 0; cpu < count; cpu++)
        {
            if (!reader.TryULong(code.PerCpuOffsetArray + (ulong)cpu * (ulong)word, out ulong offset))
            {
                diagnostics.ReportIncomplete(Area, $"__per_cpu_offset[{cpu}] at 0x{code.PerCpuOffsetArray + (ulong)cpu * (ulong)word:x} is unreadable ({code.Evidence})");
                break;
            }
            if (!reader.TryPointer(new CpuArea(cpu, offset).Of(code.IdleThreads), out ulong idle) || idle == 0)
            {
                if (vcpus.Count > 0) diagnostics.ReportIncomplete(Area, $"cpu {cpu}: idle_threads (0x{code.IdleThreads:x} + 0x{offset:x}) is unreadable or NULL ({code.Evidence})");
                break;
            }
            if (cpu == 0 && initTask != 0 && idle != initTask)
            {
                diagnostics.Report(Area, $"unavailable: cpu 0's idle_threads entry 0x{idle:x} is not init_task 0x{initTask:x}: {code.Evidence} does not hold");
                return [];
            }
            if (!reader.IsKernelPointer(idle) || tasks.ReadOne(idle) is not { } task) break;
            if (task.Pid != 0 || (task.Flags & KernelMacros.PF_IDLE) == 0)
            {
                diagnostics.ReportIncomplete(Area, $"cpu {cpu}: idle_threads 0x{idle:x} has pid {task.Pid} and flags 0x{task.Flags:x}: not an idle task (pid 0, PF_IDLE 0x{KernelMacros.PF_IDLE:x})", idle);
                break;
            }
            perCpuOffsets.Add(offset);
            result.Add(new IdleTask(cpu, task with { IdleCpu = cpu }));
        }
        // i386: the per-CPU segment's base is the CPU's per-CPU offset; a vCPU in the kernel shows it in FS.
        if (word == 4)
        {
            var unknown = vcpus.Where(c => c.Fs is { } fs && reader.IsKernelPointer(fs.Base)).Select(c => c.Fs!.Value.Base)
                .Where(b => !perCpuOffsets.Contains(b)).ToList();
            if (unknown.Count > 0)
                diagnostics.ReportIncomplete(Area, $"vCPU FS bases {string.Join(", ", unknown.Select(b => $"0x{b:x}"))} are not among the per-CPU offsets read from __per_cpu_offset ({code.Evidence})");
        }
        return result;
    }
}
