using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// kernfs_node.parent (__parent since 6.15) and name without BTF, both declared before priv: the root node of the cgroup hierarchy has parent NULL and the empty name;
/// every other cgroup's node walks up to that root through parent (<see cref="KernfsPath"/>: bounded depth, names that end
/// within NAME_MAX), each name printable, non-empty and without '/'. A cycle, an unterminated name or a chain deeper than
/// the cap fails the pair of offsets, never the search.
/// </summary>
public static class KernfsRule
{
    /// <summary>Every (parent, name) offset pair in the first <paramref name="windowBytes"/> of a kernfs_node, pointer
    /// aligned and below <paramref name="privAt"/> (the priv member already found), that the nodes satisfy. parent
    /// (__parent since 6.15) and name are declared before priv in every kernfs_node since kernfs arrived (3.14); past
    /// priv the window may reach a neighbour in the slab whose own name pointer walks the same way (7.3: a second
    /// candidate at 0x98, in some boots only).</summary>
    public static List<(int Parent, int Name)> ParentAndName(GuestReader reader, ulong rootKn, IReadOnlyList<ulong> childKns, int windowBytes, int privAt, int maxDepth)
    {
        int p = reader.PointerSize;
        var parents = new List<int>();
        var names = new List<int>();
        for (int o = 0; o + p <= Math.Min(windowBytes, privAt); o += p)
        {
            if (reader.TryPointer(rootKn + (ulong)o, out ulong up) && up == 0
                && childKns.All(kn => reader.TryPointer(kn + (ulong)o, out ulong v) && reader.IsKernelPointer(v)))
                parents.Add(o);
            if (KernfsPath.Name(reader, rootKn, o) == "") names.Add(o);
        }
        return (from pa in parents from na in names
                where pa != na && childKns.All(kn => ReachesRoot(reader, kn, pa, na, rootKn, maxDepth))
                select (pa, na)).ToList();
    }

    private static bool ReachesRoot(GuestReader reader, ulong kn, int parentAt, int nameAt, ulong rootKn, int maxDepth)
    {
        var path = KernfsPath.Read(reader, kn, parentAt, nameAt, maxDepth);
        return path.Problem is null && path.Root == rootKn && path.Path is { Length: > 1 } text
            && text[1..].Split('/').All(n => n.Length > 0 && n.All(c => c is >= ' ' and < '\x7f'));
    }
}
