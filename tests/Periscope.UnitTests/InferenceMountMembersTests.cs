using Periscope.Linux.Inference;

namespace Periscope.UnitTests;

/// <summary>
/// The struct mount, super_block and fs_struct facts behind `mounts` without BTF (<see cref="MountRule"/>) on synthetic
/// memory, in the layouts of Linux up to 6.14 and of 6.15..7.x. On 7.3.4 the former rules left mount.mnt_ns ambiguous
/// (prev_ns, 6.15+, holds the same namespace), so mnt_master, mnt_id and mnt_group_id stayed unknown; super_block.s_flags
/// found nothing (nullfs, every namespace's root since 7.0, carries SB_NOUSER and its sign extension); fs_struct.root and
/// task_struct.fs found nothing (kernel threads' init_fs has its root on the kernel's internal rootfs mount).
/// </summary>
public class InferenceMountMembersTests
{
    private static ulong Base(int pointerSize) => MountWords.Base(pointerSize);

    /// <summary>
    /// Three mounts laid out as 7.3's struct mount (scaled to the pointer size): mnt_master, mnt_ns at slot 29, and
    /// to_notify (an empty list_head) and prev_ns, equal to mnt_ns, at slots 35..37. The second mount is a slave of the
    /// first (its mnt_master points to that mount's base).
    /// </summary>
    private static (MountWords M, ulong[] Mounts, int MntNs, int PrevNs) SevenThreeMounts(int pointerSize)
    {
        var m = new MountWords(pointerSize);
        int p = pointerSize, mntNs = 29 * p, toNotify = 35 * p, prevNs = 37 * p;
        ulong b = Base(pointerSize), ns = b + 0x8000;
        ulong[] mounts = [b + 0x1000, b + 0x2000, b + 0x3000];
        foreach (ulong mount in mounts)
        {
            m.Words[mount + (ulong)(mntNs - p)] = 0;
            m.Words[mount + (ulong)mntNs] = ns;
            m.Words[mount + (ulong)toNotify] = mount + (ulong)toNotify;
            m.Words[mount + (ulong)(toNotify + p)] = mount + (ulong)toNotify;
            m.Words[mount + (ulong)prevNs] = ns;
        }
        m.Words[mounts[1] + (ulong)(mntNs - p)] = mounts[0];
        return (m, mounts, mntNs, prevNs);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Mnt_ns_is_told_from_prev_ns_by_the_master_pointer_before_it(int pointerSize)
    {
        var (m, mounts, mntNs, prevNs) = SevenThreeMounts(pointerSize);
        Assert.True(MountRule.MasterBefore(mounts, mntNs, pointerSize, m.Word, m.IsKernel));
        Assert.False(MountRule.MasterBefore(mounts, prevNs, pointerSize, m.Word, m.IsKernel));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Prev_ns_stays_out_while_one_mount_has_no_notification_pending(int pointerSize)
    {
        var (m, mounts, _, prevNs) = SevenThreeMounts(pointerSize);
        int toNotifyPrev = prevNs - pointerSize;
        // The first two mounts wait on a notification list elsewhere; the third's to_notify is empty.
        m.Words[mounts[0] + (ulong)toNotifyPrev] = Base(pointerSize) + 0x9000;
        m.Words[mounts[1] + (ulong)toNotifyPrev] = Base(pointerSize) + 0x9000;
        Assert.False(MountRule.MasterBefore(mounts, prevNs, pointerSize, m.Word, m.IsKernel));
        Assert.True(MountRule.MasterBefore(mounts.Take(2), prevNs, pointerSize, m.Word, m.IsKernel));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void A_master_must_be_null_or_a_kernel_pointer_and_readable(int pointerSize)
    {
        var (m, mounts, mntNs, _) = SevenThreeMounts(pointerSize);
        m.Words[mounts[2] + (ulong)(mntNs - pointerSize)] = 0x1234;
        Assert.False(MountRule.MasterBefore(mounts, mntNs, pointerSize, m.Word, m.IsKernel));
        m.Words.Remove(mounts[2] + (ulong)(mntNs - pointerSize));
        Assert.False(MountRule.MasterBefore(mounts, mntNs, pointerSize, m.Word, m.IsKernel));
    }

    [Fact]
    public void Super_block_flags_of_nullfs_carry_sb_nouser_and_its_sign_extension()
    {
        const ulong born = MountRule.SbBorn | MountRule.SbActive;
        foreach (bool root in new[] { false, true })
        {
            Assert.True(MountRule.IsMountedSuperBlockFlags(born, 8, root));
            Assert.True(MountRule.IsMountedSuperBlockFlags(born | 0x70, 8, root));
            Assert.False(MountRule.IsMountedSuperBlockFlags(0xffff_ffff_6000_0000, 8, root)); // high bits without SB_NOUSER
            Assert.False(MountRule.IsMountedSuperBlockFlags(0x0000_0001_6000_0000, 8, root)); // a stray high bit
            Assert.False(MountRule.IsMountedSuperBlockFlags(MountRule.SbActive, 8, root)); // not SB_BORN
            Assert.False(MountRule.IsMountedSuperBlockFlags(0xffff_8880_6000_0000, 8, root)); // a pointer's worth of bits
            Assert.False(MountRule.IsMountedSuperBlockFlags(0x2000_0000, 4, root));
        }
        // 7.3.4's nullfs, as read: only a namespace root's super block may carry SB_NOUSER (a 32-bit kernel pointer
        // above 0xe0000000 would look the same on any other).
        Assert.True(MountRule.IsMountedSuperBlockFlags(0xffff_ffff_e000_0000, 8, namespaceRoot: true));
        Assert.False(MountRule.IsMountedSuperBlockFlags(0xffff_ffff_e000_0000, 8, namespaceRoot: false));
        Assert.True(MountRule.IsMountedSuperBlockFlags(0xe000_0000, 4, namespaceRoot: true));
        Assert.False(MountRule.IsMountedSuperBlockFlags(0xe000_0000, 4, namespaceRoot: false));
        Assert.True(MountRule.IsMountedSuperBlockFlags(0xe000_0000, 8, namespaceRoot: true)); // an unsigned SB_NOUSER: no sign extension
    }

    [Fact]
    public void Group_ids_match_the_shared_flag_in_mnt_flags_or_in_mnt_t_flags()
    {
        const uint max = 1 << 24;
        // Up to 6.16: MNT_SHARED in vfsmount.mnt_flags; the int before mnt_id is half of a pointer.
        Assert.True(MountRule.GroupIdsMatchShared([(1, MountRule.MntShared | 0x20, 0xffff_ffff), (0, 0x20, 0xffff_ffff), (1, MountRule.MntShared, 0)], max));
        // 6.17+: T_SHARED in mnt_t_flags; mnt_flags no longer has MNT_SHARED.
        Assert.True(MountRule.GroupIdsMatchShared([(1, 0x20, MountRule.TShared), (0, 0x20, 0), (2, 0, MountRule.TShared | 2)], max));
        // A group id on a mount neither flag calls shared, or a shared mount with none: not mnt_group_id.
        Assert.False(MountRule.GroupIdsMatchShared([(1, 0x20, 0), (0, 0x20, 0)], max));
        Assert.False(MountRule.GroupIdsMatchShared([(0, MountRule.MntShared, MountRule.TShared)], max));
        // The two flag sources are not mixed: each must hold for every mount.
        Assert.False(MountRule.GroupIdsMatchShared([(1, MountRule.MntShared, 0), (2, 0, MountRule.TShared)], max));
        Assert.False(MountRule.GroupIdsMatchShared([(max, MountRule.MntShared, MountRule.TShared)], max));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Fs_root_is_found_from_user_processes_while_kernel_threads_share_an_fs_rooted_elsewhere(int pointerSize)
    {
        var m = new MountWords(pointerSize);
        int p = pointerSize, root = 3 * p;
        ulong b = Base(pointerSize), initFs = b + 0x100, userFs = b + 0x200, otherFs = b + 0x300, mm = b + 0x5000;
        ulong internalMount = b + 0x1020, nsMount = b + 0x2020, nsMount2 = b + 0x3020, dentry = b + 0x7000;
        var vfsmounts = new HashSet<ulong> { nsMount, nsMount2 };
        foreach (var (fs, mnt) in new[] { (initFs, internalMount), (userFs, nsMount), (otherFs, nsMount2) })
        {
            m.Words[fs] = 0x12; // users, seq: not pointers
            for (int r = p; r < root; r += p) m.Words[fs + (ulong)r] = 0;
            m.Words[fs + (ulong)root] = mnt;
            m.Words[fs + (ulong)(root + p)] = dentry;
            m.Words[fs + (ulong)(root + 2 * p)] = mnt; // pwd
            m.Words[fs + (ulong)(root + 3 * p)] = dentry;
        }
        (ulong, ulong)[] leaders = [(initFs, 0), (initFs, 0), (userFs, mm), (otherFs, mm + 0x400), (0, mm + 0x800)];
        Assert.Equal([root, root + 2 * p], MountRule.FsRootSlots(leaders, vfsmounts, p, 0x100, m.Word, m.IsKernel));
        // Counting the kernel threads' init_fs (rooted on the internal rootfs mount since 7.0) leaves no candidate.
        Assert.Empty(MountRule.FsRootSlots(leaders.Select(l => (l.Item1, mm)), vfsmounts, p, 0x100, m.Word, m.IsKernel));
        Assert.Empty(MountRule.FsRootSlots(leaders.Where(l => l.Item2 == 0), vfsmounts, p, 0x100, m.Word, m.IsKernel));
    }
}
