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

    private static byte[] Desc(string text, int length = WorkerRule.DescLength)
    {
        var b = new byte[length];
        System.Text.Encoding.ASCII.GetBytes(text).CopyTo(b, 0);
        return b;
    }

    [Fact]
    public void Desc_is_printable_text_terminated_inside_its_24_bytes()
    {
        Assert.True(WorkerRule.IsDesc(Desc("events_unbound"), out bool empty));
        Assert.False(empty);
        Assert.True(WorkerRule.IsDesc(Desc(""), out empty));
        Assert.True(empty);
        // 24 characters leave no room for the NUL: not a desc, whatever follows.
        Assert.False(WorkerRule.IsDesc(Desc(new string('a', 24), 32), out _));
        Assert.False(WorkerRule.IsDesc(Desc("ev\x01nts"), out _));
        Assert.False(WorkerRule.IsDesc([0x40, 0x12, 0x34, 0x81, 0x88, 0xff, 0xff, 0xff, .. new byte[16]], out _)); // a pointer
        Assert.False(WorkerRule.IsDesc(Desc("short", 8), out _)); // a field shorter than WORKER_DESC_LEN
    }

    [Fact]
    public void Full_name_is_longer_than_the_comm_and_starts_with_it()
    {
        Assert.True(WorkerRule.IsFullNameOf("rcu_tasks_trace_kthread", "rcu_tasks_trace"));
        Assert.False(WorkerRule.IsFullNameOf("rcu_tasks_trace", "rcu_tasks_trace")); // not longer: no full name kept
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
}
