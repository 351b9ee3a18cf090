using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// What the run-queue cross-view walks (kernel/sched/sched.h): struct rq's fair, real-time and deadline queues, the
/// rb-trees and lists they hold, and where each class's entity sits in task_struct. From BTF, or inferred without it
/// (<see cref="Inference.OffsetInference"/>: the scheduler's own code and the tasks' data). Optional members are null
/// when the kernel lacks them (fair_server before 6.8, my_q without group scheduling).
/// </summary>
public sealed record SchedulerOffsets
{
    /// <summary>MAX_RT_PRIO (include/linux/sched/prio.h, 100 since 2.6): the priority lists of an rt_rq. The one place
    /// this ABI constant is named; BTF describing a larger array is refused rather than looped over.</summary>
    public const int MaxRtPrio = 100;

    public int RqCfs { get; init; }
    public int RqRt { get; init; }
    public int RqDl { get; init; }
    /// <summary>rq.fair_server (6.8+): a deadline entity inside struct rq, queued on the dl tree but not a task.</summary>
    public int? RqFairServer { get; init; }
    /// <summary>cfs_rq.tasks_timeline.rb_root.rb_node: the fair tree's root.</summary>
    public int CfsRoot { get; init; }
    public int SeRunNode { get; init; }
    /// <summary>sched_entity.my_q: the group's own cfs_rq (CONFIG_FAIR_GROUP_SCHED); NULL for a task's entity.</summary>
    public int? SeMyQ { get; init; }
    public int TaskSe { get; init; }
    /// <summary>rt_rq.active.queue: MAX_RT_PRIO list heads.</summary>
    public int RtQueue { get; init; }
    public int RtRunList { get; init; }
    /// <summary>sched_rt_entity.my_q (CONFIG_RT_GROUP_SCHED).</summary>
    public int? RtMyQ { get; init; }
    public int TaskRt { get; init; }
    /// <summary>dl_rq.root.rb_root.rb_node: the deadline tree's root.</summary>
    public int DlRoot { get; init; }
    public int DlRbNode { get; init; }
    public int TaskDl { get; init; }
    public int RbRight { get; init; }
    public int RbLeft { get; init; }

    /// <summary>From BTF; null when a struct or required member is missing (the check then names what it lacks).</summary>
    public static SchedulerOffsets? FromBtf(BtfTypes btf)
    {
        var rq = btf.FindStruct("rq");
        var cfs = btf.FindStruct("cfs_rq");
        var se = btf.FindStruct("sched_entity");
        var task = btf.FindStruct("task_struct");
        var rt = btf.FindStruct("rt_rq");
        var rtSe = btf.FindStruct("sched_rt_entity");
        var dl = btf.FindStruct("dl_rq");
        var dlSe = btf.FindStruct("sched_dl_entity");
        var rb = btf.FindStruct("rb_node");
        if (rq is null || cfs is null || se is null || task is null || rt is null || rtSe is null || dl is null || dlSe is null || rb is null) return null;
        static int? O(StructLayout s, string path) => s.OffsetInside(path);
        if (O(rq, "cfs") is not { } rqCfs || O(rq, "rt") is not { } rqRt || O(rq, "dl") is not { } rqDl
            || O(cfs, "tasks_timeline.rb_root.rb_node") is not { } cfsRoot || O(se, "run_node") is not { } runNode || O(task, "se") is not { } taskSe
            || O(rt, "active.queue") is not { } rtQueue || O(rtSe, "run_list") is not { } runList || O(task, "rt") is not { } taskRt
            || O(dl, "root.rb_root.rb_node") is not { } dlRoot || O(dlSe, "rb_node") is not { } dlRbNode || O(task, "dl") is not { } taskDl
            || O(rb, "rb_right") is not { } right || O(rb, "rb_left") is not { } left)
            return null;
        return new SchedulerOffsets
        {
            RqCfs = rqCfs, RqRt = rqRt, RqDl = rqDl, RqFairServer = O(rq, "fair_server"),
            CfsRoot = cfsRoot, SeRunNode = runNode, SeMyQ = O(se, "my_q"), TaskSe = taskSe,
            RtQueue = rtQueue, RtRunList = runList, RtMyQ = O(rtSe, "my_q"), TaskRt = taskRt,
            DlRoot = dlRoot, DlRbNode = dlRbNode, TaskDl = taskDl, RbRight = right, RbLeft = left,
        };
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="Inference.OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        add("rq", "cfs", RqCfs); add("rq", "rt", RqRt); add("rq", "dl", RqDl); add("rq", "fair_server", RqFairServer);
        add("cfs_rq", "tasks_timeline.rb_root.rb_node", CfsRoot); add("sched_entity", "run_node", SeRunNode); add("sched_entity", "my_q", SeMyQ);
        add("task_struct", "se", TaskSe);
        add("rt_rq", "active.queue", RtQueue); add("sched_rt_entity", "run_list", RtRunList); add("sched_rt_entity", "my_q", RtMyQ);
        add("task_struct", "rt", TaskRt);
        add("dl_rq", "root.rb_root.rb_node", DlRoot); add("sched_dl_entity", "rb_node", DlRbNode); add("task_struct", "dl", TaskDl);
        add("rb_node", "rb_right", RbRight); add("rb_node", "rb_left", RbLeft);
        add("list_head", "next", 0);
    }
}
