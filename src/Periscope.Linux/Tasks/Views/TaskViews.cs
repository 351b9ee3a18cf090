using Periscope.Linux.Model;

namespace Periscope.Linux.Tasks.Views;

/// <summary>
/// psxview: every task_struct seen through every view the kernel keeps of it — the task list (and listed leaders'
/// thread lists), the initial pid namespace's IDR, each CPU's run queues (fair rb-tree with task groups, real-time
/// priority lists, deadline rb-tree), every listed task's children list, listed leaders' signal->thread_head lists and
/// group_leader links, and each CPU's current and idle task. A rootkit that unlinks a task from the task list must
/// also falsify every other view to stay unseen. The views are walked by <see cref="TaskViewWalks"/> (the same walks
/// the integrity cross-checks use: BTF or inferred layouts, any word size); all of them together are bounded by
/// <see cref="Memory.IntrospectionLimits.MaxTaskViewNodes"/>.
/// </summary>
public sealed class TaskViews : ITaskViewSink
{
    private readonly LinuxKernel _kernel;
    private readonly GuestReader _r;
    private readonly TaskViewWalks _walks;
    private readonly Dictionary<ulong, TaskViewSet> _seen = [];
    private readonly List<string> _gaps = [];
    private readonly List<string> _unavailable = [];
    private int _nodes;
    private TaskViewSet _available;

    public TaskViews(LinuxKernel kernel)
    {
        _kernel = kernel;
        _r = kernel.Reader;
        _walks = new TaskViewWalks(kernel);
    }

    public TaskViewReport Read()
    {
        ReadTaskList();
        Walk(TaskViewSet.PidHash, "pid hash", _walks.PidNamespace(this, _kernel.Limits.MaxXarrayEntries));
        Walk(TaskViewSet.Children, "children", _walks.Children(this));
        Walk(TaskViewSet.ThreadGroup, "thread groups", _walks.ThreadGroups(this));
        Walk(TaskViewSet.RunQueue | TaskViewSet.CpuCurrent | TaskViewSet.CpuIdle, "run queues",
            _walks.RunQueues(this, _kernel.Limits.MaxCpus, nameof(_kernel.Limits.MaxCpus), _kernel.Limits.MaxTasks));
        var rows = new List<TaskViewRow>(_seen.Count);
        foreach (var (task, seen) in _seen)
        {
            var facts = _walks.Facts(task);
            var (verdict, reason) = TaskViewRules.Judge(seen, facts);
            if (verdict == TaskViewVerdict.NotATask) _gaps.Add($"task_struct 0x{task:x} ({Describe(seen)}): {reason}");
            rows.Add(new TaskViewRow(task, facts, seen, verdict, reason));
        }
        rows.Sort((a, b) => (a.Facts?.Tgid ?? int.MaxValue, a.Facts?.Pid ?? int.MaxValue, a.Task).CompareTo((b.Facts?.Tgid ?? int.MaxValue, b.Facts?.Pid ?? int.MaxValue, b.Task)));
        if (_kernel.IsIncomplete) _gaps.AddRange(_kernel.IncompleteReasons.Select(r => $"kernel model: {r}"));
        return new TaskViewReport(rows, _available, _unavailable, _gaps.Distinct().ToList());
    }

    /// <summary>A walk that ran makes its views available; one that could not start says why.</summary>
    private void Walk(TaskViewSet views, string name, string? unavailable)
    {
        if (unavailable is null) _available |= views;
        else _unavailable.Add($"{name}: {unavailable}");
    }

    private static string Describe(TaskViewSet seen) =>
        string.Join("+", TaskViewRules.Columns.Where(c => (seen & c.View) != 0).Select(c => c.Column.ToLowerInvariant()));

    private static string ViewName(TaskViewSet view) => view switch
    {
        TaskViewSet.PidHash => "pid hash",
        TaskViewSet.Children => "children",
        TaskViewSet.ThreadGroup => "thread groups",
        _ => "run queues",
    };

    void ITaskViewSink.Seen(ulong task, TaskViewSet view, string via) => See(task, view);

    void ITaskViewSink.Gap(TaskViewSet view, TaskViewGapKind kind, string message) => _gaps.Add($"{ViewName(view)}: {message}");

    bool ITaskViewSink.BudgetExhausted => _nodes > _kernel.Limits.MaxTaskViewNodes;

    private void See(ulong task, TaskViewSet view)
    {
        if (!_r.IsKernelPointer(task)) { _gaps.Add($"{view}: 0x{task:x} is not a kernel pointer"); return; }
        _seen[task] = _seen.GetValueOrDefault(task) | view;
    }

    /// <summary>One node of any walk; false (with the gap recorded once) when the cross-view budget is spent.</summary>
    bool ITaskViewSink.Visit()
    {
        if (++_nodes <= _kernel.Limits.MaxTaskViewNodes) return true;
        if (_nodes == _kernel.Limits.MaxTaskViewNodes + 1)
            _gaps.Add($"walks stopped at the limit MaxTaskViewNodes = {_kernel.Limits.MaxTaskViewNodes} nodes");
        return false;
    }

    private void ReadTaskList()
    {
        _available |= TaskViewSet.TaskList;
        foreach (var t in _kernel.Tasks)
        {
            See(t.Address, TaskViewSet.TaskList);
            foreach (var th in t.Threads) See(th.Address, TaskViewSet.TaskList);
        }
    }
}
