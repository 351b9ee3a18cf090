using System.Text;
using Periscope.Linux.Objects;

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
/// the mounts rb-tree ordered by mount id since 6.8; which one is present is read from BTF), read through the typed object API and capped by
/// MaxMountsPerNamespace. Paths are resolved from the namespace's root (a chroot'ed process sees them relative to its
/// root instead).
/// </summary>
public sealed class MountReader(LinuxKernel kernel)
{
    // include/linux/mount.h MNT_* flags (macros, not in BTF), stable since 2.6 except MNT_NOSYMFOLLOW (5.10).
    private const uint MntNosuid = 0x01, MntNodev = 0x02, MntNoexec = 0x04, MntNoatime = 0x08, MntNodiratime = 0x10,
        MntRelatime = 0x20, MntReadonly = 0x40, MntNosymfollow = 0x80, MntShared = 0x1000;
    // include/linux/fs.h SB_RDONLY (super_block.s_flags).
    private const ulong SbRdonly = 1;
    /// <summary>kdev_t.h: MINORBITS = 20.</summary>
    private const int MinorBits = 20;

    private readonly PathResolver _paths = new(kernel.Reader, kernel.Offsets, kernel.Limits, kernel.Diagnostics);

    /// <summary>
    /// The struct mounts of a mount namespace in the order mountinfo lists them: mnt_namespace.list (mount.mnt_list) up
    /// to 6.7; since 6.8 (BTF then has mnt_namespace.mounts, an rb_root) an in-order walk of the rb-tree through
    /// mount.mnt_node, ordered by the unique mount id as the kernel's own show_mountinfo iteration is. The tree walk is
    /// cycle-checked and stops after MaxMountsPerNamespace nodes (an <see cref="ObjectFaultException"/>, like a bad list).
    /// </summary>
    public IEnumerable<KernelObject> Mounts(ulong mntNamespace)
    {
        var ns = kernel.Object("mnt_namespace", mntNamespace);
        if (ns.HasMember("list")) return ns["list"].ListEntries("mount", "mnt_list");
        if (ns.HasMember("mounts.rb_node")) return RbTreeMounts(ns["mounts.rb_node"].ReadPointer());
        throw new KernelModelException("BTF: struct mnt_namespace has neither list (up to 6.7) nor mounts (6.8+)");
    }

    private IEnumerable<KernelObject> RbTreeMounts(ulong root)
    {
        var node = kernel.Objects.Type("rb_node").Layout ?? throw new KernelModelException("BTF: struct rb_node is missing");
        ulong left = (ulong)node.Offset("rb_left"), right = (ulong)node.Offset("rb_right");
        ulong nodeOffset = (ulong)(kernel.Objects.Type("mount").Layout ?? throw new KernelModelException("BTF: struct mount is missing")).Offset("mnt_node");
        var seen = new HashSet<ulong>();
        var stack = new Stack<ulong>();
        ulong at = root;
        while (stack.Count > 0 || at != 0)
        {
            while (at != 0)
            {
                if (!seen.Add(at)) throw new ObjectFaultException($"mount rb-tree: node 0x{at:x} reached twice (a cycle)", at);
                if (seen.Count > kernel.Limits.MaxMountsPerNamespace)
                    throw new ObjectFaultException($"mount rb-tree: more than MaxMountsPerNamespace = {kernel.Limits.MaxMountsPerNamespace} nodes", at);
                stack.Push(at);
                if (!kernel.Reader.TryPointer(at + left, out at)) throw new ObjectFaultException($"mount rb-tree: node 0x{stack.Peek():x} is unreadable", stack.Peek());
            }
            ulong current = stack.Pop();
            yield return kernel.Object("mount", current - nodeOffset);
            if (!kernel.Reader.TryPointer(current + right, out at)) throw new ObjectFaultException($"mount rb-tree: node 0x{current:x} is unreadable", current);
        }
    }

    /// <summary>The mounts of the mount namespace at <paramref name="mntNamespace"/> (a struct mnt_namespace). With
    /// <paramref name="rootVfsMount"/> (a process's fs->root.mnt), only the mounts /proc/PID/mountinfo shows: that one and
    /// those below it (show_mountinfo skips a mount its root cannot reach; since 7.0 a namespace's root is a nullfs mount
    /// under the rootfs that init sees as /).</summary>
    public IReadOnlyList<MountInfo> Read(ulong mntNamespace, ulong rootVfsMount = 0)
    {
        var result = new List<MountInfo>();
        var mounts = Mounts(mntNamespace);
        try
        {
            foreach (var m in mounts)
            {
                if (result.Count >= kernel.Limits.MaxMountsPerNamespace)
                {
                    kernel.Diagnostics.ReportIncomplete("mounts", $"mount namespace 0x{mntNamespace:x}: more than MaxMountsPerNamespace = {kernel.Limits.MaxMountsPerNamespace} mounts");
                    break;
                }
                if (rootVfsMount != 0 && !IsBelow(m, rootVfsMount)) continue;
                result.Add(Describe(m));
            }
        }
        catch (ObjectFaultException e)
        {
            kernel.Diagnostics.ReportIncomplete("mounts", e.Message, e.Address);
        }
        return result;
    }

    /// <summary>Whether <paramref name="mount"/> is the mount whose vfsmount is <paramref name="rootVfsMount"/> or lies below
    /// it (mnt_parent chain, bounded by MaxMountsPerNamespace). An unreadable chain counts as below: a view shows too much
    /// rather than hide a mount.</summary>
    private bool IsBelow(KernelObject mount, ulong rootVfsMount)
    {
        var m = mount;
        for (int i = 0; i <= kernel.Limits.MaxMountsPerNamespace; i++)
        {
            if (m["mnt"].Address == rootVfsMount) return true;
            if (!m["mnt_parent"].TryDeref(out var parent)) return true;
            if (parent.Address == m.Address) return false; // the namespace's root, and not the process's
            m = parent;
        }
        return true;
    }

    /// <summary>The vfsmount of <paramref name="task"/>'s root directory (task->fs->root.mnt), or 0 when it has none.</summary>
    public ulong RootMountOf(LinuxTask task)
    {
        var t = kernel.Object("task_struct", task.Address);
        return t["fs"].TryDeref(out var fs) ? fs["root.mnt"].ReadPointer() : 0;
    }

    /// <summary>The mount namespace of <paramref name="task"/> (task->nsproxy->mnt_ns), or null for an exited task.</summary>
    public ulong? NamespaceOf(LinuxTask task)
    {
        var t = kernel.Object("task_struct", task.Address);
        if (!t["nsproxy"].TryDeref(out var nsproxy) || !nsproxy["mnt_ns"].TryDeref(out var ns)) return null;
        return ns.Address;
    }

    private MountInfo Describe(KernelObject m)
    {
        var vfs = m["mnt"];
        var sb = vfs["mnt_sb"].Deref();
        uint flags = (uint)vfs["mnt_flags"].ReadUInt64();
        ulong sbFlags = sb["s_flags"].ReadUInt64();
        uint dev = (uint)sb["s_dev"].ReadUInt64();
        var parent = m["mnt_parent"].Deref();
        ulong mountpoint = m["mnt_mountpoint"].ReadPointer();
        ulong root = vfs["mnt_root"].ReadPointer();

        string mountPath = parent.Address == m.Address
            ? "/"
            : _paths.DentryPath(parent["mnt"].Address, mountpoint) ?? "?";
        var options = new StringBuilder((flags & MntReadonly) != 0 || (sbFlags & SbRdonly) != 0 ? "ro" : "rw");
        foreach (var (bit, name) in new[] { (MntNosuid, "nosuid"), (MntNodev, "nodev"), (MntNoexec, "noexec"), (MntNoatime, "noatime"),
                     (MntNodiratime, "nodiratime"), (MntRelatime, "relatime"), (MntNosymfollow, "nosymfollow") })
            if ((flags & bit) != 0) options.Append(',').Append(name);
        var optional = new List<string>();
        if ((flags & MntShared) != 0) optional.Add($"shared:{m["mnt_group_id"].ReadInt64()}");
        if (m["mnt_master"].TryDeref(out var master)) optional.Add($"master:{master["mnt_group_id"].ReadInt64()}");

        string fsType = sb["s_type"].Deref()["name"].ReadString();
        if (sb.HasMember("s_subtype") && sb["s_subtype"].ReadPointer() != 0) fsType += "." + sb["s_subtype"].ReadString();
        string source = m["mnt_devname"].ReadPointer() != 0 ? m["mnt_devname"].ReadString() : "none";
        return new MountInfo((int)m["mnt_id"].ReadInt64(), (int)parent["mnt_id"].ReadInt64(), dev >> MinorBits, dev & ((1u << MinorBits) - 1),
            Mangle(RootPath(root)), Mangle(mountPath), options.ToString(), string.Join(' ', optional), Mangle(fsType), Mangle(source),
            (sbFlags & SbRdonly) != 0 ? "ro" : "rw", m.Address);
    }

    /// <summary>The mount's root dentry as a path inside its file system (d_parent up to the super block's root).</summary>
    private string RootPath(ulong dentry)
    {
        var names = new List<string>();
        for (int i = 0; i < kernel.Limits.MaxPathComponents; i++)
        {
            var d = kernel.Object("dentry", dentry);
            ulong parent = d["d_parent"].ReadPointer();
            if (parent == dentry || parent == 0) break;
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
