using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// What `mounts` reads, without BTF. The evidence is every mount namespace the processes' nsproxies point to: its mount
/// list (up to 6.7) or rb-tree (6.8+) is found by walking each candidate with every link checked (<see cref="MountRule"/>)
/// to nodes whose mounts' mnt_parent (already inferred for paths) are all mounts of the same namespace. The members of
/// those mounts and of their super blocks then follow from what every one of them holds: a pointer back to its
/// namespace (mnt_ns), distinct small ids, a device name string, a file system type with a short name, the SB_BORN and
/// SB_ACTIVE bits of a live super block.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>Mount ids come from an IDA that hands out the lowest free number: a guest with 16 million live mounts is not one
    /// this view reads, and anything above is not an id.</summary>
    private const uint MaxMountId = 1 << 24;
    /// <summary>MNT_* bits in vfsmount.mnt_flags stay below 1 &lt;&lt; 29 (MNT_ONRB 0x10000000 is the highest, 6.8+).</summary>
    private const uint MountFlagsLimit = 1u << 29;
    /// <summary>File system type names the root or the usual mounts of any Linux carry; at least one must be among the
    /// type names read (a string any other pointer chain leads to would not name these).</summary>
    private static readonly string[] WellKnownFsTypes = ["rootfs", "nullfs", "proc", "sysfs", "tmpfs", "devtmpfs", "ramfs"];

    private sealed record MountEvidence(List<(ulong Mount, ulong Ns)> Mounts, ulong InitialRoot);

    private void InferMounts(TaskEvidence t, PathEvidence p)
    {
        if (MountNamespaces(t) is not { Count: > 0 } namespaces || p.MountParent is not { } parent || p.MountMnt is not { } mnt
            || p.MntSb is not { } mntSb || p.MntRoot is null)
        {
            foreach (var (s, m) in MountOffsets.Members.Where(x => x != ("vfsmount", "mnt_sb")))
                _report.AddUnknown(s, m, "needs nsproxy.mnt_ns and the path members of struct mount (mnt, mnt_parent, vfsmount.mnt_sb)");
            return;
        }
        if (MountNodes(namespaces, parent) is not { } ev) return;
        var mounts = ev.Mounts;

        // mnt_ns: the pointer every mount holds to the namespace it was found in; mnt_master is declared right before it (3.x..7.x).
        // prev_ns (6.15+) holds the same namespace, after to_notify, an empty list_head pointing back into its own mount.
        var nsOffsets = Offsets(o => o >= _p && mounts.All(m => SteppedWord(m.Mount + (ulong)o) == m.Ns)
            && MountRule.MasterBefore(mounts.Select(m => m.Mount), o, _p, SteppedWord, IsKernel));
        int? mntNs = _report.Add("mount", "mnt_ns", nsOffsets, "pointer in every mount of every namespace to that namespace, "
            + "after a word that is NULL or a pointer out of its own mount in every one (mnt_master; not to_notify.prev before the 6.15+ prev_ns)");
        if (mntNs is { } at)
            _report.AddStructural("mount", "mnt_master", at - _p, "declared right before mnt_ns (checked: NULL or a kernel pointer out of its own mount in every mount)");
        else _report.AddUnknown("mount", "mnt_master", "needs mount.mnt_ns, and a NULL or kernel pointer right before it in every mount");

        var sbs = mounts.Select(m => Ptr(m.Mount + (ulong)(mnt + mntSb))).Distinct().ToList();
        var rootSbs = mounts.Where(m => Ptr(m.Mount + (ulong)parent) == m.Mount).Select(m => Ptr(m.Mount + (ulong)(mnt + mntSb))).ToHashSet();
        var typeName = InferSuperBlocks(sbs, rootSbs);
        InferDeviceName(mounts, ev.InitialRoot, mnt + mntSb, typeName);
        int flags = mntSb + _p;
        if (mounts.All(m => _r.TryU32(m.Mount + (ulong)(mnt + flags), out uint f) && f < MountFlagsLimit))
            _report.AddStructural("vfsmount", "mnt_flags", flags, $"int declared right after mnt_sb (checked: below 0x{MountFlagsLimit:x} in every mount)");
        else _report.AddUnknown("vfsmount", "mnt_flags", "the int after mnt_sb holds bits no MNT_* flag has");
        InferMountIds(mounts, mntNs, mnt + flags);
        InferFsRoot(t, mounts.Select(m => m.Mount + (ulong)mnt).ToHashSet());
    }

    /// <summary>The mount namespaces init_task's and every leader's nsproxy point to (init's first), up to MaxInferenceTaskSamples.</summary>
    private List<ulong>? MountNamespaces(TaskEvidence t)
    {
        if (_report.Find(Task, "nsproxy")?.Offset is not { } nsproxy || _report.Find("nsproxy", "mnt_ns")?.Offset is not { } slot) return null;
        return t.AllLeaders.Prepend(t.Init).Select(l => Ptr(l + (ulong)nsproxy)).Where(IsKernel).Select(px => Ptr(px + (ulong)slot))
            .Where(IsKernel).Distinct().Take(_limits.MaxInferenceTaskSamples).ToList();
    }

    /// <summary>
    /// mnt_namespace.list and mount.mnt_list (up to 6.7), or mnt_namespace.mounts and mount.mnt_node (6.8+): the list head or
    /// rb_root in every namespace whose walk completes, and the node offset that makes every node a mount whose parent is
    /// one of them. The mounts found that way, with their namespaces; null (members reported unknown) when neither fits.
    /// </summary>
    private MountEvidence? MountNodes(List<ulong> namespaces, int parent)
    {
        int max = _limits.MaxMountsPerNamespace;
        var found = new Dictionary<(bool Tree, int Head, int Node), List<MountWalk>>();
        byte[]? first = SmallWindow(namespaces[0]);
        for (int h = 0; first is not null && h + 2 * _p <= first.Length; h += _p)
        {
            Step(namespaces.Count);
            foreach (bool tree in new[] { false, true })
            {
                var walks = new List<MountWalk>();
                foreach (ulong ns in namespaces)
                {
                    var walk = tree ? MountRule.TreeNodes(Ptr(ns + (ulong)h), _p, max, SteppedWord, IsKernel) : MountRule.ListNodes(ns + (ulong)h, _p, max, SteppedWord, IsKernel);
                    if (!walk.Complete || walk.Nodes.Count == 0) break;
                    walks.Add(walk);
                }
                if (walks.Count != namespaces.Count) continue;
                for (int n = 0; n + 2 * _p <= _smallBytes; n += _p)
                {
                    Step(walks.Count);
                    int node = n;
                    if (walks.All(w => MountRule.ParentsWithin(w.Nodes.Select(x => x - (ulong)node).ToList(), parent, SteppedWord))) found[(tree, h, n)] = walks;
                }
            }
        }
        const string listRule = "list_head in every mount namespace whose nodes (next, prev linking back) are, at one offset, mounts whose mnt_parent is a mount of the same list";
        const string treeRule = "rb_root in every mount namespace whose rb-tree (parent bits naming each node's parent) holds, at one offset, mounts whose mnt_parent is a mount of the same tree";
        var lists = found.Keys.Where(k => !k.Tree).ToList();
        var trees = found.Keys.Where(k => k.Tree).ToList();
        int? listHead = _report.Add("mnt_namespace", "list", lists.Select(k => k.Head).Distinct().ToList(), listRule);
        int? listNode = _report.Add("mount", "mnt_list", lists.Where(k => k.Head == listHead).Select(k => k.Node).ToList(), listRule);
        int? treeRoot = _report.Add("mnt_namespace", "mounts", trees.Select(k => k.Head).Distinct().ToList(), treeRule);
        int? treeNode = _report.Add("mount", "mnt_node", trees.Where(k => k.Head == treeRoot).Select(k => k.Node).ToList(), treeRule);
        (bool Tree, int Head, int Node) key;
        if (listHead is { } lh && listNode is { } ln && treeRoot is null) key = (false, lh, ln);
        else if (treeRoot is { } tr && treeNode is { } tn && listHead is null) key = (true, tr, tn);
        else
        {
            foreach (var (s, m) in MountOffsets.Members.Skip(4).Where(x => x != ("vfsmount", "mnt_sb")))
                _report.AddUnknown(s, m, "needs one mount list (mnt_namespace.list) or tree (mnt_namespace.mounts)");
            return null;
        }
        var mounts = new List<(ulong, ulong)>();
        for (int i = 0; i < namespaces.Count; i++) mounts.AddRange(found[key][i].Nodes.Select(x => (x - (ulong)key.Node, namespaces[i])));
        ulong root = mounts.First(m => Ptr(m.Item1 + (ulong)parent) == m.Item1).Item1;
        return new MountEvidence(mounts, root);
    }

    /// <summary>super_block.s_type (and file_system_type.name), s_flags; s_subtype stays unknown. Returns each super block's
    /// type name (empty when s_type was not settled).</summary>
    private Dictionary<ulong, string> InferSuperBlocks(List<ulong> sbs, HashSet<ulong> rootSbs)
    {
        var names = new Dictionary<ulong, string>();
        const string typeRule = "pointer in every mounted super block to a struct whose first member (file_system_type.name) points to a short lower-case name, one of them a type every Linux mounts (rootfs, proc, sysfs, tmpfs...)";
        var typeOffsets = Offsets(o =>
        {
            var read = sbs.Select(sb => FsTypeName(Ptr(sb + (ulong)o))).ToList();
            return read.All(n => n is not null) && read.Any(n => WellKnownFsTypes.Contains(n));
        });
        if (_report.Add("super_block", "s_type", typeOffsets, typeRule) is { } sType)
        {
            _report.AddStructural("file_system_type", "name", 0, "the first member of struct file_system_type (checked: a name in every mounted super block's type)");
            foreach (ulong sb in sbs) names[sb] = FsTypeName(Ptr(sb + (ulong)sType))!;
        }
        else _report.AddUnknown("file_system_type", "name", "needs super_block.s_type");
        // SB_NOUSER marks the kernel's internal super blocks; since 7.0 nullfs, every namespace's root, is one of them.
        var flagOffsets = Offsets(o => sbs.All(sb => _r.TryPointer(sb + (ulong)o, out ulong f) && MountRule.IsMountedSuperBlockFlags(f, _p, rootSbs.Contains(sb))));
        _report.Add("super_block", "s_flags", flagOffsets, "unsigned long with SB_BORN and SB_ACTIVE set in every mounted super block, SB_NOUSER "
            + "and the bits above 31 clear but in a namespace root's (nullfs since 7.0: SB_NOUSER and its sign extension)");
        _report.AddUnknown("super_block", "s_subtype", "not inferred: NULL in every super block but a FUSE one's; a FUSE mount's type lacks its .subtype");
        return names;
    }

    /// <summary>mount.mnt_devname: a pointer to a printable string in every mount, the namespace root's being its file system
    /// type's name (rootfs; nullfs since 7.0) or "none".</summary>
    private void InferDeviceName(List<(ulong Mount, ulong Ns)> mounts, ulong root, int sbAt, Dictionary<ulong, string> typeName)
    {
        string rootType = typeName.GetValueOrDefault(Ptr(root + (ulong)sbAt), "rootfs");
        var candidates = Offsets(o =>
            PrintableString(Ptr(root + (ulong)o)) is { } rootName && (rootName == rootType || rootName == "none")
            && mounts.All(m => PrintableString(Ptr(m.Mount + (ulong)o)) is not null));
        _report.Add("mount", "mnt_devname", candidates,
            $"pointer in every mount to a printable string, the initial namespace's root mount's being \"{rootType}\" (its type) or \"none\"");
    }

    /// <summary>mount.mnt_id (distinct ids below 2^24 in every mount of every namespace, after mnt_ns) and mnt_group_id.</summary>
    private void InferMountIds(List<(ulong Mount, ulong Ns)> mounts, int? mntNs, int flagsAt)
    {
        if (mntNs is not { } after)
        {
            _report.AddUnknown("mount", "mnt_id", "needs mount.mnt_ns");
            _report.AddUnknown("mount", "mnt_group_id", "needs mount.mnt_id");
            return;
        }
        var ids = new List<int>();
        for (int o = after + _p; o + 4 <= _smallBytes; o += 4)
        {
            Step(mounts.Count);
            var seen = new HashSet<uint>();
            // Not half of a pointer (x86-64): a kernel pointer's low half may be a small number too.
            if (mounts.All(m => _r.TryU32(m.Mount + (ulong)o, out uint v) && v is > 0 and < MaxMountId && seen.Add(v) && !IsKernel(Ptr(m.Mount + (ulong)(o & ~(_p - 1))))))
                ids.Add(o);
        }
        int? mntId = _report.Add("mount", "mnt_id", ids, "int after mnt_ns, non-zero, below 2^24 and distinct in every mount of every namespace",
            c => c.Min(), "lowest (mnt_id is declared before the 6.8+ mnt_id_unique counter and the other ints)");
        if (mntId is not { } id)
        {
            _report.AddUnknown("mount", "mnt_group_id", "needs mount.mnt_id");
            return;
        }
        // 6.8+ declares u64 mnt_id_unique between mnt_id and mnt_group_id: a counter, non-zero and distinct in every mount.
        int uniqueAt = _p == 8 ? (id + 4 + 7) & ~7 : id + 4;
        var seenUnique = new HashSet<ulong>();
        bool hasUnique = mounts.All(m => _r.TryU64(m.Mount + (ulong)uniqueAt, out ulong u) && u != 0 && seenUnique.Add(u));
        int group = hasUnique ? uniqueAt + 8 : id + 4;
        // Checked: a peer group id is non-zero exactly on the shared mounts (MNT_SHARED up to 6.16, T_SHARED since 6.17).
        var groups = new List<(uint, uint, uint)>();
        foreach (var (m, _) in mounts)
        {
            Step();
            if (!_r.TryU32(m + (ulong)group, out uint g) || !_r.TryU32(m + (ulong)flagsAt, out uint f) || !_r.TryU32(m + (ulong)(id - 4), out uint tf)) break;
            groups.Add((g, f, tf));
        }
        if (groups.Count == mounts.Count && MountRule.GroupIdsMatchShared(groups, MaxMountId))
            _report.AddStructural("mount", "mnt_group_id", group, (hasUnique
                ? "int declared after the u64 mnt_id_unique that follows mnt_id (6.8+: distinct and non-zero in every mount)"
                : "int declared right after mnt_id (up to 6.7; no u64 mnt_id_unique follows it)")
                + "; checked: non-zero exactly in the shared mounts (MNT_SHARED in mnt_flags, or T_SHARED in the 6.17+ mnt_t_flags before mnt_id)");
        else _report.AddUnknown("mount", "mnt_group_id", $"the int at 0x{group:x} is not non-zero exactly in the shared mounts");
    }

    /// <summary>task_struct.fs (declared right before files) and fs_struct.root: the first struct path in every user
    /// process's fs_struct whose mnt is the vfsmount of a mount found in the namespaces (pwd, declared after root, is one
    /// too; kernel threads share init_fs, whose root is no namespace's mount since 7.0: <see cref="MountRule.FsRootSlots"/>).</summary>
    private void InferFsRoot(TaskEvidence t, HashSet<ulong> vfsmounts)
    {
        if (_report.Find(Task, "files")?.Offset is not { } files)
        {
            _report.AddUnknown(Task, "fs", "needs task_struct.files");
            _report.AddUnknown("fs_struct", "root", "needs task_struct.fs");
            return;
        }
        int fsAt = files - _p;
        var leaders = t.AllLeaders.Select(l => (Fs: Ptr(l + (ulong)fsAt), Mm: Ptr(l + (ulong)t.Mm))).ToList();
        var roots = MountRule.FsRootSlots(leaders, vfsmounts, _p, _smallBytes, SteppedWord, IsKernel);
        int? root = _report.Add("fs_struct", "root", roots, "struct path in every user process's fs_struct whose mnt is a mount of the namespaces and whose dentry is a kernel pointer",
            c => c.Min(), "lowest (root is declared before pwd)");
        if (root is not null) _report.AddStructural(Task, "fs", fsAt, "declared right before files (checked: every user process's pointer there is NULL or an fs_struct whose root is a mount)");
        else _report.AddUnknown(Task, "fs", "needs fs_struct.root");
    }

    /// <summary>The pointer-aligned offsets of the small window that <paramref name="holds"/>.</summary>
    private List<int> Offsets(Func<int, bool> holds)
    {
        var result = new List<int>();
        for (int o = 0; o + _p <= _smallBytes; o += _p)
        {
            Step();
            if (holds(o)) result.Add(o);
        }
        return result;
    }

    /// <summary>file_system_type.name of the type at <paramref name="type"/>: 1..31 bytes of [a-z0-9_], NUL-terminated; else null.</summary>
    private string? FsTypeName(ulong type)
    {
        if (!IsKernel(type) || Ptr(type) is var name && !IsKernel(name)) return null;
        Step();
        string? s = _r.ReadCString(name, 32);
        return s is { Length: > 0 and < 32 } && s.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_') ? s : null;
    }

    /// <summary>1..255 printable ASCII bytes and a NUL at <paramref name="va"/>; else null.</summary>
    private string? PrintableString(ulong va)
    {
        if (!IsKernel(va)) return null;
        Step();
        Span<byte> b = stackalloc byte[256];
        int n = _r.Read(va, b);
        int nul = b[..n].IndexOf((byte)0);
        if (nul <= 0) return null;
        foreach (byte c in b[..nul]) if (c is < 0x20 or >= 0x7f) return null;
        return System.Text.Encoding.ASCII.GetString(b[..nul]);
    }
}
