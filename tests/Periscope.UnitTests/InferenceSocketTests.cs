using Periscope.Linux.Inference;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Linux;

namespace Periscope.UnitTests;

/// <summary>
/// The socket-table rules without BTF (SocketRules) on a synthetic x86-64 guest laid out as Debian 6.12's BTF says:
/// tcp_hashinfo with its established and listening hashes, udp_table, init_net's unix hash, one socket of each kind, and
/// nl_table (6.1's layout: 32 netlink_tables of 0xd0 bytes, bucket tables with buckets[] at 0x40) with three netlink sockets.
/// Every member must come out as BTF has it; hostile tables (a cycle, a wild pointer, an absurd mask, no sockets) must
/// stop, bounded, and leave members unknown rather than guessed.
/// </summary>
public class InferenceSocketTests
{
    private const ulong B = SyntheticGuest.Base;
    private const ulong HashInfo = B + 0x1000, UdpTable = B + 0x2000, InitNet = B + 0x5_0000;
    private const ulong Ehash = B + 0x1_0000, Locks = B + 0x3_0000, Lhash = B + 0x2_0000, UdpSlots = B + 0x4_0000, UnixBuckets = B + 0x7_0000;
    private const ulong Established = B + 0x10_0000, Listener = B + 0x10_1000, Udp = B + 0x10_2000, Unix = B + 0x10_3000, UnixAddress = B + 0x8_0000;
    private const uint EhashMask = 255, LhashMask = 31, UdpMask = 255;
    private const int Node = 0x68, SkType = 0x23c, SkProtocol = 0x23e, UnixAddr = 0x308, NetUnix = 0x250;
    private const uint EstablishedBucket = 77, ListenerBucket = 5, UdpSlot = 126, UnixBucket = 300;

    private const ulong NlTableVar = B + 0x6000, NlArray = B + 0x20_0000, BucketTables = B + 0x21_0000;
    private const ulong NlKernel = B + 0x22_0000, NlUser = B + 0x22_2000, NlAudit = B + 0x22_4000;
    private const int NlStride = 0xd0, NlBuckets = 0x40, NlNode = 0x428;
    private const uint NlSize = 64, RouteBucket = 3, AuditBucket = 10;

    private static ulong BucketTable(int protocol) => BucketTables + (ulong)protocol * 0x400;
    private static ulong NlMarker(int protocol, uint bucket) => (BucketTable(protocol) + NlBuckets + bucket * 8) | 1;

    private static ulong EhashMarker(ulong i) => (i << 1) | 1;
    private static ulong ListenMarker(ulong i) => ((i + (1UL << 29)) << 1) | 1;

    /// <summary>The guest; <paramref name="tamper"/> may change anything before the reader is opened.</summary>
    private static InferenceReport Infer(Action<SyntheticGuest>? tamper = null, IntrospectionLimits? limits = null)
    {
        using var g = new SyntheticGuest();
        // tcp_hashinfo { ehash, ehash_locks, ehash_mask, ehash_locks_mask, ... lhash2_mask @0x3c, lhash2 @0x40 }
        g.U64(HashInfo, Ehash);
        g.U64(HashInfo + 8, Locks);
        g.U32(HashInfo + 0x10, EhashMask);
        g.U32(HashInfo + 0x14, 15);
        g.U32(HashInfo + 0x3c, LhashMask);
        g.U64(HashInfo + 0x40, Lhash);
        for (ulong i = 0; i <= EhashMask; i++) g.U64(Ehash + i * 8, i == EstablishedBucket ? Established + Node : EhashMarker(i));
        for (ulong i = 0; i <= LhashMask; i++) g.U64(Lhash + i * 16 + 8, i == ListenerBucket ? Listener + Node : ListenMarker(i));
        Sock(g, Established, family: 2, state: 1, hash: 0x1234_5600 | EstablishedBucket, localPort: 0xa66e, next: EhashMarker(EstablishedBucket), type: 1, protocol: 6);
        Sock(g, Listener, family: 2, state: 10, hash: 0, localPort: 0x1b59, next: ListenMarker(ListenerBucket), type: 1, protocol: 6);
        // udp_table { hash, hash2 = hash + mask + 1 slots, mask, log }; udp_hslot { head, count, lock } (16 bytes)
        g.U64(UdpTable, UdpSlots);
        g.U64(UdpTable + 8, UdpSlots + (UdpMask + 1) * 16);
        g.U32(UdpTable + 0x10, UdpMask);
        g.U32(UdpTable + 0x14, 8);
        g.U64(UdpSlots + UdpSlot * 16, Udp + Node);
        g.U32(UdpSlots + UdpSlot * 16 + 8, 1);
        Sock(g, Udp, family: 2, state: 7, hash: 0, localPort: 0x1b5b, next: 0, type: 2, protocol: 17);
        // init_net.unx.table { locks, buckets }; one bound unix socket with its unix_address
        g.U64(InitNet + NetUnix - 8, Locks);
        g.U64(InitNet + NetUnix, UnixBuckets);
        g.U64(UnixBuckets + UnixBucket * 8, Unix + Node);
        Sock(g, Unix, family: 1, state: 10, hash: 0, localPort: 0, next: 0, type: 1, protocol: 0);
        g.U64(Unix + UnixAddr, UnixAddress);
        g.U32(UnixAddress, 1);
        g.I32(UnixAddress + 4, 2 + 7);
        g.U32(UnixAddress + 8, 1);
        g.Text(UnixAddress + 10, "/tmp/x");
        // nl_table → netlink_table[32] { rhashtable hash { tbl, ... }, ... }; bucket_table { size, nest, hash_rnd, walkers
        // (empty: pointing to itself), rcu, future_tbl @0x30, buckets[] @0x40 }: route's bucket 3 chains a kernel socket
        // then a user one, audit's bucket 10 a kernel socket; each chain ends in its bucket's own marker.
        g.U64(NlTableVar, NlArray);
        for (int i = 0; i < 32; i++)
        {
            ulong t = BucketTable(i);
            g.U64(NlArray + (ulong)(i * NlStride), t);
            g.U32(t, NlSize);
            g.U32(t + 8, 0x6a12_2c1a);
            g.U64(t + 0x10, t + 0x10);
            g.U64(t + 0x18, t + 0x10);
        }
        g.U64(BucketTable(0) + NlBuckets + RouteBucket * 8, NlKernel + NlNode);
        g.U64(BucketTable(9) + NlBuckets + AuditBucket * 8, NlAudit + NlNode);
        foreach (var (sk, protocol, next) in new[] { (NlKernel, 0, NlUser + NlNode), (NlUser, 0, NlMarker(0, RouteBucket)), (NlAudit, 9, NlMarker(9, AuditBucket)) })
        {
            Sock(g, sk, family: 16, state: 7, hash: 0, localPort: 0, next: 0, type: 3, protocol: protocol);
            g.U64(sk + NlNode, next);
        }
        tamper?.Invoke(g);
        var limitsUsed = limits ?? new IntrospectionLimits();
        var symbols = new KernelSymbols([new(HashInfo, 'D', "tcp_hashinfo"), new(UdpTable, 'D', "udp_table"), new(InitNet, 'D', "init_net"), new(NlTableVar, 'D', "nl_table")]);
        return OffsetInference.InferSocketTables(g.Reader(limitsUsed), symbols, limitsUsed);
    }

    private static void Sock(SyntheticGuest g, ulong sk, int family, int state, uint hash, int localPort, ulong next, int type, int protocol)
    {
        g.U32(sk, 0x0100007f);
        g.U32(sk + 4, 0x0100007f);
        g.U32(sk + 8, hash);
        g.U32(sk + 12, (uint)localPort << 16);
        g.U32(sk + 16, (uint)(family | state << 16));
        g.U64(sk + 40, B + 0x9_0000); // skc_prot
        g.U64(sk + 48, InitNet);      // skc_net
        g.U64(sk + Node, next);
        g.U32(sk + SkType, (uint)(type | protocol << 16));
    }

    private static int? Offset(InferenceReport r, string s, string m) => r.Find(s, m)?.Offset;

    [Fact]
    public void Every_member_comes_out_as_btf_has_it()
    {
        var r = Infer();
        var expected = new (string, string, int)[]
        {
            ("inet_hashinfo", "ehash", 0), ("inet_hashinfo", "ehash_mask", 0x10), ("inet_hashinfo", "lhash2", 0x40), ("inet_hashinfo", "lhash2_mask", 0x3c),
            ("inet_ehash_bucket", InferenceReport.SizeOfMember, 8), ("inet_ehash_bucket", "chain", 0),
            ("inet_listen_hashbucket", InferenceReport.SizeOfMember, 16), ("inet_listen_hashbucket", "nulls_head", 8),
            ("sock", "__sk_common.skc_nulls_node", Node), ("sock", "__sk_common.skc_node", Node), ("sock", "__sk_common.skc_family", 0x10),
            ("sock", "__sk_common.skc_state", 0x12), ("sock", "__sk_common.skc_portpair", 0xc), ("sock", "__sk_common.skc_rcv_saddr", 4),
            ("sock", "__sk_common.skc_daddr", 0), ("sock", "__sk_common.skc_v6_daddr", 0x38), ("sock", "__sk_common.skc_v6_rcv_saddr", 0x48),
            ("udp_table", "hash", 0), ("udp_table", "mask", 0x10), ("udp_hslot", InferenceReport.SizeOfMember, 16), ("udp_hslot", "head", 0),
            ("net", "unx.table.buckets", NetUnix), ("sock", "sk_type", SkType), ("sock", "sk_protocol", SkProtocol),
            ("unix_sock", "addr", UnixAddr), ("unix_address", "len", 4), ("unix_address", "name", 8),
        };
        foreach (var (s, m, v) in expected) Assert.True(Offset(r, s, m) == v, $"{s}.{m}: {Offset(r, s, m)?.ToString("x") ?? "unknown"}, expected 0x{v:x}");
    }

    /// <summary>PREEMPT_RT (Debian's -rt kernels): spinlock_t is a 32-byte rt_mutex, so udp_hslot { head, count, lock } is
    /// 48 bytes, and ehash_locks_mask (sized by that lock) can hold lhash2_mask's value: the tables then fit both mask
    /// words, and lhash2_mask is the one declared right before lhash2 (a tie-break, said so).</summary>
    [Fact]
    public void Preempt_rt_udp_slots_and_an_ehash_locks_mask_equal_to_lhash2_mask_come_out_as_btf_has_them()
    {
        const int RtSlot = 48;
        var r = Infer(g =>
        {
            g.U32(HashInfo + 0x14, LhashMask);
            g.U64(UdpTable + 8, UdpSlots + (UdpMask + 1) * RtSlot);
            g.U64(UdpSlots + UdpSlot * 16, 0);
            g.U32(UdpSlots + UdpSlot * 16 + 8, 0);
            g.U64(UdpSlots + UdpSlot * RtSlot, Udp + Node);
            g.U32(UdpSlots + UdpSlot * RtSlot + 8, 1);
        });
        Assert.Equal(0x3c, Offset(r, "inet_hashinfo", "lhash2_mask"));
        Assert.Equal(InferenceDecision.TieBreak, r.Find("inet_hashinfo", "lhash2_mask")!.Decision);
        Assert.Equal([0x14, 0x3c], r.Find("inet_hashinfo", "lhash2_mask")!.Candidates.Order());
        Assert.Equal(0x40, Offset(r, "inet_hashinfo", "lhash2"));
        Assert.Equal(0x10, Offset(r, "inet_hashinfo", "ehash_mask"));
        Assert.Equal(RtSlot, Offset(r, "udp_hslot", InferenceReport.SizeOfMember));
        Assert.Equal(0, Offset(r, "udp_hslot", "head"));
        Assert.Equal(0, Offset(r, "udp_table", "hash"));
    }

    [Fact]
    public void Two_mask_words_with_different_values_that_both_fit_stay_ambiguous()
    {
        // Bucket 15's marker is what a 16-bucket table ends in; make the 32-bucket table's buckets 16..31 look used so
        // that both masks (15 at 0x14, 31 at 0x3c) fit: their values differ, so no declaration-order tie-break applies.
        var r = Infer(g =>
        {
            for (ulong i = 16; i <= LhashMask; i++) g.U64(Lhash + i * 16 + 8, Listener + Node);
        });
        Assert.Equal(InferenceDecision.Ambiguous, r.Find("inet_hashinfo", "lhash2_mask")!.Decision);
        Assert.Equal([0x14, 0x3c], r.Find("inet_hashinfo", "lhash2_mask")!.Candidates.Order());
        Assert.Null(Offset(r, "inet_hashinfo", "lhash2_mask"));
    }

    [Fact]
    public void Sk_protocol_before_sk_type_as_in_7_x_is_found_too()
    {
        var r = Infer(g =>
        {
            foreach (var (sk, type, protocol) in new[] { (Established, 1u, 6u), (Listener, 1u, 6u), (Udp, 2u, 17u), (Unix, 1u, 0u) })
                g.U32(sk + SkType, protocol | type << 16);
        });
        Assert.Equal(SkType, Offset(r, "sock", "sk_protocol"));
        Assert.Equal(SkProtocol, Offset(r, "sock", "sk_type"));
    }

    [Fact]
    public void Without_sockets_in_tcp_hashinfo_sock_common_is_unknown_not_guessed()
    {
        var r = Infer(g =>
        {
            g.U64(Ehash + EstablishedBucket * 8, EhashMarker(EstablishedBucket));
            g.U64(Lhash + ListenerBucket * 16 + 8, ListenMarker(ListenerBucket));
        });
        Assert.Equal(0x10, Offset(r, "inet_hashinfo", "ehash_mask"));
        Assert.Equal(InferenceDecision.NotFound, r.Find("sock", "__sk_common.skc_nulls_node")!.Decision);
        Assert.Null(Offset(r, "sock", "__sk_common.skc_family"));
        Assert.Null(Offset(r, "udp_table", "hash"));
    }

    [Fact]
    public void A_chain_that_cycles_stops_and_still_settles_the_members()
    {
        // The established socket's chain points back to itself: the walk is capped per chain and in total.
        var r = Infer(g => g.U64(Established + Node, Established + Node));
        Assert.Equal(Node, Offset(r, "sock", "__sk_common.skc_nulls_node"));
        Assert.True(r.Steps < new IntrospectionLimits().MaxInferenceSteps);
    }

    [Fact]
    public void An_absurd_mask_is_no_table_and_nothing_huge_is_read()
    {
        var r = Infer(g => g.U32(HashInfo + 0x10, 0xffff_ffff));
        Assert.Null(Offset(r, "inet_hashinfo", "ehash"));
        Assert.Null(Offset(r, "inet_hashinfo", "ehash_mask"));
        // The listening hash alone still settles sock_common.
        Assert.Equal(0x40, Offset(r, "inet_hashinfo", "lhash2"));
        Assert.Equal(Node, Offset(r, "sock", "__sk_common.skc_nulls_node"));
    }

    [Fact]
    public void A_wild_pointer_in_a_udp_slot_makes_the_udp_table_unknown()
    {
        var r = Infer(g => g.U64(Udp + Node, 0x4141_4141_4141_4140));
        Assert.Null(Offset(r, "udp_table", "hash"));
        Assert.Equal(0x40, Offset(r, "inet_hashinfo", "lhash2"));
    }

    [Fact]
    public void A_unix_bucket_chaining_a_tcp_socket_is_not_the_unix_hash()
    {
        var r = Infer(g => g.U64(UnixBuckets + 3 * 8, Listener + Node));
        Assert.Null(Offset(r, "net", "unx.table.buckets"));
    }

    [Fact]
    public void The_step_budget_bounds_the_search()
    {
        Assert.Throws<KernelModelException>(() => Infer(limits: new IntrospectionLimits { MaxInferenceSteps = 50 }));
    }

    [Fact]
    public void The_netlink_table_members_come_out_as_btf_has_them()
    {
        var r = Infer();
        var expected = new (string, string, int)[]
        {
            ("netlink_table", InferenceReport.SizeOfMember, NlStride), ("netlink_table", "hash", 0), ("rhashtable", "tbl", 0),
            ("bucket_table", "size", 0), ("bucket_table", "nest", 4), ("bucket_table", "future_tbl", 0x30), ("bucket_table", "buckets", NlBuckets),
            ("netlink_sock", "node", NlNode),
        };
        foreach (var (s, m, v) in expected) Assert.True(Offset(r, s, m) == v, $"{s}.{m}: {Offset(r, s, m)?.ToString("x") ?? "unknown"}, expected 0x{v:x}");
        // Whole-bucket shifts fit the marker rule too: the cache-line alignment decides, and says so.
        Assert.Equal(InferenceDecision.TieBreak, r.Find("bucket_table", "buckets")!.Decision);
        // The socket rules alone know no struct socket or file: no evidence tells a port id from any other u32.
        Assert.Null(Offset(r, "netlink_sock", "portid"));
    }

    [Fact]
    public void A_netlink_chain_that_cycles_is_no_bucket_array_and_stops()
    {
        var r = Infer(g => g.U64(NlUser + NlNode, NlKernel + NlNode));
        Assert.Equal(NlStride, Offset(r, "netlink_table", InferenceReport.SizeOfMember));
        // Only offsets past route's bucket 3 (reading zeroes beyond the array) still fit: none is the array's start.
        Assert.Null(Offset(r, "bucket_table", "buckets"));
        Assert.DoesNotContain(NlBuckets, r.Find("bucket_table", "buckets")!.Candidates);
        // The intact audit chain alone still settles netlink_sock.node.
        Assert.Equal(NlNode, Offset(r, "netlink_sock", "node"));
        Assert.True(r.Steps < new IntrospectionLimits().MaxInferenceSteps);
    }

    [Fact]
    public void A_huge_bucket_count_is_no_bucket_table_and_nothing_huge_is_read()
    {
        var r = Infer(g => g.U32(BucketTable(5), 1u << 30));
        Assert.Null(Offset(r, "netlink_table", InferenceReport.SizeOfMember));
        Assert.Null(Offset(r, "bucket_table", "buckets"));
        Assert.Null(Offset(r, "netlink_sock", "node"));
        // The other tables are untouched.
        Assert.Equal(Node, Offset(r, "sock", "__sk_common.skc_nulls_node"));
    }

    /// <summary>netlink_sock windows as 6.12 lays them out: sk_protocol a u16 at 0x23e (two bytes short of a word boundary),
    /// flags at <paramref name="flagsAt"/>, portid right after it: route's kernel socket, a user one bound to port 0x1234,
    /// audit's kernel socket.</summary>
    private static List<NetlinkPortIdRule.Socket> NetlinkSockets(int flagsAt, int portidAt)
    {
        var socks = new List<NetlinkPortIdRule.Socket>();
        foreach (var (user, protocol, portid) in new[] { (false, 0, 0u), (true, 0, 0x1234u), (false, 9, 0u) })
        {
            var w = new byte[NlNode];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(w.AsSpan(SkProtocol), (ushort)protocol);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(flagsAt), user ? 0x4UL : 0x5UL);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(portidAt), portid);
            socks.Add(new NetlinkPortIdRule.Socket(w, user, protocol, InitNet));
        }
        return socks;
    }

    [Fact]
    public void Netlink_portid_after_a_u16_sk_protocol_off_a_word_boundary_is_found()
    {
        // 6.12.117: sk_protocol at 0x23e; struct sock ends at 0x3f8, flags then portid.
        Assert.Equal([0x400], NetlinkPortIdRule.Candidates(NetlinkSockets(flagsAt: 0x3f8, portidAt: 0x400), SkProtocol, 8));
        // The same with sk_protocol at a 4-byte boundary (sk_type's place: the 7.x order).
        Assert.Equal([0x400], NetlinkPortIdRule.Candidates(NetlinkSockets(flagsAt: 0x3f8, portidAt: 0x400), SkType, 8));
    }

    [Fact]
    public void Netlink_portid_needs_a_flags_word_after_sk_protocol_and_both_kinds_of_socket()
    {
        // flags in the word that holds sk_protocol is not netlink_sock's own member: nothing fits.
        Assert.Empty(NetlinkPortIdRule.Candidates(NetlinkSockets(flagsAt: 0x238, portidAt: 0x240), SkProtocol, 8));
        // Kernel sockets alone say nothing about a port id.
        Assert.Empty(NetlinkPortIdRule.Candidates(NetlinkSockets(flagsAt: 0x3f8, portidAt: 0x400).Where(s => !s.User).ToList(), SkProtocol, 8));
        // A window too short for the u32 is no candidate, and nothing is read past it.
        var cut = NetlinkSockets(flagsAt: 0x3f8, portidAt: 0x400).Select(s => s with { Window = s.Window[..0x403] }).ToList();
        Assert.Empty(NetlinkPortIdRule.Candidates(cut, SkProtocol, 8));
    }

    [Fact]
    public void A_chain_ending_in_another_buckets_marker_is_not_the_bucket_array()
    {
        var r = Infer(g => g.U64(NlAudit + NlNode, NlMarker(9, AuditBucket + 1)));
        Assert.Null(Offset(r, "bucket_table", "buckets"));
    }
}
