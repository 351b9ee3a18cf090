using Periscope.Integrity.Verification;

namespace Periscope.Integrity.Checks;

/// <summary>The baseline-free checks `periscope check` runs, each one cross-view or invariant.</summary>
public enum CheckId
{
    /// <summary>The task and module lists the model walked: broken links are findings and make the task views unsure.</summary>
    KernelLists,
    SyscallTable,
    InterruptTable,
    /// <summary>vmalloc areas in the module range that no listed module owns.</summary>
    ModuleArea,
    /// <summary>Tasks reachable from the pid IDR of init_pid_ns.</summary>
    PidNamespace,
    /// <summary>Tasks on their parents' children lists.</summary>
    ChildrenLists,
    /// <summary>Tasks on each CPU's run queues (cfs, rt, dl), running or idle.</summary>
    RunQueues,
    /// <summary>Threads reachable through signal->thread_head and group_leader, the second view of thread groups.</summary>
    ThreadGroups,
    /// <summary>task->flags: bits the kernel does not define, and combinations it never produces.</summary>
    TaskFlags,
}

public enum CheckStatus
{
    /// <summary>The check ran over everything it covers.</summary>
    Complete,
    /// <summary>The check ran, but some part of it could not be done; its gaps say which and why.</summary>
    Incomplete,
    /// <summary>The check could not run at all (a symbol or BTF type it needs is missing, or the kernel is unsupported).</summary>
    Skipped,
    /// <summary>The check cannot run on this kernel at all, by construction: the kernel has no BTF (offsets inferred) and
    /// what the check reads is not among what inference or kallsyms provides. Listed with that one reason, apart from
    /// <see cref="Skipped"/> (no rerun or repair of the dump changes it); the verdict is still incomplete: a cross-view
    /// that did not run is evidence missing, and "clean" must be earned.</summary>
    Unavailable,
}

/// <summary>Why part of a check could not be done.</summary>
public enum GapKind
{
    MissingSymbol,
    MissingType,
    /// <summary>A total-work budget of <see cref="Periscope.Memory.IntrospectionLimits"/> was reached.</summary>
    WalkBudget,
    UnreadableMemory,
    /// <summary>Guest data that contradicts itself: a broken list, a task whose pid link does not lead back to it.</summary>
    CorruptStructure,
    /// <summary>Kernel facts the check needs are not known for this kernel version.</summary>
    UnsupportedKernel,
    /// <summary>The check stopped on an error it did not expect.</summary>
    Failed,
}

public enum FindingKind
{
    HandlerOutsideKernelText,
    EarlyBootHandler,
    HiddenModule,
    UnownedModuleMemory,
    HiddenTask,
    UndefinedTaskFlags,
    KernelThreadWithUserMemory,
    KernelThreadNotFromKthreadd,
    ListIntegrity,
}

public sealed record CheckFinding(CheckId Check, FindingKind Kind, Severity Severity, string Subject, ulong Address, string Detail);

public sealed record CheckGap(GapKind Kind, string Detail);

/// <summary>What one check did: its status, the gaps that made it incomplete or skipped, and how many findings it made.</summary>
public sealed record CheckOutcome(CheckId Check, CheckStatus Status, IReadOnlyList<CheckGap> Gaps, int FindingCount);

/// <summary>The overall result, in the order of the shared exit-code scheme.</summary>
public enum CheckVerdict
{
    /// <summary>Exit 0: no warning or critical finding, every check complete.</summary>
    Clean = 0,
    /// <summary>Exit 1: at least one warning or critical finding.</summary>
    Findings = 1,
    /// <summary>Exit 3: no findings, but some check was skipped or incomplete.</summary>
    Incomplete = 3,
}

public sealed record CheckReport(IReadOnlyList<CheckOutcome> Outcomes, IReadOnlyList<CheckFinding> Findings)
{
    /// <summary>Every check ran completely. A <see cref="CheckStatus.Unavailable"/> check leaves the report incomplete too:
    /// on such a kernel (no BTF, no data symbols) a guest could hide exactly what that check would have seen.</summary>
    public bool IsComplete => Outcomes.All(o => o.Status == CheckStatus.Complete);

    public CheckVerdict Verdict =>
        Findings.Any(f => f.Severity >= Severity.Warning) ? CheckVerdict.Findings
        : IsComplete ? CheckVerdict.Clean
        : CheckVerdict.Incomplete;
}

public static class CheckNames
{
    /// <summary>The name people and JSON see ("pid-namespace").</summary>
    public static string Name(this CheckId check) => check switch
    {
        CheckId.KernelLists => "kernel-lists",
        CheckId.SyscallTable => "syscall-table",
        CheckId.InterruptTable => "interrupt-table",
        CheckId.ModuleArea => "module-area",
        CheckId.PidNamespace => "pid-namespace",
        CheckId.ChildrenLists => "children-lists",
        CheckId.RunQueues => "run-queues",
        CheckId.ThreadGroups => "thread-groups",
        CheckId.TaskFlags => "task-flags",
        _ => check.ToString(),
    };

    public static string Name(this FindingKind kind) => kind switch
    {
        FindingKind.HandlerOutsideKernelText => "handler-outside-kernel-text",
        FindingKind.EarlyBootHandler => "early-boot-handler",
        FindingKind.HiddenModule => "hidden-module",
        FindingKind.UnownedModuleMemory => "unowned-module-memory",
        FindingKind.HiddenTask => "hidden-task",
        FindingKind.UndefinedTaskFlags => "undefined-task-flags",
        FindingKind.KernelThreadWithUserMemory => "kernel-thread-with-user-memory",
        FindingKind.KernelThreadNotFromKthreadd => "kernel-thread-not-from-kthreadd",
        FindingKind.ListIntegrity => "list-integrity",
        _ => kind.ToString(),
    };

    public static string Name(this GapKind kind) => kind switch
    {
        GapKind.MissingSymbol => "missing-symbol",
        GapKind.MissingType => "missing-type",
        GapKind.WalkBudget => "walk-budget",
        GapKind.UnreadableMemory => "unreadable-memory",
        GapKind.CorruptStructure => "corrupt-structure",
        GapKind.UnsupportedKernel => "unsupported-kernel",
        GapKind.Failed => "failed",
        _ => kind.ToString(),
    };

    public static string Name(this CheckStatus status) => status switch
    {
        CheckStatus.Complete => "complete",
        CheckStatus.Incomplete => "incomplete",
        CheckStatus.Skipped => "skipped",
        CheckStatus.Unavailable => "unavailable",
        _ => status.ToString(),
    };
}
