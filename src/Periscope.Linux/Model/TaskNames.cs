namespace Periscope.Linux.Model;

/// <summary>
/// Task names as /proc/PID/stat and status show them (fs/proc/array.c, proc_task_name): a workqueue worker
/// (PF_WQ_WORKER) is named by wq_worker_comm(), its comm (or, since 6.10, its full worker id: from the worker and its
/// pool, or, where those members are unknown, from the thread's creation name in struct kthread) plus "+desc" while it
/// runs a work item or "-desc" after, desc being the workqueue it last served; another kernel thread by its
/// struct kthread's full_name when it has one (names longer than the 16-byte comm); everything else by its comm.
/// Every pointer on the way is checked; a bad one leaves the comm, with a diagnostic.
/// </summary>
public sealed class TaskNames(GuestReader reader, KernelOffsets offsets, Diagnostics diagnostics, bool fullWorkerIds)
{
    /// <summary>proc_task_name's buffer, char tcomm[64]: a longer name is cut at 63 characters.</summary>
    public const int MaxProcNameLength = 63;
    private const string Area = "task names";

    /// <summary>The name /proc shows for the task at <paramref name="task"/> with the given comm and flags.</summary>
    public string ProcName(ulong task, int pid, string comm, uint flags)
    {
        string? name = null;
        if ((flags & KernelMacros.PF_WQ_WORKER) != 0 && (flags & KernelMacros.PF_KTHREAD) == 0)
            diagnostics.Report(Area, $"pid {pid}: PF_WQ_WORKER (0x{KernelMacros.PF_WQ_WORKER:x}) without PF_KTHREAD (flags 0x{flags:x}): only kernel threads are workers; the name stays the comm", task);
        else if ((flags & KernelMacros.PF_WQ_WORKER) != 0) name = WorkerName(task, pid, comm);
        else if ((flags & KernelMacros.PF_KTHREAD) != 0) name = KthreadFullName(task, pid);
        name ??= comm;
        return name.Length <= MaxProcNameLength ? name : name[..MaxProcNameLength];
    }

    /// <summary>to_kthread(task): null when the task has none (the idle tasks) or the link is no kernel pointer.</summary>
    private ulong? Kthread(ulong task, int pid, KthreadOffsets k)
    {
        if (!reader.TryPointer(task + (ulong)k.TaskKthread, out ulong kthread)) return null;
        if (kthread == 0) return null;
        if (reader.IsKernelPointer(kthread)) return kthread;
        diagnostics.Report(Area, $"pid {pid}: struct kthread pointer 0x{kthread:x} is not a kernel pointer; the name stays the comm", task);
        return null;
    }

    private string? KthreadFullName(ulong task, int pid)
    {
        if (offsets.Kthread is not { FullName: { } fullName } k || Kthread(task, pid, k) is not { } kthread) return null;
        if (!reader.TryPointer(kthread + (ulong)fullName, out ulong text) || text == 0) return null;
        if (!reader.IsKernelPointer(text))
        {
            diagnostics.Report(Area, $"pid {pid}: kthread full_name 0x{text:x} is not a kernel pointer", task);
            return null;
        }
        return reader.ReadCString(text, MaxProcNameLength);
    }

    /// <summary>wq_worker_comm(); null (the comm) when the kernel's types or the worker cannot be read.</summary>
    private string? WorkerName(ulong task, int pid, string comm)
    {
        if (offsets.Kthread is not { } k || offsets.Workqueue is not { } w) return null;
        if (Kthread(task, pid, k) is not { } kthread) return null;
        if (!reader.TryPointer(kthread + (ulong)k.Data, out ulong worker) || !reader.IsKernelPointer(worker))
        {
            diagnostics.Report(Area, $"pid {pid}: a workqueue worker whose kthread data (struct worker) 0x{worker:x} is unreadable or not a kernel pointer", task);
            return null;
        }
        if (!reader.TryPointer(worker + (ulong)w.WorkerPool, out ulong pool))
        {
            diagnostics.Report(Area, $"pid {pid}: struct worker 0x{worker:x} is unreadable; the name stays the comm", task);
            return null;
        }
        if (pool != 0 && !reader.IsKernelPointer(pool))
        {
            diagnostics.Report(Area, $"pid {pid}: worker 0x{worker:x} has pool 0x{pool:x}, not a kernel pointer", task);
            return null;
        }
        // 6.10+ created the worker's thread with its full id as the name (kthread_create_on_node(..., "%s", id_buf)), so
        // where the id's own members are unknown (inferred offsets lack them) struct kthread's full_name still holds the
        // part the 16-byte comm cut.
        string name = fullWorkerIds ? WorkerId(worker, pool, w) ?? KthreadFullName(task, pid) ?? comm : comm;
        if (pool == 0) return name;
        string? desc = reader.ReadFixedString(worker + (ulong)w.WorkerDesc, w.WorkerDescSize);
        if (string.IsNullOrEmpty(desc)) return name;
        bool running = reader.TryPointer(worker + (ulong)w.WorkerCurrentWork, out ulong current) && current != 0;
        return $"{name}{(running ? '+' : '-')}{desc}";
    }

    /// <summary>format_worker_id() of 6.10+; null when a member it needs is missing or unreadable.</summary>
    private string? WorkerId(ulong worker, ulong pool, WorkqueueOffsets w)
    {
        if (w.WorkerRescueWq is { } rescueAt && reader.TryPointer(worker + (ulong)rescueAt, out ulong rescueWq) && rescueWq != 0)
        {
            if (!reader.IsKernelPointer(rescueWq) || w.WqName is not { } nameAt) return null;
            return reader.ReadFixedString(rescueWq + (ulong)nameAt, w.WqNameSize) is { } wq ? KernelMacros.RescuerCommPrefix + wq : null;
        }
        if (pool == 0) return "kworker/dying";
        if (w.WorkerId is not { } idAt || w.PoolCpu is not { } cpuAt || !reader.TryI32(worker + (ulong)idAt, out int id)
            || !reader.TryI32(pool + (ulong)cpuAt, out int cpu))
            return null;
        if (cpu < 0)
            return w.PoolId is { } poolIdAt && reader.TryI32(pool + (ulong)poolIdAt, out int poolId) ? $"kworker/u{poolId}:{id}" : null;
        bool high = w.PoolAttrs is { } attrsAt && w.AttrsNice is { } niceAt && reader.TryPointer(pool + (ulong)attrsAt, out ulong attrs)
            && reader.IsKernelPointer(attrs) && reader.TryI32(attrs + (ulong)niceAt, out int nice) && nice < 0;
        return $"kworker/{cpu}:{id}{(high ? "H" : "")}";
    }
}
