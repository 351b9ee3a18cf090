namespace Periscope.Linux.Inference;

/// <summary>Candidate struct mount layout: where the embedded vfsmount sits, mnt_parent, mnt_mountpoint, and vfsmount.mnt_root.</summary>
public readonly record struct MountLayout(int Mnt, int Parent, int Mountpoint, int MntRoot);

/// <summary>
/// The struct mount check: from a file's vfsmount, climb mnt_parent through mounts whose mountpoints are named dentries
/// to a root mount that is its own parent with its mountpoint at its own root. Since Linux 7.x the initramfs is no
/// longer the root mount: it is mounted on nullfs's root, so the root mount is reached one level up (before, the file's
/// own mount was the root). Bounded by <see cref="MaxDepth"/> levels; a cycle that never reaches a self-parent fails.
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
}
