namespace Periscope.Linux.Model;

/// <summary>A thread-group leader (a process) or kernel thread as the kernel's task list describes it.</summary>
public sealed record LinuxTask
{
    /// <summary>Kernel virtual address of the task_struct.</summary>
    public required ulong Address { get; init; }
    public required int Pid { get; init; }
    public required int Tgid { get; init; }
    /// <summary>PPid as /proc shows it: the tgid of real_parent (0 for the idle task).</summary>
    public required int ParentPid { get; init; }
    /// <summary>task->comm as stored (16 bytes at most, the raw name).</summary>
    public required string Comm { get; init; }
    /// <summary>The name /proc/PID/stat shows (see <see cref="TaskNames"/>): for workqueue workers e.g.
    /// "kworker/0:1-rcu_gp", for kernel threads their full name; the comm when nothing else applies.</summary>
    public string Name { get => _name ?? Comm; init => _name = value; }
    private readonly string? _name;
    /// <summary>For a CPU's idle task (rq->idle, pid 0): that CPU; null for every other task.</summary>
    public int? IdleCpu { get; init; }
    public required uint Flags { get; init; }
    /// <summary>The state letter /proc/PID/stat shows (R, S, D, Z, I, ...).</summary>
    public required char State { get; init; }
    public required uint? Uid { get; init; }
    public required uint? Gid { get; init; }
    /// <summary>Address of the mm_struct, 0 for kernel threads and zombies.</summary>
    public required ulong Mm { get; init; }
    /// <summary>Physical address of the process PGD (kernel copy), if it has an mm.</summary>
    public ulong? PgdPhysical { get; init; }
    public string? ExePath { get; init; }
    public required IReadOnlyList<LinuxThread> Threads { get; init; }
    /// <summary>task->exit_state: EXIT_ZOMBIE/EXIT_DEAD bits once the task has exited, else 0.</summary>
    public uint ExitState { get; init; }

    public const uint PfKthread = KernelMacros.PF_KTHREAD;
    public bool IsKernelThread => (Flags & PfKthread) != 0;
    public int ThreadCount => Threads.Count;
}

/// <summary>One thread of a thread group (the leader is included). <paramref name="ProcName"/>: the name /proc shows
/// when it differs from the comm (see <see cref="LinuxTask.Name"/>).</summary>
public sealed record LinuxThread(ulong Address, int Tid, string Comm, char State, string? ProcName = null)
{
    public string Name => ProcName ?? Comm;
}
