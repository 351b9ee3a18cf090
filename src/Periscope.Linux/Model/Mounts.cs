using System.Text;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>One mount as /proc/PID/mountinfo shows it (fields 1–9 and the super block's ro/rw; the file system's own
/// options come from its show_options() callback and cannot be read as data).</summary>
public sealed record MountInfo(int MountId, int ParentId, uint Major, uint Minor, string Root, string MountPoint, string Options,
    string OptionalFields, string FsType, string Source, string SuperOptions, ulong Address)
{
    /// <summary>The line as mountinfo prints it, up to and including the super block's ro/rw.</summary>
    public string ToMountInfoLine() =>
        $"{MountId} {ParentId} {Major}:{Minor} {Root} {MountPoint} {Options}{(OptionalFields.Length > 0 ? " " + OptionalFields : "")} - {FsType} {Source} {SuperOptions}";
}

/// <summary>
/// The mounts of a mount namespace in the order the kernel lists them (mnt_namespace.list of mount.mnt_list up to 6.7,
/// the mounts rb-tree ordered by mount id since 6.8; whichever the kernel has), read through <see cref="MemberOffsets"/>
/// (BTF, or the offsets inferred without it: <see cref="MountOffsets"/>) and the guest reader, one code path for both,
/// capped by MaxMountsPerNamespace. Paths are resolved from the namespace's root (a chroot'ed process sees them relative
/// to its root instead).
/// </summary>
public sealed class MountReader
{
    // include/linux/mount.h MNT_* flags (macros, not in BTF), stable since 2.6 except MNT_NOSYMFOLLOW (5.10); MNT_SHARED
    // and 6.17+'s T_SHARED: MountRule.MntShared and TShared.
    private const uint MntNosuid = 0x01, MntNodev = 0x02, MntNoexec = 0x04, MntNoatime = 0x08, MntNodiratime = 0x10,
        MntRelatime = 0x20, MntReadonly = 0x40, MntNosymfollow = 0x80;
    // include/linux/fs.h SB_RDONLY (super_block.s_flags).
    private const ulong SbRdonly = 1;
    /// <summary>kdev_t.h: MINORBITS = 20.</summary>
    private const int MinorBits = 20;
    /// <summary>The only file systems that set s_subtype (fs/fuse): their type prints as fuse.SUBTYPE.</summary>
    private static readonly string[] SubtypedFileSystems = ["fuse", "fuseblk"];
    private const int MaxNameLength = 256;

    private readonly LinuxKernel _kernel;
    private readonly GuestReader _r;
    private readonly PathResolver _paths;
    private readonly int? _nsproxy, _mntNs, _fs, _fsRoot, _list, _mounts, _mntList, _mntNode, _mnt, _parent, _mountpoint, _id, _groupId,
        _master, _devname, _mntRoot, _mntSb, _mntFlags, _sFlags, _sDev, _sType, _sSubtype, _typeName, _dParent, _tFlags;
    private readonly bool _fromBtf;

    public MountReader(LinuxKernel kernel)
    {
        _kernel = kernel;
        _r = kernel.Reader;
        _paths = new PathResolver(kernel.Reader, kernel.Offsets, kernel.Limits, kernel.Diagnostics);
        var b = new MemberOffsets(kernel.Layouts);
        _nsproxy = b.Offset("task_struct", "nsproxy");
        _mntNs = b.Offset("nsproxy", "mnt_ns");
        _fs = b.Offset("task_struct", "fs");
        _fsRoot = b.Offset("fs_struct", "root") + b.Offset("path", "mnt");
        // Up to 6.7 a list, since 6.8 an rb-tree: whichever the kernel has (missing only when it has neither).
        if (b.Has("mnt_namespace", "list")) (_list, _mntList) = (b.Offset("mnt_namespace", "list"), b.Offset("mount", "mnt_list"));
        else if (b.Has("mnt_namespace", "mounts")) (_mounts, _mntNode) = (b.Offset("mnt_namespace", "mounts"), b.Offset("mount", "mnt_node"));
        else b.Offset("mnt_namespace", "list");
        _mnt = b.Offset("mount", "mnt");
        _parent = b.Offset("mount", "mnt_parent");
        _mountpoint = b.Offset("mount", "mnt_mountpoint");
        _id = b.Offset("mount", "mnt_id");
        _groupId = b.Offset("mount", "mnt_group_id");
        _master = b.Offset("mount", "mnt_master");
        _devname = b.Offset("mount", "mnt_devname");
        _mntRoot = b.Offset("vfsmount", "mnt_root");
        _mntSb = b.Offset("vfsmount", "mnt_sb");
        _mntFlags = b.Offset("vfsmount", "mnt_flags");
        _sFlags = b.Offset("super_block", "s_flags");
        _sDev = b.Offset("super_block", "s_dev");
        _sType = b.Offset("super_block", "s_type");
        _sSubtype = b.Optional("super_block", "s_subtype");
        // 6.17 moved the shared flag from vfsmount.mnt_flags to mount.mnt_t_flags (T_SHARED).
        _tFlags = b.Optional("mount", "mnt_t_flags");
        _fromBtf = kernel.Layouts.FromBtf;
        _typeName = b.Offset("file_system_type", "name");
        _dParent = b.Offset("dentry", "d_parent");
        Unavailable = b.Missing.Count > 0 ? $"mounts: {MemberOffsets.Lacks(b)}" : null;
    }

    /// <summary>Why mounts cannot be read on this kernel (a member neither BTF nor inference knows); null when they can.</summary>
    public string? Unavailable { get; }

    /// <summary>
    /// The struct mounts of the mount namespace at <paramref name="mntNamespace"/> in the order mountinfo lists them:
    /// mnt_namespace.list (mount.mnt_list) up to 6.7; since 6.8 an in-order walk of the mounts rb-tree through
    /// mount.mnt_node, ordered by the unique mount id as the kernel's own show_mountinfo iteration is. Every link is
    /// checked (<see cref="MountRule"/>); a bad link, a cycle or more than MaxMountsPerNamespace nodes ends the walk with
    /// its <see cref="MountWalk.Fault"/>, keeping the mounts before it.
    /// </summary>
    public MountWalk Mounts(ulong mntNamespace)
    {
        if (Unavailable is not null) throw new KernelModelException(Unavailable);
        ulong? WordAt(ulong va) => _r.TryPointer(va, out ulong v) ? v : null;
        int max = _kernel.Limits.MaxMountsPerNamespace;
        var walk = _list is { } list
            ? MountRule.ListNodes(mntNamespace + (ulong)list, _r.PointerSize, max, WordAt, _r.IsKernelPointer)
            : MountRule.TreeNodes(_r.PointerOrZero(mntNamespace + (ulong)_mounts!.Value), _r.PointerSize, max, WordAt, _r.IsKernelPointer);
        ulong node = (ulong)(_mntList ?? _mntNode!.Value);
        return walk with { Nodes = walk.Nodes.Select(n => n - node).ToList() };
    }

    /// <summary>The mounts of the mount namespace at <paramref name="mntNamespace"/> (a struct mnt_namespace). With
    /// <paramref name="rootVfsMount"/> (a process's fs->root.mnt), only the mounts /proc/PID/mountinfo shows: that one and
    /// those below it (show_mountinfo skips a mount its root cannot reach; since 7.0 a namespace's root is a nullfs mount
    /// under the rootfs that init sees as /).</summary>
    public IReadOnlyList<MountInfo> Read(ulong mntNamespace, ulong rootVfsMount = 0)
    {
        var walk = Mounts(mntNamespace);
        if (!walk.Complete) _kernel.Diagnostics.ReportIncomplete("mounts", $"mount namespace 0x{mntNamespace:x}: {walk.Fault}", walk.FaultAt);
        var result = new List<MountInfo>();
        foreach (ulong m in walk.Nodes)
        {
            if (rootVfsMount != 0 && !IsBelow(m, rootVfsMount)) continue;
            if (Describe(m) is { } info) result.Add(info);
            else _kernel.Diagnostics.ReportIncomplete("mounts", $"mount 0x{m:x} is unreadable", m);
        }
        return result;
    }

    /// <summary>Whether <paramref name="mount"/> is the mount whose vfsmount is <paramref name="rootVfsMount"/> or lies below
    /// it (mnt_parent chain, bounded by MaxMountsPerNamespace). An unreadable chain counts as below: a view shows too much
    /// rather than hide a mount.</summary>
    private bool IsBelow(ulong mount, ulong rootVfsMount)
    {
        ulong m = mount;
        for (int i = 0; i <= _kernel.Limits.MaxMountsPerNamespace; i++)
        {
            if (m + (ulong)_mnt!.Value == rootVfsMount) return true;
            if (!_r.TryPointer(m + (ulong)_parent!.Value, out ulong parent) || parent == 0) return true;
            if (parent == m) return false; // the namespace's root, and not the process's
            m = parent;
        }
        return true;
    }

    /// <summary>The vfsmount of <paramref name="task"/>'s root directory (task->fs->root.mnt), or 0 when it has none.</summary>
    public ulong RootMountOf(LinuxTask task) =>
        Unavailable is null && _r.TryPointer(task.Address + (ulong)_fs!.Value, out ulong fs) && fs != 0 ? _r.PointerOrZero(fs + (ulong)_fsRoot!.Value) : 0;

    /// <summary>The mount namespace of <paramref name="task"/> (task->nsproxy->mnt_ns), or null for an exited task.</summary>
    public ulong? NamespaceOf(LinuxTask task) =>
        _nsproxy is { } at && _mntNs is { } slot && _r.TryPointer(task.Address + (ulong)at, out ulong nsproxy) && nsproxy != 0
        && _r.TryPointer(nsproxy + (ulong)slot, out ulong ns) && ns != 0 ? ns : null;

    private MountInfo? Describe(ulong m)
    {
        ulong vfs = m + (ulong)_mnt!.Value;
        if (!_r.TryPointer(vfs + (ulong)_mntSb!.Value, out ulong sb) || !_r.TryU32(vfs + (ulong)_mntFlags!.Value, out uint flags)
            || !_r.TryULong(sb + (ulong)_sFlags!.Value, out ulong sbFlags) || !_r.TryU32(sb + (ulong)_sDev!.Value, out uint dev)
            || !_r.TryPointer(m + (ulong)_parent!.Value, out ulong parent) || !_r.TryPointer(m + (ulong)_mountpoint!.Value, out ulong mountpoint)
            || !_r.TryPointer(vfs + (ulong)_mntRoot!.Value, out ulong root) || !_r.TryI32(m + (ulong)_id!.Value, out int id)
            || !_r.TryI32(parent + (ulong)_id.Value, out int parentId) || !_r.TryI32(m + (ulong)_groupId!.Value, out int groupId)
            || !_r.TryPointer(m + (ulong)_master!.Value, out ulong master) || !_r.TryPointer(m + (ulong)_devname!.Value, out ulong devname)
            || !_r.TryPointer(sb + (ulong)_sType!.Value, out ulong type) || !_r.TryPointer(type + (ulong)_typeName!.Value, out ulong typeName))
            return null;

        string mountPath = parent == m ? "/" : _paths.DentryPath(parent + (ulong)_mnt.Value, mountpoint) ?? "?";
        var options = new StringBuilder((flags & MntReadonly) != 0 || (sbFlags & SbRdonly) != 0 ? "ro" : "rw");
        foreach (var (bit, name) in new[] { (MntNosuid, "nosuid"), (MntNodev, "nodev"), (MntNoexec, "noexec"), (MntNoatime, "noatime"),
                     (MntNodiratime, "nodiratime"), (MntRelatime, "relatime"), (MntNosymfollow, "nosymfollow") })
            if ((flags & bit) != 0) options.Append(',').Append(name);
        var optional = new List<string>();
        // Without BTF the flag's place is not inferred; the peer group id is non-zero exactly on shared mounts, which the
        // inference checked on every mount when it settled mnt_group_id (MountRule), on either side of 6.17.
        bool shared = !_fromBtf ? groupId != 0
            : _tFlags is { } tAt ? _r.TryU32(m + (ulong)tAt, out uint tFlags) && (tFlags & MountRule.TShared) != 0
            : (flags & MountRule.MntShared) != 0;
        if (shared) optional.Add($"shared:{groupId}");
        if (master != 0 && _r.TryI32(master + (ulong)_groupId.Value, out int masterGroup)) optional.Add($"master:{masterGroup}");

        string fsType = _r.ReadCString(typeName, MaxNameLength) ?? "?";
        if (_sSubtype is { } subtypeAt)
        {
            if (_r.PointerOrZero(sb + (ulong)subtypeAt) is var subtype and not 0) fsType += "." + (_r.ReadCString(subtype, MaxNameLength) ?? "?");
        }
        else if (SubtypedFileSystems.Contains(fsType))
            _kernel.Diagnostics.ReportIncomplete("mounts", $"mount {id}: super_block.s_subtype is not known, so its {fsType} type lacks its subtype", m);
        string source = devname != 0 ? _r.ReadCString(devname, MaxNameLength) ?? "?" : "none";
        return new MountInfo(id, parentId, dev >> MinorBits, dev & ((1u << MinorBits) - 1),
            Mangle(RootPath(root)), Mangle(mountPath), options.ToString(), string.Join(' ', optional), Mangle(fsType), Mangle(source),
            (sbFlags & SbRdonly) != 0 ? "ro" : "rw", m);
    }

    /// <summary>The mount's root dentry as a path inside its file system (d_parent up to the super block's root).</summary>
    private string RootPath(ulong dentry)
    {
        var names = new List<string>();
        for (int i = 0; i < _kernel.Limits.MaxPathComponents; i++)
        {
            if (!_r.TryPointer(dentry + (ulong)_dParent!.Value, out ulong parent) || parent == dentry || parent == 0) break;
            names.Add(_paths.DentryName(dentry) ?? "?");
            dentry = parent;
        }
        names.Reverse();
        return "/" + string.Join('/', names);
    }

    /// <summary>seq_file's mangle of " \t\n\\" as octal escapes, as mountinfo prints paths and names.</summary>
    private static string Mangle(string s)
    {
        if (s.AsSpan().IndexOfAny(" \t\n\\") < 0) return s;
        var sb = new StringBuilder(s.Length + 8);
        foreach (char c in s) sb.Append(c is ' ' or '\t' or '\n' or '\\' ? "\\" + Convert.ToString(c, 8).PadLeft(3, '0') : c.ToString());
        return sb.ToString();
    }
}
