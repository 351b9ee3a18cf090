using Periscope.Linux.Inference;
using Periscope.Memory;
using Periscope.UnitTests.Linux;

namespace Periscope.UnitTests;

/// <summary>
/// sock.sk_uid and inode.i_uid without BTF (SocketOwnerRules) on synthetic memory laid out as Debian 6.1's BTF says
/// (sk_uid at 0x2d8, i_uid at 4 — 0x18 as in 7.x in one test —, cred.euid 0x14 and fsuid 0x1c): root's sockets and a uid-4242 process's. The member
/// must come out only where the evidence tells it: root-only evidence, a second word holding the uids, or a uid no
/// holder has leave it unknown, never guessed.
/// </summary>
public class InferenceSocketOwnerTests
{
    private const ulong B = SyntheticGuest.Base;
    private const int SkUid = 0x2d8, CredEuid = 0x14, CredFsuid = 0x1c;
    private const ulong RootCred = B + 0x1000, UserCred = B + 0x1200;
    private static readonly ulong[] Socks = [B + 0x10_0000, B + 0x10_1000, B + 0x10_2000, B + 0x10_3000];
    private static readonly ulong[] Inodes = [B + 0x20_0000, B + 0x20_1000, B + 0x20_2000, B + 0x20_3000];

    /// <summary>Sockets 0 and 1 held by root, 2 and 3 created and held by uid 4242 (gid 4343); <paramref name="tamper"/>
    /// may change anything before the reader is opened.</summary>
    private static InferenceReport Infer(Action<SyntheticGuest>? tamper = null, ulong[]? holderOf = null, int? fsuid = CredFsuid, int inodeUid = 4)
    {
        using var g = new SyntheticGuest();
        Cred(g, RootCred, 0, 0);
        Cred(g, UserCred, 4242, 4343);
        holderOf ??= [RootCred, RootCred, UserCred, UserCred];
        for (int i = 0; i < Socks.Length; i++)
        {
            uint uid = holderOf[i] == UserCred ? 4242u : 0u;
            g.U32(Inodes[i], 0xc1ff); // i_mode S_IFSOCK | 0777
            g.U32(Inodes[i] + (ulong)inodeUid, uid);
            g.U32(Inodes[i] + (ulong)inodeUid + 4, uid == 0 ? 0u : 4343u);
            // sock: a few words that are not uids (pointers, a port, a family), then sk_uid.
            g.U64(Socks[i] + 0x30, B + 0x9_0000);
            g.U32(Socks[i] + 0x10, 2 | 10 << 16);
            g.U32(Socks[i] + 0x0c, 0x1b5d_0000);
            g.U32(Socks[i] + SkUid, uid);
        }
        tamper?.Invoke(g);
        var limits = new IntrospectionLimits();
        var sockets = Enumerable.Range(0, Socks.Length).Select(i => new OffsetInference.SocketHolding(Socks[i], Inodes[i], [holderOf[i]])).ToList();
        return OffsetInference.InferSocketOwners(g.Reader(limits), limits, sockets, fsuid, CredEuid);
    }

    private static void Cred(SyntheticGuest g, ulong cred, uint uid, uint gid)
    {
        for (int i = 0; i < 8; i++) g.U32(cred + 4 + (ulong)(4 * i), i % 2 == 0 ? uid : gid);
    }

    [Fact]
    public void Sk_uid_is_the_word_equal_to_the_socket_inodes_uid_with_a_non_root_owner()
    {
        var r = Infer();
        Assert.Equal(SkUid, r.Find("sock", "sk_uid")?.Offset);
        Assert.Equal(4, r.Find("inode", "i_uid")?.Offset);
    }

    [Fact]
    public void I_uid_after_i_flags_and_the_acl_pointers_as_in_7_x_is_found_too()
    {
        var r = Infer(inodeUid: 0x18, tamper: g => { foreach (var i in Inodes) { g.U64(i + 8, ulong.MaxValue); g.U64(i + 16, ulong.MaxValue); } });
        Assert.Equal(SkUid, r.Find("sock", "sk_uid")?.Offset);
        Assert.Equal(0x18, r.Find("inode", "i_uid")?.Offset);
    }

    [Fact]
    public void A_socket_created_before_its_holder_dropped_to_another_uid_keeps_its_creators_uid()
    {
        // Socket 1 was created by root and is now held by the uid-4242 process: its inode and sock say 0, not 4242.
        var r = Infer(holderOf: [RootCred, UserCred, UserCred, UserCred], tamper: g => { g.U32(Inodes[1] + 4, 0); g.U32(Socks[1] + SkUid, 0); });
        Assert.Equal(SkUid, r.Find("sock", "sk_uid")?.Offset);
    }

    [Fact]
    public void The_euid_confirms_the_inode_uid_when_fsuid_is_unknown()
    {
        Assert.Equal(SkUid, Infer(fsuid: null).Find("sock", "sk_uid")?.Offset);
    }

    [Fact]
    public void Root_only_evidence_leaves_both_unknown()
    {
        var r = Infer(holderOf: [RootCred, RootCred, RootCred, RootCred]);
        Assert.False(r.Find("sock", "sk_uid")!.IsKnown);
        Assert.False(r.Find("inode", "i_uid")!.IsKnown);
        Assert.Contains("root", r.Find("sock", "sk_uid")!.Rule);
    }

    [Fact]
    public void A_non_root_inode_uid_no_holder_has_is_no_evidence()
    {
        // The inode word at 4 says 4242 but the holder is root: offset 4 is not shown to be a uid.
        var r = Infer(holderOf: [RootCred, RootCred, RootCred, RootCred], tamper: g => { g.U32(Inodes[2] + 4, 4242); g.U32(Socks[2] + SkUid, 4242); });
        Assert.False(r.Find("sock", "sk_uid")!.IsKnown);
    }

    [Fact]
    public void A_second_word_holding_every_sockets_uid_is_ambiguous_not_guessed()
    {
        var r = Infer(tamper: g => { g.U32(Socks[2] + 0x400, 4242); g.U32(Socks[3] + 0x400, 4242); });
        var m = r.Find("sock", "sk_uid")!;
        Assert.False(m.IsKnown);
        Assert.Equal([SkUid, 0x400], m.Candidates.Order());
    }

    [Fact]
    public void A_word_that_holds_the_uid_in_only_some_sockets_is_no_candidate()
    {
        var r = Infer(tamper: g => g.U32(Socks[2] + 0x400, 4242));
        Assert.Equal(SkUid, r.Find("sock", "sk_uid")?.Offset);
    }

    [Fact]
    public void Unreadable_sockets_and_credentials_are_skipped_bounded()
    {
        using var g = new SyntheticGuest();
        var limits = new IntrospectionLimits();
        var sockets = new[] { new OffsetInference.SocketHolding(0xffff_ffff_dead_0000, 0xffff_ffff_dead_1000, [0xffff_ffff_dead_2000]) };
        var r = OffsetInference.InferSocketOwners(g.Reader(limits), limits, sockets, CredFsuid, CredEuid);
        Assert.False(r.Find("sock", "sk_uid")!.IsKnown);
    }
}
