using Periscope.Integrity.Verification;

namespace Periscope.Integrity.Checks;

/// <summary>The structures, other than the task list, through which a task can be seen.</summary>
public enum TaskView
{
    PidNamespace,
    ChildrenList,
    /// <summary>A CPU's running task or a task queued on one of its run queues.</summary>
    RunQueue,
    /// <summary>A CPU's idle task (rq->idle): pid 0, PF_IDLE, on no task list except CPU 0's init_task.</summary>
    IdleTask,
    ThreadGroup,
}

/// <summary>A task_struct seen through one view; <see cref="Via"/> says where, in words ("a child of pid 1").</summary>
public sealed record TaskSighting(ulong Task, TaskView View, string Via);

/// <summary>What a task_struct says about itself. <see cref="OwnPidNumber"/> is task->thread_pid->numbers[0].nr:
/// a live task's pid link leads back to its own pid, which random bytes almost never do.</summary>
public sealed record TaskFacts(int Pid, int Tgid, string Comm, uint Flags, uint ExitState, int? OwnPidNumber);

/// <summary>
/// Decides what a task seen outside the task list means. Only a task that looks alive and self-consistent, seen while
/// the task list itself was walked completely, is a confident (critical) hidden task. Per-CPU idle tasks (pid 0) are on
/// no task list by design; unreadable or self-contradicting sightings come from a corrupt view and make the check
/// incomplete instead of producing a finding (issue 6: random bytes over the task area gave "hidden task pid 0").
/// </summary>
public sealed class HiddenTaskJudge(IReadOnlySet<ulong> listed, bool taskListComplete)
{
    /// <summary>EXIT_DEAD and EXIT_ZOMBIE (include/linux/sched.h, macros; the same in every kernel since 2.6): the only
    /// values of task->exit_state.</summary>
    private const uint ExitDead = 0x10, ExitZombie = 0x20;

    private readonly HashSet<(CheckId, ulong)> _judged = [];

    public void Judge(CheckRun run, TaskSighting seen, TaskFacts? facts)
    {
        if (listed.Contains(seen.Task) || !_judged.Add((run.Check, seen.Task))) return;
        if (facts is null)
        {
            run.Incomplete(GapKind.UnreadableMemory, $"task_struct 0x{seen.Task:x}, {seen.Via}, is unreadable");
            return;
        }
        if ((facts.ExitState & ~(ExitDead | ExitZombie)) != 0)
        {
            run.Incomplete(GapKind.CorruptStructure, $"task_struct 0x{seen.Task:x}, {seen.Via}, has exit_state 0x{facts.ExitState:x}, which the kernel never sets: a corrupt view, not a task");
            return;
        }
        if (facts.ExitState != 0) return; // exiting tasks leave the task list before their pid, parent link and CPU
        if (facts.Pid == 0)
        {
            if (seen.View == TaskView.IdleTask && (facts.Flags & TaskFlagBits.Idle) != 0) return; // a CPU's idle task
            run.Incomplete(GapKind.CorruptStructure, $"task_struct 0x{seen.Task:x}, {seen.Via}, has pid 0 but is not a CPU's idle task (rq->idle with PF_IDLE): a corrupt view, not a hidden task");
            return;
        }
        if (facts.Pid < 0 || facts.Tgid <= 0 || facts.OwnPidNumber != facts.Pid)
        {
            string own = facts.OwnPidNumber is { } n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "unreadable";
            run.Incomplete(GapKind.CorruptStructure, $"task_struct 0x{seen.Task:x}, {seen.Via}, does not look like a live task (pid {facts.Pid}, tgid {facts.Tgid}, its pid link says {own})");
            return;
        }
        string subject = $"pid {facts.Pid} ({facts.Comm})";
        if (!taskListComplete)
        {
            run.Report(FindingKind.HiddenTask, Severity.Warning, subject, seen.Task,
                $"task_struct 0x{seen.Task:x} is {seen.Via} but not on the task list, which could not be walked completely");
            run.Incomplete(GapKind.CorruptStructure, $"pid {facts.Pid} cannot be judged hidden: the task list walk was incomplete");
            return;
        }
        run.Report(FindingKind.HiddenTask, Severity.Critical, subject, seen.Task,
            $"task_struct 0x{seen.Task:x} is {seen.Via} but on neither the task list nor a thread list");
    }
}
