using Periscope.Linux.Inference;

namespace Periscope.UnitTests;

/// <summary>
/// The mount namespace walks behind `mounts` with and without BTF (<see cref="MountRule"/>) on synthetic memory, 64-bit
/// and i386: a namespace's mount list (up to 6.7) and rb-tree (6.8+) are walked in the kernel's order with every link
/// checked; broken back links, wrong parent bits, cycles and absurd counts end the walk with a fault (the nodes before it
/// kept), and the nodes are mounts only at the offset where every mount's parent is one of them.
/// </summary>
public class InferenceMountNamespaceTests
{
    private static ulong Base(int pointerSize) => MountWords.Base(pointerSize);

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void A_mount_list_is_walked_in_order_and_its_nodes_are_mounts_at_one_offset_only(int pointerSize)
    {
        var m = new MountWords(pointerSize);
        ulong b = Base(pointerSize), head = b + 0x20, node = 0x90, parent = 0x10;
        ulong[] mounts = [b + 0x1000, b + 0x2000, b + 0x3000];
        m.List(head, mounts.Select(x => x + node).ToArray());
        m.Words[mounts[0] + parent] = mounts[0]; // the root mount is its own parent
        m.Words[mounts[1] + parent] = mounts[0];
        m.Words[mounts[2] + parent] = mounts[1];
        var walk = MountRule.ListNodes(head, pointerSize, 100, m.Word, m.IsKernel);
        Assert.True(walk.Complete, walk.Fault);
        Assert.Equal(mounts.Select(x => x + node), walk.Nodes);
        Assert.True(MountRule.ParentsWithin(walk.Nodes.Select(x => x - node).ToList(), (int)parent, m.Word));
        foreach (ulong wrong in new[] { node - (ulong)pointerSize, node + (ulong)pointerSize, node + 0x100 })
            Assert.False(MountRule.ParentsWithin(walk.Nodes.Select(x => x - wrong).ToList(), (int)parent, m.Word));
        // Without a self-parented root the nodes are no namespace's mounts.
        m.Words[mounts[0] + parent] = mounts[2];
        Assert.False(MountRule.ParentsWithin(walk.Nodes.Select(x => x - node).ToList(), (int)parent, m.Word));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void A_list_with_a_broken_back_link_a_cycle_past_its_head_or_too_many_nodes_faults(int pointerSize)
    {
        var m = new MountWords(pointerSize);
        ulong b = Base(pointerSize), head = b, p = (ulong)pointerSize;
        ulong[] nodes = [b + 0x100, b + 0x200, b + 0x300, b + 0x400];
        m.List(head, nodes);
        Assert.Equal(4, MountRule.ListNodes(head, pointerSize, 4, m.Word, m.IsKernel).Nodes.Count);
        var capped = MountRule.ListNodes(head, pointerSize, 3, m.Word, m.IsKernel);
        Assert.Contains("more than 3", capped.Fault);
        Assert.Equal(3, capped.Nodes.Count);

        m.Words[nodes[2] + p] = nodes[0]; // prev of the third node does not name the second
        var broken = MountRule.ListNodes(head, pointerSize, 100, m.Word, m.IsKernel);
        Assert.Equal(nodes[2], broken.FaultAt);
        Assert.Equal(nodes[..2], broken.Nodes);

        // A cycle that never returns to the head: 1 -> 2 -> 3 -> 2. Node 2's prev cannot name both 1 and 3: the walk ends
        // at the link that does not match, whichever way the hostile guest set it.
        foreach (ulong prevOfSecond in new[] { nodes[0], nodes[2] })
        {
            m.List(head, nodes);
            m.Words[nodes[2]] = nodes[1];
            m.Words[nodes[1] + p] = prevOfSecond;
            var cycle = MountRule.ListNodes(head, pointerSize, 1_000_000, m.Word, m.IsKernel);
            Assert.False(cycle.Complete);
            Assert.True(cycle.Nodes.Count <= 3);
        }

        m.Words[head] = 0x1234; // not a kernel pointer
        Assert.False(MountRule.ListNodes(head, pointerSize, 100, m.Word, m.IsKernel).Complete);
        m.Words.Remove(head); // unreadable
        Assert.False(MountRule.ListNodes(head, pointerSize, 100, m.Word, m.IsKernel).Complete);
    }

    /// <summary>The 6.8+ tree: in-order is the kernel's order (by mount id); every node's parent bits must name the node
    /// it hangs from, so a list_head or any other pointer pair read as a tree fails.</summary>
    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void A_mount_tree_is_walked_in_order_with_every_parent_link_checked(int pointerSize)
    {
        var m = new MountWords(pointerSize);
        ulong b = Base(pointerSize);
        ulong n1 = b + 0x100, n2 = b + 0x200, n3 = b + 0x300, n4 = b + 0x400, n5 = b + 0x500;
        //        n2
        //      n1   n4
        //         n3  n5
        m.Node(n2, 0, n1, n4);
        m.Node(n1, n2, 0, 0);
        m.Node(n4, n2, n3, n5);
        m.Node(n3, n4, 0, 0);
        m.Node(n5, n4, 0, 0);
        var walk = MountRule.TreeNodes(n2, pointerSize, 100, m.Word, m.IsKernel);
        Assert.True(walk.Complete, walk.Fault);
        Assert.Equal([n1, n2, n3, n4, n5], walk.Nodes);
        Assert.Empty(MountRule.TreeNodes(0, pointerSize, 100, m.Word, m.IsKernel).Nodes);

        var capped = MountRule.TreeNodes(n2, pointerSize, 4, m.Word, m.IsKernel);
        Assert.Contains("more than 4", capped.Fault);

        m.Node(n3, n2, 0, 0); // n3 claims the wrong parent
        var wrongParent = MountRule.TreeNodes(n2, pointerSize, 100, m.Word, m.IsKernel);
        Assert.Equal(n3, wrongParent.FaultAt);
        Assert.Equal([n1, n2], wrongParent.Nodes);

        m.Node(n3, n4, 0, 0);
        m.Node(n5, n4, n2, 0); // a cycle back to the root (its parent bits cannot name n5 and 0 at once: the cycle is met first)
        Assert.False(MountRule.TreeNodes(n2, pointerSize, 1_000_000, m.Word, m.IsKernel).Complete);
        m.Node(n5, n4, 0, 0x1000); // a child that is not a kernel pointer
        Assert.False(MountRule.TreeNodes(n2, pointerSize, 100, m.Word, m.IsKernel).Complete);
    }

    [Fact]
    public void A_self_linked_node_is_a_cycle_not_a_tree_of_a_million_nodes()
    {
        var m = new MountWords(8);
        ulong n = Base(8);
        m.Node(n, 0, n, n);
        var walk = MountRule.TreeNodes(n, 8, int.MaxValue, m.Word, m.IsKernel);
        Assert.Contains("twice", walk.Fault);
        // A list_head read as a tree root (next and prev where parent_color and rb_right are): its "parent" bits are a pointer.
        m.List(n + 0x100, n + 0x200);
        Assert.False(MountRule.TreeNodes(n + 0x200, 8, 100, m.Word, m.IsKernel).Complete);
    }
}
