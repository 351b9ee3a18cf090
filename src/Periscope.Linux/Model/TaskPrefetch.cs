using Periscope.Linux.Btf;
using Periscope.Linux.Kallsyms;
using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Read-ahead for the task walk of a kernel read from a dump file that is not in the page cache. The task list is a
/// chain: each task_struct must be read before the next one's address is known, so a cold walk waits for the disk once
/// per task (2,000 processes: ~3,700 page reads, one after the other). The pid IDR is a tree of 64-way nodes whose
/// struct pids lead to every task at once, so the pages the walk will read are asked for in four waves — struct pids,
/// then the task_struct fields the walk reads, then the creds and mms those point to, then the exe files — and the reads
/// of each wave overlap on the disk. Only the page cache is affected: the walk itself reads as before, in its own order,
/// so no output changes. Bounded by <see cref="IntrospectionLimits.MaxTaskPrefetchPages"/> and a work budget of its
/// own (the command's budget is not charged); a bad pointer only ends the read-ahead. A wave whose pages are all
/// resident already (a warm dump, a live guest's RAM file) ends it too.
/// </summary>
public sealed class TaskPrefetch
{
    private readonly GuestReader _r;
    private readonly IPrefetchableMemory _memory;
    private readonly KernelOffsets _offsets;
    private readonly IntrospectionLimits _limits;
    private readonly XArrayReader _xarray;
    private readonly ulong _idrHead, _pidLinks;
    private int _pagesLeft;

    private TaskPrefetch(GuestReader reader, IPrefetchableMemory memory, KernelOffsets offsets, IntrospectionLimits limits, XArrayReader xarray, ulong idrHead, ulong pidLinks)
    {
        _r = reader;
        _memory = memory;
        _offsets = offsets;
        _limits = limits;
        _xarray = xarray;
        _idrHead = idrHead;
        _pidLinks = pidLinks;
        _pagesLeft = limits.MaxTaskPrefetchPages;
    }

    /// <summary>Pages of each wave (struct pids, tasks, creds and mms, exe files) that were not resident and were asked for.</summary>
    public List<int> PagesAsked { get; } = [];
    /// <summary>Guest addresses each wave covered, one page each (resident or not, a page shared by several counted for
    /// each): within <see cref="IntrospectionLimits.MaxTaskPrefetchPages"/> in all.</summary>
    public List<int> PagesCovered { get; } = [];
    /// <summary>task_structs found through the pid IDR (every thread has a pid there, so threads too).</summary>
    public IReadOnlyList<ulong> TasksFound { get; private set; } = [];
    /// <summary>Run every wave even when a wave's pages were all resident (tests, on a dump that is in the page cache).</summary>
    public bool StopWhenResident { get; init; } = true;

    /// <summary>A read-ahead for this kernel, or null when there is nothing to gain or the types it needs are missing
    /// (no BTF, no init_pid_ns, a memory source that is not a file).</summary>
    public static TaskPrefetch? Create(IPhysicalMemory memory, GuestReader kernelReader, KernelSymbols symbols, BtfTypes? btf, KernelOffsets offsets, IntrospectionLimits limits,
        bool stopWhenResident = true)
    {
        if (memory is not IPrefetchableMemory prefetchable || btf is null || offsets.Pid is not { TaskPidLinks: { } pidLinks, Tasks: not null } pid
            || !symbols.TryGetAddress("init_pid_ns", out ulong ns)) return null;
        var b = new MemberOffsets(btf);
        if (b.Offset("pid_namespace", "idr.idr_rt.xa_head") is not { } idr || btf.StructSizeOrNull("hlist_node") is not { } hlistNode) return null;
        // Its own budget: what the read-ahead reads must not use up the command's.
        var reader = new GuestReader(kernelReader.Space, limits, new WorkBudget(limits));
        var xarray = XArrayReader.Create(reader, btf, out _);
        if (xarray is null || !reader.TryPointer(ns + (ulong)idr, out ulong head)) return null;
        return new TaskPrefetch(reader, prefetchable, offsets, limits, xarray, head, (ulong)(pidLinks + pid.PidTypePid * hlistNode))
            { StopWhenResident = stopWhenResident };
    }

    /// <summary>Asks for the pages; returns when the last wave's requests are issued (not when they are read).</summary>
    public void Run()
    {
        var entries = _xarray.Read(_idrHead, _limits.MaxTasks, "task read-ahead", []);
        var pids = new List<ulong>(entries.Count);
        foreach (var e in entries)
            if (e.Kind == XArrayEntryKind.Pointer && _r.IsKernelPointer(e.Entry)) pids.Add(e.Entry);
        var pidTasks = (ulong)_offsets.Pid!.Tasks!.Value;
        if (!Wave(pids.Select(p => p + pidTasks))) return;

        var tasks = new List<ulong>(pids.Count);
        foreach (ulong p in pids)
            if (_r.TryPointer(p + pidTasks, out ulong first) && first > _pidLinks && _r.IsKernelPointer(first - _pidLinks)) tasks.Add(first - _pidLinks);
        TasksFound = tasks;
        var t = _offsets.Task;
        int[] taskFields = [t.Pid, t.Tgid, t.Comm, t.Flags, t.State, t.ExitState, t.RealParent, t.RealCred, t.Mm, t.Tasks, t.ThreadGroup ?? t.Signal];
        if (!Wave(tasks.SelectMany(task => taskFields.Select(f => task + (ulong)f)))) return;

        var second = new List<ulong>();
        var mms = new List<ulong>();
        foreach (ulong task in tasks)
        {
            if (_r.TryPointer(task + (ulong)t.RealCred, out ulong cred) && _r.IsKernelPointer(cred)) second.Add(cred + (ulong)_offsets.CredUid);
            if (_r.TryPointer(task + (ulong)t.Mm, out ulong mm) && mm != 0 && _r.IsKernelPointer(mm))
            {
                mms.Add(mm);
                second.Add(mm + (ulong)_offsets.Mm.Pgd);
                if (_offsets.Mm.ExeFile is { } exe) second.Add(mm + (ulong)exe);
            }
        }
        if (!Wave(second) || _offsets.Mm.ExeFile is not { } exeFile) return;

        var files = new List<ulong>();
        foreach (ulong mm in mms.Distinct())
            if (_r.TryPointer(mm + (ulong)exeFile, out ulong file) && file != 0 && _r.IsKernelPointer(file))
                files.Add(file + (ulong)_offsets.Path.FilePath);
        Wave(files);
    }

    /// <summary>Asks for the pages of these kernel addresses; false when the read-ahead should stop (all were resident,
    /// or the page cap is spent).</summary>
    private bool Wave(IEnumerable<ulong> addresses)
    {
        var physical = new List<ulong>();
        foreach (ulong va in addresses)
        {
            if (physical.Count >= _pagesLeft) break;
            if (_r.Space.TryTranslate(va, out ulong pa)) physical.Add(pa);
        }
        int asked = physical.Count == 0 ? 0 : _memory.PrefetchPages(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(physical));
        PagesAsked.Add(asked);
        PagesCovered.Add(physical.Count);
        _pagesLeft -= physical.Count;
        return (asked > 0 || !StopWhenResident) && _pagesLeft > 0;
    }
}
