using Periscope.Linux.Inference;
using Periscope.Linux.Model;

namespace Periscope.UnitTests;

/// <summary>
/// task_struct.flags without BTF: the rule a column must satisfy, and the few tasks of a live guest that break it for a
/// moment (a kworker not yet run, a user-mode helper before its exec) without making the offset unsettled.
/// </summary>
public class InferenceFlagsRuleTests
{
    private const uint Idle = KernelMacros.PF_KTHREAD | 0x2, KThread = KernelMacros.PF_KTHREAD, Worker = KernelMacros.PF_KTHREAD | 0x20;

    private static readonly (uint, bool, string)[] Quiet =
        [(0x400100, true, "init"), (KThread, false, "kthreadd"), (Worker, false, "kworker/0:1"), (0x400000, true, "sh"),
         (KernelMacros.PF_EXITING, false, "zombie")];

    [Fact]
    public void A_quiet_guest_satisfies_the_rule_everywhere()
    {
        Assert.Equal(0, OffsetInference.FlagsRuleExceptions(Idle, Quiet, 2));
    }

    [Fact]
    public void A_kworker_not_yet_run_and_a_user_mode_helper_before_exec_are_counted_not_fatal()
    {
        (uint, bool, string)[] live = [.. Quiet, (KThread, false, "kworker/u4:2"), (0, false, "modprobe")];
        Assert.Equal(2, OffsetInference.FlagsRuleExceptions(Idle, live, 2));
    }

    [Fact]
    public void A_column_that_breaks_the_rule_for_more_tasks_or_is_not_idle_in_init_task_cannot_be_flags()
    {
        (uint, bool, string)[] noisy = [.. Quiet, (KThread, true, "a"), (0, false, "b"), (KThread, true, "c")];
        Assert.True(OffsetInference.FlagsRuleExceptions(Idle, noisy, 2) > 2);
        Assert.True(OffsetInference.FlagsRuleExceptions(KThread, Quiet, 2) > 2, "init_task must carry PF_IDLE");
        Assert.True(OffsetInference.FlagsRuleExceptions(Idle, [.. Quiet, (Idle, false, "swapper/1")], 2) > 2, "one idle task on the list");
    }
}
