using Periscope.Linux.Inference;

namespace Periscope.UnitTests;

/// <summary>
/// struct mount without BTF on synthetic mounts: the file's mount must climb to a self-parent root mount. On Linux 7.x the
/// initramfs is mounted on nullfs, so the file's own mount is not the root; the former rule required that and left
/// mount.mnt unknown (no-BTF attach failed on 7.3.4).
/// </summary>
public class InferenceMountTests
{
    private static readonly MountLayout Layout = new(Mnt: 0x20, Parent: 0x10, Mountpoint: 0x18, MntRoot: 0);
    private const ulong Kernel = 0xffff_8880_0000_0000;

    private sealed class Memory
    {
        public readonly Dictionary<ulong, ulong> Words = [];
        public readonly HashSet<ulong> Named = [];
        public ulong Read(ulong va) => Words.TryGetValue(va, out ulong v) ? v : 0;

        /// <summary>A struct mount at <paramref name="mount"/> with its parent, mountpoint and root; returns its vfsmount.</summary>
        public ulong Mount(ulong mount, ulong parent, ulong mountpoint, ulong root)
        {
            Words[mount + (ulong)Layout.Parent] = parent;
            Words[mount + (ulong)Layout.Mountpoint] = mountpoint;
            Words[mount + (ulong)Layout.Mnt + (ulong)Layout.MntRoot] = root;
            return mount + (ulong)Layout.Mnt;
        }
    }

    private static bool Climbs(Memory m, ulong vfsmount, MountLayout? layout = null) =>
        MountRule.ClimbsToRoot(vfsmount, layout ?? Layout, m.Read, va => va >= Kernel, m.Named.Contains);

    [Fact]
    public void The_root_mount_itself_climbs_at_once()
    {
        var m = new Memory();
        ulong root = Kernel + 0x1000, rootDentry = Kernel + 0x9000;
        Assert.True(Climbs(m, m.Mount(root, root, rootDentry, rootDentry)));
    }

    [Fact]
    public void An_initramfs_mounted_on_nullfs_climbs_to_the_nullfs_root_mount()
    {
        var m = new Memory();
        ulong nullfs = Kernel + 0x1000, nullRoot = Kernel + 0x9000, initramfs = Kernel + 0x2000, initRoot = Kernel + 0xa000;
        m.Mount(nullfs, nullfs, nullRoot, nullRoot);
        m.Named.Add(nullRoot); // "/" is a name: the mountpoint is nullfs's root dentry
        ulong vfsmount = m.Mount(initramfs, nullfs, nullRoot, initRoot);
        Assert.True(Climbs(m, vfsmount));
        // A wrong layout (parent and mountpoint swapped) does not climb.
        Assert.False(Climbs(m, vfsmount, Layout with { Parent = Layout.Mountpoint, Mountpoint = Layout.Parent }));
    }

    [Fact]
    public void A_parent_cycle_without_a_root_mount_fails_within_the_depth_cap()
    {
        var m = new Memory();
        ulong a = Kernel + 0x1000, b = Kernel + 0x2000, point = Kernel + 0x9000;
        m.Named.Add(point);
        m.Mount(a, b, point, Kernel + 0xa000);
        ulong vfsmount = m.Mount(b, a, point, Kernel + 0xb000);
        Assert.False(Climbs(m, vfsmount));
    }

    [Fact]
    public void A_mountpoint_that_is_no_named_dentry_fails()
    {
        var m = new Memory();
        ulong root = Kernel + 0x1000, child = Kernel + 0x2000, rootDentry = Kernel + 0x9000;
        m.Mount(root, root, rootDentry, rootDentry);
        ulong vfsmount = m.Mount(child, root, Kernel + 0x7000, Kernel + 0xa000);
        Assert.False(Climbs(m, vfsmount));
    }
}
