using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;
using Periscope.Memory;

namespace Periscope.UnitTests.Checks;

/// <summary>What a task seen outside the task list means, decided without a guest.</summary>
public sealed class HiddenTaskJudgeTests
{
    private const ulong Listed = 0xffff888000100000, Unlisted = 0xffff888000200000;
    private static readonly TaskFacts Live = new(Pid: 42, Tgid: 42, Comm: "sleep", Flags: 0x00400100, ExitState: 0, OwnPidNumber: 42);

    private static CheckOutcome Judge(TaskSighting seen, TaskFacts? facts, bool listComplete, out IReadOnlyList<CheckFinding> findings)
    {
        var run = new CheckRun(CheckId.PidNamespace, IntrospectionLimits.Default);
        new HiddenTaskJudge(new HashSet<ulong> { Listed }, listComplete).Judge(run, seen, facts);
        findings = run.Findings;
        return run.Outcome();
    }

    private static TaskSighting Seen(TaskView view = TaskView.PidNamespace, ulong task = Unlisted) => new(task, view, "in the pid namespace");

    [Fact]
    public void Live_unlisted_task_with_a_complete_task_list_is_a_critical_hidden_task()
    {
        var outcome = Judge(Seen(), Live, listComplete: true, out var findings);
        var f = Assert.Single(findings);
        Assert.Equal(FindingKind.HiddenTask, f.Kind);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal("pid 42 (sleep)", f.Subject);
        Assert.Equal(Unlisted, f.Address);
        Assert.Contains("in the pid namespace", f.Detail);
        Assert.Equal(CheckStatus.Complete, outcome.Status);
    }

    [Fact]
    public void Listed_task_is_nothing()
    {
        var outcome = Judge(Seen(task: Listed), Live, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(CheckStatus.Complete, outcome.Status);
    }

    /// <summary>Issue 6: a garbage child read as pid 0 was reported as a CRITICAL hidden task.</summary>
    [Theory]
    [InlineData(TaskView.ChildrenList)]
    [InlineData(TaskView.PidNamespace)]
    [InlineData(TaskView.ThreadGroup)]
    [InlineData(TaskView.RunQueue)]
    public void Pid_0_other_than_a_cpu_idle_task_is_a_corrupt_view_not_a_hidden_task(TaskView view)
    {
        var outcome = Judge(Seen(view), Live with { Pid = 0, Tgid = 0, OwnPidNumber = 0 }, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(CheckStatus.Incomplete, outcome.Status);
        Assert.Equal(GapKind.CorruptStructure, outcome.Gaps.Single().Kind);
        Assert.Contains("pid 0", outcome.Gaps.Single().Detail);
    }

    [Fact]
    public void Idle_task_of_another_cpu_on_its_run_queue_is_expected()
    {
        var outcome = Judge(Seen(TaskView.IdleTask), Live with { Pid = 0, Tgid = 0, Flags = TaskFlagBits.Idle | TaskFlagBits.Kthread, OwnPidNumber = 0 },
            listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(CheckStatus.Complete, outcome.Status);
    }

    [Fact]
    public void Idle_pointer_to_a_task_without_PF_IDLE_is_a_gap()
    {
        var outcome = Judge(Seen(TaskView.IdleTask), Live with { Pid = 0, Tgid = 0, OwnPidNumber = 0 }, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(GapKind.CorruptStructure, outcome.Gaps.Single().Kind);
    }

    [Fact]
    public void Unreadable_task_is_a_gap()
    {
        var outcome = Judge(Seen(), null, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(GapKind.UnreadableMemory, outcome.Gaps.Single().Kind);
    }

    [Theory]
    [InlineData(43)]
    [InlineData(null)]
    public void Task_whose_pid_link_does_not_lead_back_is_a_gap(int? own)
    {
        var outcome = Judge(Seen(), Live with { OwnPidNumber = own }, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(GapKind.CorruptStructure, outcome.Gaps.Single().Kind);
    }

    [Theory]
    [InlineData(0x10u)]
    [InlineData(0x20u)]
    [InlineData(0x30u)]
    public void Exiting_task_is_nothing(uint exitState)
    {
        var outcome = Judge(Seen(), Live with { ExitState = exitState }, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(CheckStatus.Complete, outcome.Status);
    }

    [Fact]
    public void Exit_state_the_kernel_never_sets_is_a_gap_not_a_pass()
    {
        var outcome = Judge(Seen(), Live with { ExitState = 0x41414141 }, listComplete: true, out var findings);
        Assert.Empty(findings);
        Assert.Equal(GapKind.CorruptStructure, outcome.Gaps.Single().Kind);
    }

    [Fact]
    public void Against_an_incomplete_task_list_a_live_task_is_a_warning_and_the_check_incomplete()
    {
        var outcome = Judge(Seen(), Live, listComplete: false, out var findings);
        var f = Assert.Single(findings);
        Assert.Equal(Severity.Warning, f.Severity);
        Assert.Contains("could not be walked completely", f.Detail);
        Assert.Equal(CheckStatus.Incomplete, outcome.Status);
    }

    [Fact]
    public void The_same_task_seen_twice_by_one_check_is_reported_once()
    {
        var run = new CheckRun(CheckId.RunQueues, IntrospectionLimits.Default);
        var judge = new HiddenTaskJudge(new HashSet<ulong>(), taskListComplete: true);
        judge.Judge(run, Seen(TaskView.RunQueue), Live);
        judge.Judge(run, Seen(TaskView.RunQueue), Live);
        Assert.Single(run.Findings);
    }
}
