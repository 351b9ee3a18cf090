using Periscope.Linux.Model;
using Periscope.Linux.Tasks.Views;

namespace Periscope.UnitTests.Views;

/// <summary>psxview's verdict rule, table-tested: only a live, self-consistent task off the task list is hidden.</summary>
public class TaskViewRulesTests
{
    private static TaskSelfFacts Live(int pid, int? own = null, uint flags = 0, uint exit = 0) => new(pid, pid, "x", flags, exit, own ?? pid);

    public static TheoryData<string, TaskViewSet, TaskSelfFacts?, TaskViewVerdict> Cases => new()
    {
        { "listed, whatever else", TaskViewSet.TaskList, Live(42), TaskViewVerdict.Listed },
        { "listed garbage is still listed", TaskViewSet.TaskList | TaskViewSet.PidHash, null, TaskViewVerdict.Listed },
        { "pid hash and children only", TaskViewSet.PidHash | TaskViewSet.Children, Live(42), TaskViewVerdict.Hidden },
        { "run queue only", TaskViewSet.RunQueue, Live(7), TaskViewVerdict.Hidden },
        { "unreadable", TaskViewSet.PidHash, null, TaskViewVerdict.NotATask },
        { "zombie off the list", TaskViewSet.PidHash, Live(42, exit: TaskViewRules.ExitZombie), TaskViewVerdict.Exiting },
        { "exit_state the kernel never sets", TaskViewSet.PidHash, Live(42, exit: 0x4), TaskViewVerdict.NotATask },
        { "idle task of a CPU", TaskViewSet.CpuIdle | TaskViewSet.CpuCurrent, Live(0, flags: KernelMacros.PF_IDLE), TaskViewVerdict.IdleTask },
        { "pid 0 without PF_IDLE", TaskViewSet.CpuIdle, Live(0), TaskViewVerdict.NotATask },
        { "pid 0 seen only as current", TaskViewSet.CpuCurrent, Live(0, flags: KernelMacros.PF_IDLE), TaskViewVerdict.NotATask },
        { "own pid link disagrees", TaskViewSet.Children, Live(42, own: 43), TaskViewVerdict.NotATask },
        { "own pid link unreadable", TaskViewSet.Children, new TaskSelfFacts(42, 42, "x", 0, 0, null), TaskViewVerdict.NotATask },
        { "pid above PID_MAX_LIMIT", TaskViewSet.PidHash, Live(KernelMacros.PID_MAX_LIMIT + 1), TaskViewVerdict.NotATask },
        { "negative tgid", TaskViewSet.PidHash, new TaskSelfFacts(42, -1, "x", 0, 0, 42), TaskViewVerdict.NotATask },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Verdict(string why, TaskViewSet seen, TaskSelfFacts? facts, TaskViewVerdict expected) =>
        Assert.True(TaskViewRules.Judge(seen, facts).Verdict == expected, $"{why}: expected {expected}, got {TaskViewRules.Judge(seen, facts)}");

    [Fact]
    public void Every_view_has_one_column_and_one_json_name()
    {
        var all = Enum.GetValues<TaskViewSet>().Where(v => v != TaskViewSet.None).ToList();
        Assert.Equal(all.OrderBy(v => v), TaskViewRules.Columns.Select(c => c.View).OrderBy(v => v));
        Assert.Equal(all.Count, all.Select(TaskViewRules.JsonName).Distinct().Count());
        Assert.DoesNotContain(all, v => TaskViewRules.JsonName(v) == v.ToString());
    }
}
