using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Rebuilds a file's path the way d_path does: climb dentries to the mount root, then cross to the parent mount at
/// its mountpoint, until the root mount. Bounded by MaxPathComponents per path and the PathComponents work budget in
/// total; cycles end the walk with a diagnostic.
/// </summary>
public sealed class PathResolver(GuestReader reader, KernelOffsets offsets, IntrospectionLimits limits, Diagnostics diagnostics)
{
    private readonly PathOffsets _p = offsets.Path;
    // (vfsmount, dentry) -> path: 2,000 processes mapping one busybox resolved its path 2,000 times per VMA kind.
    private readonly Dictionary<(ulong Mount, ulong Dentry), string?> _remembered = [];

    /// <summary>Path of a struct file, or null if unreadable.</summary>
    public string? FilePath(ulong file)
    {
        if (!reader.IsKernelPointer(file)) return null;
        ulong path = file + (ulong)_p.FilePath;
        if (!reader.TryPointer(path + (ulong)_p.PathMnt, out ulong vfsmount) || !reader.TryPointer(path + (ulong)_p.PathDentry, out ulong dentry))
            return null;
        if (_remembered.TryGetValue((vfsmount, dentry), out string? known)) return known;
        string? resolved = DentryPath(vfsmount, dentry);
        if (_remembered.Count < limits.MaxRememberedPaths) _remembered[(vfsmount, dentry)] = resolved;
        return resolved;
    }

    /// <summary>Forgets remembered paths: a live guest may have freed and reused a dentry since.</summary>
    public void Forget() => _remembered.Clear();

    public string? DentryPath(ulong vfsmount, ulong dentry)
    {
        var parts = new List<string>();
        var seen = new HashSet<ulong>();
        for (int i = 0; i < limits.MaxPathComponents; i++)
        {
            if (!reader.Budget.TryConsume(WorkKind.PathComponents))
            {
                diagnostics.ReportIncomplete("path", reader.Budget.Describe(WorkKind.PathComponents), dentry);
                return Join(parts);
            }
            if (!reader.IsKernelPointer(dentry) || !reader.IsKernelPointer(vfsmount)) return Join(parts);
            if (!seen.Add(dentry)) { diagnostics.ReportIncomplete("path", "dentry cycle", dentry); return Join(parts); }
            reader.TryPointer(vfsmount + (ulong)_p.VfsMountRoot, out ulong mntRoot);
            if (!reader.TryPointer(dentry + (ulong)_p.DentryParent, out ulong parent)) return Join(parts);
            if (dentry == mntRoot || dentry == parent)
            {
                // At the root of this mount: continue from the mountpoint in the parent mount, if any.
                ulong mount = vfsmount - (ulong)_p.MountMnt;
                if (!reader.TryPointer(mount + (ulong)_p.MountParent, out ulong parentMount) || parentMount == mount || parentMount == 0)
                    return Join(parts);
                if (!reader.TryPointer(mount + (ulong)_p.MountMountpoint, out ulong mountpoint)) return Join(parts);
                vfsmount = parentMount + (ulong)_p.MountMnt;
                dentry = mountpoint;
                continue;
            }
            string? name = DentryName(dentry);
            if (name is null) { diagnostics.ReportIncomplete("path", "unreadable dentry name", dentry); return Join(parts); }
            parts.Add(name);
            dentry = parent;
        }
        diagnostics.ReportIncomplete("path", $"path deeper than {limits.MaxPathComponents} components", dentry);
        return Join(parts);
    }

    public string? DentryName(ulong dentry)
    {
        if (!reader.TryPointer(dentry + (ulong)_p.DentryName, out ulong namePtr)) return null;
        reader.TryU32(dentry + (ulong)_p.DentryNameLength, out uint len);
        int max = (int)Math.Min(len == 0 ? 256u : len, (uint)Math.Min(limits.MaxStringLength, 4096));
        return reader.ReadCString(namePtr, max);
    }

    /// <summary>Inode number and device (major, minor) of a struct file, as /proc/PID/maps prints them.</summary>
    public (ulong Inode, uint Major, uint Minor) FileIdentity(ulong file)
    {
        if (!reader.TryPointer(file + (ulong)_p.FileInode, out ulong inode) || !reader.IsKernelPointer(inode)) return (0, 0, 0);
        reader.TryULong(inode + (ulong)_p.InodeIno, out ulong ino);
        uint dev = 0;
        if (reader.TryPointer(inode + (ulong)_p.InodeSb, out ulong sb) && reader.IsKernelPointer(sb)) reader.TryU32(sb + (ulong)_p.SuperBlockDev, out dev);
        return (ino, dev >> KernelMacros.MINORBITS, dev & ((1u << KernelMacros.MINORBITS) - 1));
    }

    private static string Join(List<string> parts)
    {
        if (parts.Count == 0) return "/";
        parts.Reverse();
        return "/" + string.Join('/', parts);
    }
}
