using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Linux;

namespace Periscope.UnitTests;

/// <summary>
/// The rules behind kworker names and ps --full's cgroup path without BTF, on synthetic memory: worker.desc's and
/// kthread.full_name's shapes, the kernfs parent chain walk (the view's and the inference's) and the search for
/// kernfs_node.parent and name, with hostile nodes: cycles, unterminated names, chains deeper than the cap.
/// </summary>
public class InferenceWorkerCgroupTests
{
    private static readonly IntrospectionLimits Limits = new();

    private static byte[] Desc(string text, int length = WorkerRule.MaxDescLength)
    {
        var b = new byte[length];
        System.Text.Encoding.ASCII.GetBytes(text).CopyTo(b, 0);
        return b;
    }

    [Fact]
    public void Desc_is_printable_text_terminated_inside_its_32_bytes()
    {
        Assert.True(WorkerRule.IsDesc(Desc("events_unbound"), out bool empty));
        Assert.False(empty);
        Assert.True(WorkerRule.IsDesc(Desc(""), out empty));
        Assert.True(empty);
        // 32 characters leave no room for the NUL (WORKER_DESC_LEN is 24 or 32): not a desc, whatever follows.
        Assert.False(WorkerRule.IsDesc(Desc(new string('a', 32), 40), out _));
        Assert.True(WorkerRule.IsDesc(Desc("events_freezable_pwr_efficient"), out _)); // 30 characters: 6.12's char[32]
        Assert.False(WorkerRule.IsDesc(Desc("ev\x01nts"), out _));
        Assert.False(WorkerRule.IsDesc([0x40, 0x12, 0x34, 0x81, 0x88, 0xff, 0xff, 0xff, .. new byte[24]], out _)); // a pointer
        Assert.False(WorkerRule.IsDesc(Desc("short", 8), out _)); // a field shorter than WORKER_DESC_LEN
    }

    [Fact]
    public void Full_name_is_the_comm_or_longer_than_it_and_starts_with_it()
    {
        Assert.True(WorkerRule.IsFullNameOf("rcu_tasks_trace_kthread", "rcu_tasks_trace"));
        Assert.True(WorkerRule.IsFullNameOf("rcu_tasks_trace", "rcu_tasks_trace")); // Debian 6.12+ keeps names that fit too
        Assert.False(WorkerRule.IsFullNameOf("rcu_tasks_rude_kthread", "rcu_tasks_trace"));
        Assert.False(WorkerRule.IsFullNameOf("kthreadd_and_more", "kthreadd")); // a short comm was never cut
        Assert.False(WorkerRule.IsFullNameOf(null, "rcu_tasks_trace"));
        Assert.False(WorkerRule.IsFullNameOf("rcu_tasks_trace\x1b[2J", "rcu_tasks_trace"));
    }

    // kernfs_node as in 6.1 on x86-64: count, active, parent at 8, name at 16, priv at 0x60.
    private const int Parent = 8, Name = 16, Priv = 0x60;
    private const ulong Nodes = SyntheticGuest.Base + 0x10000, Texts = SyntheticGuest.Base + 0x80000;

    /// <summary>A node at slot <paramref name="slot"/> with the given parent (0: none) and name.</summary>
    private static ulong Node(SyntheticGuest g, int slot, ulong parent, string name)
    {
        ulong kn = Nodes + (ulong)slot * 0x80, text = Texts + (ulong)slot * 0x200;
        g.U32(kn, 1);
        g.U64(kn + Parent, parent);
        g.U64(kn + Name, text);
        g.U64(kn + Priv, SyntheticGuest.Base + 0x200000 + (ulong)slot * 0x1000);
        g.Text(text, name);
        return kn;
    }

    /// <summary>A guest with the hierarchy's root node (no parent, the empty name) in slot 0.</summary>
    private static SyntheticGuest WithRoot(out ulong root)
    {
        var g = new SyntheticGuest();
        root = Node(g, 0, 0, "");
        return g;
    }

    [Fact]
    public void A_node_walks_up_to_the_root_and_its_path_leaves_the_root_name_out()
    {
        using var g = WithRoot(out ulong root);
        ulong slice = Node(g, 1, root, "system.slice");
        ulong scope = Node(g, 2, slice, "docker-0123.scope");
        var r = g.Reader(Limits);
        Assert.Equal(new KernfsPathResult("/system.slice/docker-0123.scope", null, root), KernfsPath.Read(r, scope, Parent, Name, 256));
        Assert.Equal(new KernfsPathResult("/", null, root), KernfsPath.Read(r, root, Parent, Name, 256));
        Assert.Equal([(Parent, Name)], KernfsRule.ParentAndName(r, root, [scope, slice], 0x80, Priv, 256));
    }

    [Fact]
    public void A_name_pointer_past_priv_is_no_candidate()
    {
        // As a slab neighbour's name can (7.3: 0x98 beside 0x10): past priv, a pointer to each node's own name and the
        // root's empty one. parent and name are declared before priv, so only (8, 16) fits.
        using var g = WithRoot(out ulong root);
        ulong slice = Node(g, 1, root, "system.slice");
        ulong scope = Node(g, 2, slice, "docker-0123.scope");
        foreach (var kn in new[] { root, slice, scope }) g.U64(kn + Priv + 0x10, g.Reader(Limits).TryPointer(kn + Name, out ulong text) ? text : 0);
        var r = g.Reader(Limits);
        Assert.Equal(KernfsPath.Read(r, scope, Parent, Name, 256), KernfsPath.Read(r, scope, Parent, Priv + 0x10, 256));
        Assert.Equal([(Parent, Name)], KernfsRule.ParentAndName(r, root, [scope, slice], 0x80, Priv, 256));
    }

    [Fact]
    public void A_cycle_in_the_parent_chain_is_a_problem_and_settles_no_offsets()
    {
        using var g = WithRoot(out ulong root);
        ulong a = Node(g, 1, 0, "a");
        ulong b = Node(g, 2, a, "b");
        g.U64(a + Parent, b); // a -> b -> a -> ...
        AssertRefused(g, root, b, "more than 256 kernfs levels");
    }

    /// <summary>The walk from <paramref name="node"/> gives no path but the problem, and the rule settles no offsets.</summary>
    private static void AssertRefused(SyntheticGuest g, ulong root, ulong node, string problem)
    {
        var r = g.Reader(Limits);
        var path = KernfsPath.Read(r, node, Parent, Name, 256);
        Assert.Null(path.Path);
        Assert.Contains(problem, path.Problem);
        Assert.Empty(KernfsRule.ParentAndName(r, root, [node], 0x80, Priv, 256));
    }

    [Fact]
    public void An_unterminated_name_is_a_problem_and_settles_no_offsets()
    {
        using var g = WithRoot(out ulong root);
        ulong child = Node(g, 1, root, "x");
        g.Text(Texts + 0x200, new string('n', KernfsPath.MaxNameBytes + 10)); // runs past NAME_MAX before its NUL
        AssertRefused(g, root, child, "not NUL-terminated");
    }

    [Fact]
    public void A_chain_deeper_than_the_cap_is_cut_with_a_problem()
    {
        using var g = WithRoot(out ulong root);
        ulong node = root;
        for (int i = 1; i <= 40; i++) node = Node(g, i, node, $"level{i}");
        var r = g.Reader(Limits);
        Assert.Equal(41, KernfsPath.Read(r, node, Parent, Name, 40).Path!.Split('/').Length);
        Assert.Contains("more than 39 kernfs levels", KernfsPath.Read(r, node, Parent, Name, 39).Problem);
        Assert.Empty(KernfsRule.ParentAndName(r, root, [node], 0x80, Priv, 39));
        Assert.Equal([(Parent, Name)], KernfsRule.ParentAndName(r, root, [node], 0x80, Priv, 40));
    }

    [Fact]
    public void A_parent_that_is_no_kernel_pointer_or_an_unprintable_name_is_refused()
    {
        using var g = WithRoot(out ulong root);
        ulong child = Node(g, 1, 0x0000_7fff_0000_1000, "user");
        ulong odd = Node(g, 2, root, "tab\there");
        var r = g.Reader(Limits);
        Assert.Contains("not a kernel pointer", KernfsPath.Read(r, child, Parent, Name, 256).Problem);
        Assert.Empty(KernfsRule.ParentAndName(r, root, [child], 0x80, Priv, 256));
        // The view reads such a name (and escapes it when printing); the rule wants names that prove the offsets.
        Assert.Equal("/tab\there", KernfsPath.Read(r, odd, Parent, Name, 256).Path);
        Assert.Empty(KernfsRule.ParentAndName(r, root, [odd], 0x80, Priv, 256));
    }

    // task_struct.cgroups on synthetic tasks: init_task, a task in the root css_set, and one whose css_set was allocated
    // right after its task_struct (inside the 16 KiB task window, outside the task).
    private const int CgroupsAt = 0x800, PtracedAt = 0x900, DomCsetAt = 0x78;
    private const ulong InitTask = SyntheticGuest.Base + 0x10000, RootTask = SyntheticGuest.Base + 0x20000, ScopeTask = SyntheticGuest.Base + 0x30000;
    private const ulong InitCssSet = SyntheticGuest.Base + 0x100000, RootCgroup = SyntheticGuest.Base + 0x110000, ScopeCgroup = SyntheticGuest.Base + 0x120000;

    private static void Task(SyntheticGuest g, ulong task, ulong cssSet)
    {
        g.U64(task + CgroupsAt, cssSet);
        // Every task's own empty ptraced list followed by an empty ptrace_entry: a pointer to a word that points back,
        // then a pointer to itself, the shape a css_set has at dom_cset. Only a pointer outside init_task may count.
        ulong ptraced = task + PtracedAt;
        g.U64(ptraced, ptraced);
        g.U64(ptraced + 8, ptraced);
        g.U64(ptraced + 16, ptraced + 16);
        g.U64(ptraced + 24, ptraced + 16);
    }

    private static void CssSet(SyntheticGuest g, ulong set, ulong cgroup)
    {
        g.U64(set + DomCsetAt, set);
        g.U64(set + DomCsetAt + 8, cgroup);
        g.U64(cgroup, cgroup); // css.cgroup, the cgroup's first member, points back to it
    }

    [Fact]
    public void Task_cgroups_holds_when_a_css_set_sits_right_after_its_task_struct_and_a_tasks_own_empty_lists_do_not_count()
    {
        using var g = new SyntheticGuest();
        ulong scopeSet = ScopeTask + 0x2000;
        Task(g, InitTask, InitCssSet);
        Task(g, RootTask, InitCssSet);
        Task(g, ScopeTask, scopeSet);
        CssSet(g, InitCssSet, RootCgroup);
        CssSet(g, scopeSet, ScopeCgroup);
        var report = OffsetInference.InferCgroupMembers(g.Reader(Limits), Limits, InitTask, [InitTask, RootTask, ScopeTask]);
        var cgroups = report.Find("task_struct", "cgroups");
        Assert.NotNull(cgroups);
        Assert.Equal(CgroupsAt, cgroups.Offset);
        Assert.Equal([CgroupsAt], cgroups.Candidates);
        Assert.Equal(DomCsetAt, report.Find("css_set", "dom_cset")?.Offset);
        Assert.Equal(DomCsetAt + 8, report.Find("css_set", "dfl_cgrp")?.Offset);
    }

    // kernfs_nodes KnStride apart, as in a slab: the 512-byte window of each also holds the next ones.
    private const int KnStride = 0x80;
    private const ulong Kns = SyntheticGuest.Base + 0x200000, KnTexts = SyntheticGuest.Base + 0x280000, SliceCgroup = SyntheticGuest.Base + 0x130000;

    private static ulong KernfsNodeAt(SyntheticGuest g, int slot, ulong parent, string name, ulong priv)
    {
        ulong kn = Kns + (ulong)(slot * KnStride), text = KnTexts + (ulong)slot * 0x40;
        g.U32(kn, 1);
        g.U64(kn + Parent, parent);
        g.U64(kn + Name, text);
        g.U64(kn + Priv, priv);
        g.Text(text, name);
        return kn;
    }

    [Fact]
    public void Kernfs_name_is_the_nodes_own_when_the_next_nodes_of_the_slab_walk_as_well()
    {
        // kernfs_nodes 0x80 apart, as in a slab: the 512-byte window of each also holds the two after it. Behind the root
        // node lies another hierarchy's root (the empty name too), behind each cgroup's node some other named node, so
        // "the name member two nodes on" walks from the scope up to the root as well as the node's own name does (seen on
        // 6.1: 0x10 and 0x160, two 0xa8-byte nodes on).
        const int KnAt = 0xf8;
        using var g = new SyntheticGuest();
        ulong KernfsNode(int slot, ulong parent, string name, ulong cgroup) => KernfsNodeAt(g, slot, parent, name, cgroup);
        ulong rootKn = KernfsNode(0, 0, "", RootCgroup);
        KernfsNode(2, 0, "", 0);
        ulong sliceKn = KernfsNode(4, rootKn, "system.slice", SliceCgroup);
        KernfsNode(6, 0, "cpu.max", 0);
        ulong scopeKn = KernfsNode(8, sliceKn, "docker-0123.scope", ScopeCgroup);
        KernfsNode(10, 0, "memory.max", 0);
        ulong scopeSet = ScopeTask + 0x2000;
        Task(g, InitTask, InitCssSet);
        Task(g, ScopeTask, scopeSet);
        CssSet(g, InitCssSet, RootCgroup);
        CssSet(g, scopeSet, ScopeCgroup);
        g.U64(RootCgroup + KnAt, rootKn);
        g.U64(ScopeCgroup + KnAt, scopeKn);
        var report = OffsetInference.InferCgroupMembers(g.Reader(Limits), Limits, InitTask, [InitTask, ScopeTask]);
        Assert.Equal(KnAt, report.Find("cgroup", "kn")?.Offset);
        Assert.Equal(Priv, report.Find("kernfs_node", "priv")?.Offset);
        Assert.Equal(Parent, report.Find("kernfs_node", "parent")?.Offset);
        var name = report.Find("kernfs_node", "name");
        Assert.NotNull(name);
        Assert.Equal(Name, name.Offset);
        Assert.Equal([Name], name.Candidates); // the nodes two on lie past priv, where neither parent nor name is declared
    }

    [Fact]
    public void Cgroup_kn_is_the_node_that_makes_a_kernfs_tree_when_other_pointers_reach_the_cgroup_too()
    {
        // Each cgroup also points to its cgroup.procs node (cgroup_file.kn, right after kn), allocated one slab object
        // before its directory's node: through the file node's 512-byte window the directory's priv shows again, one
        // stride further. And it points to its refcount's data, a small object whose neighbour in the slab holds the
        // cgroup at a lower offset than priv (seen on i386: 0xc besides 0x98, in about one boot of six). In the root and in
        // the scope alike: only the directory's node has a parent and a name that walk up to the root's node.
        const int KnAt = 0x98, RefDataAt = 0xc, RefNeighbourAt = 0x40;
        const ulong CfType = SyntheticGuest.Base + 0x300000, RefData = SyntheticGuest.Base + 0x310000;
        using var g = new SyntheticGuest();
        ulong KernfsNode(int slot, ulong parent, string name, ulong priv) => KernfsNodeAt(g, slot, parent, name, priv);
        ulong rootKn = KernfsNode(1, 0, "", RootCgroup);
        ulong rootProcs = KernfsNode(0, rootKn, "cgroup.procs", CfType);
        ulong sliceKn = KernfsNode(4, rootKn, "system.slice", SliceCgroup);
        ulong scopeKn = KernfsNode(7, sliceKn, "docker-0123.scope", ScopeCgroup);
        ulong scopeProcs = KernfsNode(6, scopeKn, "cgroup.procs", CfType);
        ulong scopeSet = ScopeTask + 0x2000;
        Task(g, InitTask, InitCssSet);
        Task(g, ScopeTask, scopeSet);
        CssSet(g, InitCssSet, RootCgroup);
        CssSet(g, scopeSet, ScopeCgroup);
        foreach (var (cgroup, node, procs, data) in new[] { (RootCgroup, rootKn, rootProcs, RefData), (ScopeCgroup, scopeKn, scopeProcs, RefData + 0x100) })
        {
            g.U64(cgroup + KnAt, node);
            g.U64(cgroup + KnAt + 8, procs);
            g.U64(cgroup + RefDataAt, data);
            g.U64(data + RefNeighbourAt, cgroup);
        }
        var report = OffsetInference.InferCgroupMembers(g.Reader(Limits), Limits, InitTask, [InitTask, ScopeTask]);
        var kn = report.Find("cgroup", "kn");
        Assert.NotNull(kn);
        Assert.Equal(KnAt, kn.Offset);
        Assert.Equal([KnAt], kn.Candidates);
        Assert.Equal(Priv, report.Find("kernfs_node", "priv")?.Offset);
        Assert.Equal(Parent, report.Find("kernfs_node", "parent")?.Offset);
        Assert.Equal(Name, report.Find("kernfs_node", "name")?.Offset);
    }
}
