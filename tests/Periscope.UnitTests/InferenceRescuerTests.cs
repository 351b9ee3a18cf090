using Periscope.Linux.Inference;
using Periscope.Memory;
using Periscope.UnitTests.Linux;

namespace Periscope.UnitTests;

/// <summary>
/// The rules behind 6.10+ rescuer names and kthread full names without BTF, on synthetic memory: worker.rescue_wq,
/// workqueue_struct.rescuer and workqueue_struct.name found from the rescuers' links and comms (both comm forms), refused
/// when a link or a name does not fit; kthread.full_name found where kernel threads keep names equal to their comms; the
/// task -> kthread -> worker cycle where 7.x's struct kthread points back to its task.
/// </summary>
public class InferenceRescuerTests
{
    private static readonly IntrospectionLimits Limits = new();

    // struct worker as in 6.12 on x86-64: entry/hentry at 0, desc at 0x80 (char[32]), rescue_wq at 0xa0;
    // workqueue_struct: pwqs (a list_head) at 0, rescuer at 0x88, name at 0xc0.
    private const int RescueWq = 0xa0, Desc = 0x80, WqRescuer = 0x88, WqName = 0xc0;
    private const int Window = 0x200;
    private const ulong Workers = SyntheticGuest.Base + 0x10000, Workqueues = SyntheticGuest.Base + 0x40000, Pool = SyntheticGuest.Base + 0x70000;

    private static ulong WorkerAt(int slot) => Workers + (ulong)slot * Window;

    /// <summary>Three pool workers on the pool's idle list (each named by its last workqueue), then one rescuer per
    /// workqueue name, each with an empty entry list (alloc_worker's INIT_LIST_HEAD) and its workqueue pointing back.</summary>
    private static List<(ulong Worker, string Comm)> Guest(SyntheticGuest g, string[] wqNames, Func<string, string> commOf)
    {
        var workers = new List<(ulong, string)>();
        var idle = new List<ulong> { Pool };
        for (int i = 0; i < 3; i++)
        {
            ulong w = WorkerAt(i);
            idle.Add(w);
            g.Text(w + Desc, i == 0 ? "events" : "events_unbound");
            workers.Add((w, $"kworker/0:{i}"));
        }
        g.CircularList(idle);
        for (int i = 0; i < wqNames.Length; i++)
        {
            ulong w = WorkerAt(3 + i), wq = Workqueues + (ulong)i * 0x400;
            g.U64(w, w);
            g.U64(w + 8, w);
            g.U64(w + RescueWq, wq);
            g.U64(wq, wq);
            g.U64(wq + 8, wq);
            g.U64(wq + WqRescuer, w);
            g.Text(wq + WqName, wqNames[i]);
            workers.Add((w, commOf(wqNames[i])));
        }
        return workers;
    }

    private static string Comm(string name) => name.Length <= 15 ? name : name[..15];

    private static List<WorkerRule.RescuerLayout> Layouts(SyntheticGuest g, List<(ulong, string)> workers) =>
        WorkerRule.RescuerLayouts(g.Reader(Limits), workers, Window, Window, () => { });

    [Fact]
    public void Rescue_wq_leads_to_a_workqueue_that_points_back_and_holds_the_name_the_comm_cuts()
    {
        using var g = new SyntheticGuest();
        var workers = Guest(g, ["rcu_gp", "kvfree_rcu_reclaim", "mm_percpu_wq"], n => Comm("kworker/R-" + n));
        Assert.Equal([new WorkerRule.RescuerLayout(RescueWq, WqRescuer, WqName)], Layouts(g, workers));
    }

    [Fact]
    public void Rescuers_named_by_the_bare_workqueue_name_before_6_8_fit_too()
    {
        using var g = new SyntheticGuest();
        var workers = Guest(g, ["rcu_gp", "kvfree_rcu_reclaim"], Comm);
        Assert.Equal([new WorkerRule.RescuerLayout(RescueWq, WqRescuer, WqName)], Layouts(g, workers));
    }

    [Fact]
    public void A_workqueue_that_does_not_point_back_settles_nothing()
    {
        using var g = new SyntheticGuest();
        var workers = Guest(g, ["rcu_gp", "kblockd"], n => Comm("kworker/R-" + n));
        g.U64(Workqueues + 0x400 + WqRescuer, WorkerAt(0)); // kblockd's wq names another worker as its rescuer
        Assert.Empty(Layouts(g, workers));
    }

    [Fact]
    public void A_rescuer_whose_comm_is_not_made_from_the_name_settles_nothing()
    {
        using var g = new SyntheticGuest();
        var workers = Guest(g, ["rcu_gp", "kblockd"], n => Comm("kworker/R-" + n));
        workers[^1] = (workers[^1].Worker, "kworker/R-kintegrityd"[..15]);
        Assert.Empty(Layouts(g, workers));
    }

    [Fact]
    public void Without_a_rescuer_or_with_only_rescuers_nothing_is_settled()
    {
        using var g = new SyntheticGuest();
        var workers = Guest(g, ["rcu_gp"], n => Comm("kworker/R-" + n));
        var reader = g.Reader(Limits);
        Assert.Empty(WorkerRule.RescuerLayouts(reader, workers.Take(3).ToList(), Window, Window, () => { }));
        Assert.Empty(WorkerRule.RescuerLayouts(reader, workers.Skip(3).ToList(), Window, Window, () => { }));
    }

    [Fact]
    public void A_rescuer_comm_is_the_name_cut_to_15_characters_with_or_without_the_kworker_R_prefix()
    {
        Assert.True(WorkerRule.IsRescuerCommOf("kworker/R-rcu_g", "rcu_gp"));
        Assert.True(WorkerRule.IsRescuerCommOf("kworker/R-mld", "mld"));
        Assert.True(WorkerRule.IsRescuerCommOf("rcu_gp", "rcu_gp"));
        Assert.True(WorkerRule.IsRescuerCommOf("kvfree_rcu_recl", "kvfree_rcu_reclaim"));
        Assert.False(WorkerRule.IsRescuerCommOf("kworker/R-rcu_g", "rcu")); // the name is shorter than the comm says
        Assert.False(WorkerRule.IsRescuerCommOf("kworker/R-mld", "mld_wq"));
        Assert.False(WorkerRule.IsRescuerCommOf("kworker/R-", ""));
        Assert.False(WorkerRule.IsRescuerCommOf("kworker/R-a\tb", "a\tb"));
    }

    // struct kthread as in 6.12: data at 0x18, full_name at 0x68.
    private const int KthreadData = 0x18, FullName = 0x68;
    private const ulong Kthreads = SyntheticGuest.Base + 0x90000, Names = SyntheticGuest.Base + 0xa0000;

    /// <summary>Debian's 6.12+ kernels keep a full_name for short names too ("ksoftirqd/0" == its comm); the rule must
    /// take a name equal to the comm, not only a longer one.</summary>
    [Fact]
    public void Full_names_equal_to_the_comm_settle_full_name()
    {
        using var g = new SyntheticGuest();
        (string Comm, string? Name)[] threads =
            [("kthreadd", null), ("ksoftirqd/0", "ksoftirqd/0"), ("migration/0", "migration/0"), ("rcu_preempt", "rcu_preempt")];
        var kthreads = new List<(ulong, string)>();
        for (int i = 0; i < threads.Length; i++)
        {
            ulong k = Kthreads + (ulong)i * 0x100, name = Names + (ulong)i * 0x40;
            g.U64(k + 0x20, k + 0x20); // parked: a completion's wait list, empty (points to itself)
            g.U64(k + 0x28, k + 0x20);
            if (threads[i].Name is { } n) { g.Text(name, n); g.U64(k + FullName, name); }
            kthreads.Add((k, threads[i].Comm));
        }
        Assert.Equal([FullName], WorkerRule.FullNameCandidates(g.Reader(Limits), kthreads, KthreadData + 8, 0x100, () => { }));
    }

    [Fact]
    public void A_full_name_is_the_comm_or_a_longer_name_the_full_comm_starts()
    {
        Assert.True(WorkerRule.IsFullNameOf("ksoftirqd/0", "ksoftirqd/0"));
        Assert.True(WorkerRule.IsFullNameOf("rcu_tasks_trace", "rcu_tasks_trace"));
        Assert.True(WorkerRule.IsFullNameOf("rcu_tasks_trace_kthread", "rcu_tasks_trace"));
        Assert.False(WorkerRule.IsFullNameOf("ksoftirqd/1", "ksoftirqd/0"));
        Assert.False(WorkerRule.IsFullNameOf("", ""));
    }

    /// <summary>
    /// 7.x's struct kthread (data at 0x20, parked and exited completions with their empty wait lists, full_name, task at
    /// 0x78, an empty affinity_node) of a worker whose task_struct points to it twice: worker_private (to its start) and
    /// vfork_done (to kthread.exited). Only the cycle through the separate struct worker is one; the cycles through the
    /// kthread's own empty list heads back to kthread.task are not (they tied worker_private on 7.3.4).
    /// </summary>
    [Fact]
    public void The_worker_cycle_goes_through_a_separate_struct_worker_not_the_kthreads_own_list_heads()
    {
        const int VforkDone = 0x800, WorkerPrivate = 0x818, Data = 0x20, Exited = 0x48, KthreadTask = 0x78, WorkerTask = 0x58;
        ulong task = SyntheticGuest.Base + 0x100000, kthread = SyntheticGuest.Base + 0x110000, worker = SyntheticGuest.Base + 0x120000;
        using var g = new SyntheticGuest();
        g.U64(task + VforkDone, kthread + Exited);
        g.U64(task + WorkerPrivate, kthread);
        g.U64(kthread + Data, worker);
        foreach (int head in new[] { 0x38, 0x58, 0x80 }) { g.U64(kthread + (ulong)head, kthread + (ulong)head); g.U64(kthread + (ulong)head + 8, kthread + (ulong)head); }
        g.U64(kthread + KthreadTask, task);
        g.U64(worker, worker); // a rescuer's entry: alloc_worker's empty list
        g.U64(worker + 8, worker);
        g.U64(worker + WorkerTask, task);
        var cycles = WorkerRule.WorkerCycles(g.Reader(Limits), task, 0x1000, Window, 8, _ => { });
        Assert.Equal([new WorkerRule.WorkerCycle(WorkerPrivate, Data, WorkerTask)], cycles);
    }
}
