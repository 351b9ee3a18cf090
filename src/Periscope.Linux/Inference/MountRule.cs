namespace Periscope.Linux.Inference;

/// <summary>Candidate struct mount layout: where the embedded vfsmount sits, mnt_parent, mnt_mountpoint, and vfsmount.mnt_root.</summary>
public readonly record struct MountLayout(int Mnt, int Parent, int Mountpoint, int MntRoot);

/// <summary>The nodes of a namespace's mount list or tree in the kernel's order, and why the walk stopped early (null when
/// it reached the end): a bad link, a cycle, or more nodes than the cap. The nodes before the fault are kept.</summary>
public sealed record MountWalk(IReadOnlyList<ulong> Nodes, string? Fault, ulong FaultAt)
{
    public bool Complete => Fault is null;
}

/// <summary>
/// The struct mount facts. <see cref="ClimbsToRoot"/>: from a file's vfsmount, climb mnt_parent through mounts whose
/// mountpoints are named dentries to a root mount that is its own parent with its mountpoint at its own root. Since Linux
/// 7.x the initramfs is no longer the root mount: it is mounted on nullfs's root, so the root mount is reached one level
/// up (before, the file's own mount was the root). Bounded by <see cref="MaxDepth"/> levels; a cycle that never reaches
/// a self-parent fails. <see cref="ListNodes"/> and <see cref="TreeNodes"/> walk a mount namespace's mounts (the
/// mnt_namespace.list of mount.mnt_list up to 6.7, the mnt_namespace.mounts rb-tree of mount.mnt_node since 6.8), checking
/// every link, and <see cref="ParentsWithin"/> is the check that the nodes are mounts: every mount's parent is one of them.
/// </summary>
public static class MountRule
{
    /// <summary>Mount levels climbed from a file's mount to the root mount (the initramfs on nullfs is two).</summary>
    public const int MaxDepth = 16;

    public static bool ClimbsToRoot(ulong vfsmount, MountLayout l, Func<ulong, ulong> pointer, Func<ulong, bool> isKernel, Func<ulong, bool> isNamedDentry)
    {
        ulong mount = vfsmount - (ulong)l.Mnt;
        for (int depth = 0; depth < MaxDepth; depth++)
        {
            ulong parent = pointer(mount + (ulong)l.Parent), point = pointer(mount + (ulong)l.Mountpoint);
            if (parent == mount) return point == pointer(mount + (ulong)l.Mnt + (ulong)l.MntRoot);
            if (!isKernel(parent) || !isKernel(pointer(parent + (ulong)l.Mnt + (ulong)l.MntRoot)) || !isNamedDentry(point)) return false;
            mount = parent;
        }
        return false;
    }

    /// <summary>
    /// The list_head nodes after <paramref name="head"/> up to its return, each a kernel pointer whose prev links back
    /// (list_head { next, prev }); stops at the first bad link, at a node met twice (a cycle that does not pass the head)
    /// or after <paramref name="max"/> nodes.
    /// </summary>
    public static MountWalk ListNodes(ulong head, int pointerSize, int max, Func<ulong, ulong?> word, Func<ulong, bool> isKernel)
    {
        var nodes = new List<ulong>();
        var seen = new HashSet<ulong>();
        ulong at = head;
        while (true)
        {
            if (word(at) is not { } next || !isKernel(next)) return new MountWalk(nodes, $"list node 0x{at:x}: unreadable or not a kernel pointer", at);
            if (word(next + (ulong)pointerSize) != at) return new MountWalk(nodes, $"list node 0x{next:x}: prev does not link back to 0x{at:x}", next);
            if (next == head) return new MountWalk(nodes, null, 0);
            if (!seen.Add(next)) return new MountWalk(nodes, $"list node 0x{next:x} reached twice (a cycle)", next);
            if (nodes.Count >= max) return new MountWalk(nodes, $"more than {max} nodes", next);
            nodes.Add(next);
            at = next;
        }
    }

    /// <summary>
    /// The rb_nodes of the tree rooted at <paramref name="root"/> in order (rb_node { unsigned long __rb_parent_color;
    /// rb_right; rb_left; } since 2.6.18): each node a kernel pointer whose parent bits name the node it hangs from (the
    /// root: none); stops at the first bad link, a node met twice or after <paramref name="max"/> nodes.
    /// </summary>
    public static MountWalk TreeNodes(ulong root, int pointerSize, int max, Func<ulong, ulong?> word, Func<ulong, bool> isKernel)
    {
        ulong p = (ulong)pointerSize;
        var nodes = new List<ulong>();
        var seen = new HashSet<ulong>();
        var stack = new Stack<ulong>();
        ulong at = root, parent = 0;
        while (stack.Count > 0 || at != 0)
        {
            while (at != 0)
            {
                if (!isKernel(at)) return new MountWalk(nodes, $"rb-tree node 0x{at:x} is not a kernel pointer", at);
                if (!seen.Add(at)) return new MountWalk(nodes, $"rb-tree node 0x{at:x} reached twice (a cycle)", at);
                if (seen.Count > max) return new MountWalk(nodes, $"more than {max} nodes", at);
                if (word(at) is not { } parentColor || (parentColor & ~3UL) != parent)
                    return new MountWalk(nodes, $"rb-tree node 0x{at:x}: its parent link does not name 0x{parent:x}", at);
                if (word(at + 2 * p) is not { } left) return new MountWalk(nodes, $"rb-tree node 0x{at:x} is unreadable", at);
                stack.Push(at);
                parent = at;
                at = left;
            }
            ulong current = stack.Pop();
            nodes.Add(current);
            if (word(current + p) is not { } right) return new MountWalk(nodes, $"rb-tree node 0x{current:x} is unreadable", current);
            at = right;
            parent = current;
        }
        return new MountWalk(nodes, null, 0);
    }

    /// <summary>SB_BORN and SB_ACTIVE (include/linux/fs.h, unchanged 2.6..7.x): set in s_flags of every super block a mount
    /// in a namespace uses. SB_NOUSER: set on the kernel's internal super blocks (kern_mount), and since 7.0 on nullfs,
    /// which is every mount namespace's root; fs.h declares it as the int (1 &lt;&lt; 31), so an unsigned long s_flags holding
    /// it carries the sign extension: every bit above 31 set.</summary>
    public const ulong SbBorn = 1UL << 29, SbActive = 1UL << 30, SbNoUser = 1UL << 31;

    /// <summary>MNT_SHARED (include/linux/mount.h) in vfsmount.mnt_flags up to 6.16; T_SHARED (fs/mount.h) in
    /// mount.mnt_t_flags, the int declared right before mnt_id, since 6.17 (MNT_SHARED moved there).</summary>
    public const uint MntShared = 0x1000, TShared = 1;

    /// <summary>Whether <paramref name="flags"/> (an unsigned long read at one offset of a mounted super block) can be
    /// s_flags: SB_BORN and SB_ACTIVE set; SB_NOUSER clear, unless the super block is a namespace root's
    /// (<paramref name="namespaceRoot"/>: nullfs since 7.0), and the bits above 31 clear, or all set with SB_NOUSER
    /// (its sign extension).</summary>
    public static bool IsMountedSuperBlockFlags(ulong flags, int pointerSize, bool namespaceRoot)
    {
        if ((flags & (SbBorn | SbActive)) != (SbBorn | SbActive)) return false;
        bool noUser = (flags & SbNoUser) != 0;
        if (noUser && !namespaceRoot) return false;
        if (pointerSize == 4) return flags <= uint.MaxValue;
        ulong high = flags >> 32;
        return high == 0 || (high == uint.MaxValue && noUser);
    }

    /// <summary>
    /// Whether the word right before <paramref name="nsOffset"/> can be mount.mnt_master in every mount: NULL or a kernel
    /// pointer to another mount, so never into the mount itself. Since 6.15 (CONFIG_FSNOTIFY) struct mount also holds
    /// prev_ns, equal to mnt_ns whenever no mount notification is pending, declared right after the list_head to_notify:
    /// the word before prev_ns is to_notify.prev, which points back into its own mount while that list is empty.
    /// </summary>
    public static bool MasterBefore(IEnumerable<ulong> mounts, int nsOffset, int pointerSize, Func<ulong, ulong?> word, Func<ulong, bool> isKernel)
    {
        foreach (ulong m in mounts)
        {
            if (word(m + (ulong)(nsOffset - pointerSize)) is not { } master) return false;
            if (master == 0) continue;
            if (!isKernel(master) || (master >= m && master < m + (ulong)nsOffset)) return false;
        }
        return true;
    }

    /// <summary>
    /// Whether the ints read as mount.mnt_group_id are peer group ids: below <paramref name="maxId"/>, and non-zero exactly
    /// in the shared mounts, by MNT_SHARED in vfsmount.mnt_flags (up to 6.16) or by T_SHARED in mnt_t_flags, the int right
    /// before mnt_id (6.17+); either flag source must agree with every mount.
    /// </summary>
    public static bool GroupIdsMatchShared(IReadOnlyList<(uint Group, uint MntFlags, uint TFlags)> mounts, uint maxId) =>
        mounts.All(m => m.Group < maxId)
        && (mounts.All(m => (m.Group != 0) == ((m.MntFlags & MntShared) != 0)) || mounts.All(m => (m.Group != 0) == ((m.TFlags & TShared) != 0)));

    /// <summary>
    /// The offsets r (pointer-aligned, struct path { mnt, dentry } fitting in <paramref name="window"/>) where every user
    /// process's fs_struct holds the vfsmount of a namespace mount (one of <paramref name="vfsmounts"/>) and a kernel
    /// dentry pointer after it. Kernel threads (no mm) are left out: they share init_fs, whose root since 7.0 is the
    /// kernel's internal rootfs mount, in no namespace (the namespaces' root is nullfs).
    /// </summary>
    public static List<int> FsRootSlots(IEnumerable<(ulong Fs, ulong Mm)> leaders, ISet<ulong> vfsmounts, int pointerSize, int window,
        Func<ulong, ulong?> word, Func<ulong, bool> isKernel)
    {
        var fss = leaders.Where(l => l.Mm != 0 && l.Fs != 0).Select(l => l.Fs).Distinct().ToList();
        var slots = new List<int>();
        if (fss.Count == 0 || !fss.All(isKernel)) return slots;
        for (int r = 0; r + 2 * pointerSize <= window; r += pointerSize)
            if (fss.All(f => word(f + (ulong)r) is { } mnt && vfsmounts.Contains(mnt) && word(f + (ulong)(r + pointerSize)) is { } dentry && isKernel(dentry)))
                slots.Add(r);
        return slots;
    }

    /// <summary>At least one mount is its own parent (the namespace's root) and every mount's mnt_parent (at
    /// <paramref name="parentOffset"/>) is one of <paramref name="mounts"/>.</summary>
    public static bool ParentsWithin(IReadOnlyList<ulong> mounts, int parentOffset, Func<ulong, ulong?> word)
    {
        var set = mounts.ToHashSet();
        bool root = false;
        foreach (ulong m in mounts)
        {
            if (word(m + (ulong)parentOffset) is not { } parent || !set.Contains(parent)) return false;
            root |= parent == m;
        }
        return root;
    }
}
