namespace Periscope.Linux.Tasks.Views;

/// <summary>The structures through which the kernel keeps a task; a task_struct is seen through any set of them.</summary>
[Flags]
public enum TaskViewSet : ushort
{
    None = 0,
    /// <summary>init_task.tasks (thread-group leaders) and each listed leader's thread list: what /proc-less tools and `ps` walk.</summary>
    TaskList = 1 << 0,
    /// <summary>The initial pid namespace's IDR (struct pid → tasks[PIDTYPE_PID]): what /proc and kill() look up.</summary>
    PidHash = 1 << 1,
    /// <summary>Queued on a CPU's fair, real-time or deadline run queue.</summary>
    RunQueue = 1 << 2,
    /// <summary>On some listed task's children list (linked through sibling).</summary>
    Children = 1 << 3,
    /// <summary>On a listed leader's signal->thread_head list, or the group_leader of a listed thread.</summary>
    ThreadGroup = 1 << 4,
    /// <summary>A CPU's running task (rq->curr).</summary>
    CpuCurrent = 1 << 5,
    /// <summary>A CPU's idle task (rq->idle).</summary>
    CpuIdle = 1 << 6,
}

/// <summary>What a task's set of views means.</summary>
public enum TaskViewVerdict
{
    /// <summary>On the task list (other views may miss it for ordinary reasons: a sleeping task is on no run queue).</summary>
    Listed,
    /// <summary>A live, self-consistent task seen elsewhere but not on the task list: hidden (critical).</summary>
    Hidden,
    /// <summary>A CPU's idle task (pid 0, PF_IDLE): on no task list by design, except CPU 0's init_task.</summary>
    IdleTask,
    /// <summary>An exiting task (exit_state set): it leaves the task list before its pid, parent link and CPU.</summary>
    Exiting,
    /// <summary>Unreadable or self-contradicting: a corrupt view, not a task; the result is incomplete.</summary>
    NotATask,
}

/// <summary>What a task_struct says about itself. <see cref="OwnPidNumber"/> is task->thread_pid->numbers[0].nr: a live
/// task's pid link leads back to its own pid, which random bytes almost never do.</summary>
public sealed record TaskSelfFacts(int Pid, int Tgid, string Comm, uint Flags, uint ExitState, int? OwnPidNumber);

/// <summary>One task_struct and the views that see it.</summary>
public sealed record TaskViewRow(ulong Task, TaskSelfFacts? Facts, TaskViewSet Seen, TaskViewVerdict Verdict, string? Reason)
{
    public bool IsFinding => Verdict == TaskViewVerdict.Hidden;
}

/// <summary>All tasks any view saw, the views that could be read on this kernel, and what could not be read.</summary>
public sealed record TaskViewReport(IReadOnlyList<TaskViewRow> Rows, TaskViewSet Available, IReadOnlyList<string> Unavailable, IReadOnlyList<string> Gaps)
{
    /// <summary>A gap, or a part that could not be read at all (what it would have shown is unknown, not absent).</summary>
    public bool IsIncomplete => Gaps.Count > 0 || Unavailable.Count > 0;
    public IEnumerable<TaskViewRow> Hidden => Rows.Where(r => r.IsFinding);
}

/// <summary>The rule that turns a task's views and self-description into a verdict (pure, so it is table-tested).</summary>
public static class TaskViewRules
{
    /// <summary>EXIT_DEAD and EXIT_ZOMBIE (include/linux/sched.h macros, unchanged since 2.6): the only values of exit_state.</summary>
    public const uint ExitDead = 0x10, ExitZombie = 0x20;

    public static (TaskViewVerdict Verdict, string? Reason) Judge(TaskViewSet seen, TaskSelfFacts? facts)
    {
        if ((seen & TaskViewSet.TaskList) != 0) return (TaskViewVerdict.Listed, null);
        if (facts is null) return (TaskViewVerdict.NotATask, "the task_struct is unreadable");
        if ((facts.ExitState & ~(ExitDead | ExitZombie)) != 0)
            return (TaskViewVerdict.NotATask, $"exit_state 0x{facts.ExitState:x} is a value the kernel never sets");
        if (facts.ExitState != 0) return (TaskViewVerdict.Exiting, "exiting: off the task list before its other links");
        if (facts.Pid == 0)
            return (seen & TaskViewSet.CpuIdle) != 0 && (facts.Flags & Model.KernelMacros.PF_IDLE) != 0
                ? (TaskViewVerdict.IdleTask, null)
                : (TaskViewVerdict.NotATask, "pid 0 but not a CPU's idle task (rq->idle with PF_IDLE)");
        if (facts.Pid < 0 || facts.Pid > Model.KernelMacros.PID_MAX_LIMIT || facts.Tgid <= 0 || facts.Tgid > Model.KernelMacros.PID_MAX_LIMIT
            || facts.OwnPidNumber != facts.Pid)
        {
            string own = facts.OwnPidNumber?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unreadable";
            return (TaskViewVerdict.NotATask, $"pid {facts.Pid}, tgid {facts.Tgid}, its own pid link says {own}: not a live task");
        }
        return (TaskViewVerdict.Hidden, "a live task on no task list or thread list");
    }

    /// <summary>Short column names, in table order.</summary>
    public static readonly (TaskViewSet View, string Column)[] Columns =
    [
        (TaskViewSet.TaskList, "LIST"), (TaskViewSet.PidHash, "PID"), (TaskViewSet.RunQueue, "RQ"), (TaskViewSet.Children, "CHILD"),
        (TaskViewSet.ThreadGroup, "THREAD"), (TaskViewSet.CpuCurrent, "CUR"), (TaskViewSet.CpuIdle, "IDLE"),
    ];

    public static string JsonName(TaskViewSet view) => view switch
    {
        TaskViewSet.TaskList => "taskList",
        TaskViewSet.PidHash => "pidHash",
        TaskViewSet.RunQueue => "runQueue",
        TaskViewSet.Children => "children",
        TaskViewSet.ThreadGroup => "threadGroup",
        TaskViewSet.CpuCurrent => "cpuCurrent",
        TaskViewSet.CpuIdle => "cpuIdle",
        _ => view.ToString(),
    };
}
