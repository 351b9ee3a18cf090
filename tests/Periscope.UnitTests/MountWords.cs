namespace Periscope.UnitTests;

/// <summary>Sparse guest memory as words, 64-bit or i386, for the mount rules' tests (MountRule reads through delegates).</summary>
internal sealed class MountWords(int pointerSize)
{
    public const ulong Kernel = 0xffff_8880_0000_0000;
    public const ulong Kernel32 = 0xc000_0000;

    /// <summary>Where a test's objects start: in the direct map of either word size.</summary>
    public static ulong Base(int pointerSize) => (pointerSize == 8 ? Kernel : Kernel32) + 0x10000;

    public readonly Dictionary<ulong, ulong> Words = [];
    public ulong? Word(ulong va) => Words.TryGetValue(va, out ulong v) ? v : null;
    public bool IsKernel(ulong va) => va >= (pointerSize == 8 ? Kernel : Kernel32);
    private ulong P => (ulong)pointerSize;

    /// <summary>A circular list_head through <paramref name="head"/> and <paramref name="nodes"/>, in this order.</summary>
    public void List(ulong head, params ulong[] nodes)
    {
        var ring = new[] { head }.Concat(nodes).ToArray();
        for (int i = 0; i < ring.Length; i++)
        {
            Words[ring[i]] = ring[(i + 1) % ring.Length];
            Words[ring[i] + P] = ring[(i + ring.Length - 1) % ring.Length];
        }
    }

    /// <summary>rb_node { __rb_parent_color, rb_right, rb_left } at <paramref name="node"/> (colour bit set: black).</summary>
    public void Node(ulong node, ulong parent, ulong left, ulong right)
    {
        Words[node] = parent | 1;
        Words[node + P] = right;
        Words[node + 2 * P] = left;
    }
}
