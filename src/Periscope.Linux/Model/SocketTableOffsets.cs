using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// What the kernel-table side of `sockets` reads: struct sock_common and a few struct sock members, tcp_hashinfo's
/// established and listening hashes, udp_table and its slots, the initial network namespace's unix hash and unix
/// addresses, nl_table's rhashtables and netlink_sock's node and port id. From BTF, or inferred from the tables themselves without it (<see cref="OffsetInference"/>, SocketRules).
/// Every member is null when its source does not know it; `sockets` then names what it lacks.
/// </summary>
public sealed record SocketTableOffsets
{
    public int? Family { get; init; }
    public int? State { get; init; }
    public int? PortPair { get; init; }
    public int? RcvSaddr { get; init; }
    public int? Daddr { get; init; }
    public int? V6RcvSaddr { get; init; }
    public int? V6Daddr { get; init; }
    public int? Node { get; init; }
    public int? NullsNode { get; init; }
    public int? SkType { get; init; }
    public int? SkProtocol { get; init; }
    public int? SkUid { get; init; }
    public int? Ehash { get; init; }
    public int? EhashMask { get; init; }
    public int? Lhash2 { get; init; }
    public int? Lhash2Mask { get; init; }
    public int? EhashBucketSize { get; init; }
    public int? EhashChain { get; init; }
    public int? ListenBucketSize { get; init; }
    /// <summary>inet_listen_hashbucket.nulls_head (5.17+; the NULL-terminated `head` before is not inferred).</summary>
    public int? ListenNullsHead { get; init; }
    public int? UdpHash { get; init; }
    public int? UdpMask { get; init; }
    public int? UdpSlotSize { get; init; }
    public int? UdpSlotHead { get; init; }
    public int? UnixAddrLen { get; init; }
    public int? UnixAddrName { get; init; }
    public int? UnixSockAddr { get; init; }
    public int? NetUnixBuckets { get; init; }
    public int? NetlinkTableSize { get; init; }
    public int? NetlinkTableHash { get; init; }
    public int? RhashtableTbl { get; init; }
    public int? BucketTableSize { get; init; }
    public int? BucketTableNest { get; init; }
    public int? BucketTableFuture { get; init; }
    public int? BucketTableBuckets { get; init; }
    public int? NetlinkSockNode { get; init; }
    public int? NetlinkSockPortId { get; init; }

    private const string Common = "__sk_common.";

    /// <summary>From BTF (only for listing: with BTF the views ask BTF directly); members BTF lacks stay null.</summary>
    public static SocketTableOffsets FromBtf(BtfTypes btf) => From((structName, path) =>
        path == InferenceReport.SizeOfMember ? btf.FindStruct(structName)?.Size : btf.FindStruct(structName)?.OffsetInside(path));

    /// <summary>From the inference report's known members (inferred now, or loaded from the offsets cache); null when it
    /// knows none of the three tables' anchors.</summary>
    public static SocketTableOffsets? FromReport(InferenceReport report)
    {
        var o = From((structName, path) => report.Find(structName, path)?.Offset);
        return o.Family is null && o.Ehash is null && o.UdpHash is null ? null : o;
    }

    private static SocketTableOffsets From(Func<string, string, int?> O)
    {
        int? Size(string structName) => O(structName, InferenceReport.SizeOfMember);
        return new SocketTableOffsets
        {
            Family = O("sock", Common + "skc_family"), State = O("sock", Common + "skc_state"), PortPair = O("sock", Common + "skc_portpair"),
            RcvSaddr = O("sock", Common + "skc_rcv_saddr"), Daddr = O("sock", Common + "skc_daddr"),
            V6RcvSaddr = O("sock", Common + "skc_v6_rcv_saddr"), V6Daddr = O("sock", Common + "skc_v6_daddr"),
            Node = O("sock", Common + "skc_node"), NullsNode = O("sock", Common + "skc_nulls_node"),
            SkType = O("sock", "sk_type"), SkProtocol = O("sock", "sk_protocol"), SkUid = O("sock", "sk_uid"),
            Ehash = O("inet_hashinfo", "ehash"), EhashMask = O("inet_hashinfo", "ehash_mask"),
            Lhash2 = O("inet_hashinfo", "lhash2"), Lhash2Mask = O("inet_hashinfo", "lhash2_mask"),
            EhashBucketSize = Size("inet_ehash_bucket"), EhashChain = O("inet_ehash_bucket", "chain"),
            ListenBucketSize = Size("inet_listen_hashbucket"), ListenNullsHead = O("inet_listen_hashbucket", "nulls_head"),
            UdpHash = O("udp_table", "hash"), UdpMask = O("udp_table", "mask"), UdpSlotSize = Size("udp_hslot"), UdpSlotHead = O("udp_hslot", "head"),
            UnixAddrLen = O("unix_address", "len"), UnixAddrName = O("unix_address", "name"), UnixSockAddr = O("unix_sock", "addr"),
            NetUnixBuckets = O("net", "unx.table.buckets"),
            NetlinkTableSize = Size("netlink_table"), NetlinkTableHash = O("netlink_table", "hash"), RhashtableTbl = O("rhashtable", "tbl"),
            BucketTableSize = O("bucket_table", "size"), BucketTableNest = O("bucket_table", "nest"), BucketTableFuture = O("bucket_table", "future_tbl"),
            BucketTableBuckets = O("bucket_table", "buckets"), NetlinkSockNode = O("netlink_sock", "node"), NetlinkSockPortId = O("netlink_sock", "portid"),
        };
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        add("sock", Common + "skc_family", Family); add("sock", Common + "skc_state", State); add("sock", Common + "skc_portpair", PortPair);
        add("sock", Common + "skc_rcv_saddr", RcvSaddr); add("sock", Common + "skc_daddr", Daddr);
        add("sock", Common + "skc_v6_rcv_saddr", V6RcvSaddr); add("sock", Common + "skc_v6_daddr", V6Daddr);
        add("sock", Common + "skc_node", Node); add("sock", Common + "skc_nulls_node", NullsNode);
        add("sock", "sk_type", SkType); add("sock", "sk_protocol", SkProtocol); add("sock", "sk_uid", SkUid);
        add("inet_hashinfo", "ehash", Ehash); add("inet_hashinfo", "ehash_mask", EhashMask);
        add("inet_hashinfo", "lhash2", Lhash2); add("inet_hashinfo", "lhash2_mask", Lhash2Mask);
        add("inet_ehash_bucket", InferenceReport.SizeOfMember, EhashBucketSize); add("inet_ehash_bucket", "chain", EhashChain);
        add("inet_listen_hashbucket", InferenceReport.SizeOfMember, ListenBucketSize); add("inet_listen_hashbucket", "nulls_head", ListenNullsHead);
        add("udp_table", "hash", UdpHash); add("udp_table", "mask", UdpMask);
        add("udp_hslot", InferenceReport.SizeOfMember, UdpSlotSize); add("udp_hslot", "head", UdpSlotHead);
        add("unix_address", "len", UnixAddrLen); add("unix_address", "name", UnixAddrName); add("unix_sock", "addr", UnixSockAddr);
        add("net", "unx.table.buckets", NetUnixBuckets);
        add("netlink_table", InferenceReport.SizeOfMember, NetlinkTableSize); add("netlink_table", "hash", NetlinkTableHash); add("rhashtable", "tbl", RhashtableTbl);
        add("bucket_table", "size", BucketTableSize); add("bucket_table", "nest", BucketTableNest); add("bucket_table", "future_tbl", BucketTableFuture);
        add("bucket_table", "buckets", BucketTableBuckets); add("netlink_sock", "node", NetlinkSockNode); add("netlink_sock", "portid", NetlinkSockPortId);
    }
}
