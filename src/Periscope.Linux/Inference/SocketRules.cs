using System.Buffers.Binary;
using System.Numerics;

namespace Periscope.Linux.Inference;

/// <summary>
/// The kernel-table side of `sockets` without BTF: tcp_hashinfo's established (ehash) and listening (lhash2) hashes,
/// udp_table, the initial network namespace's unix hash, and the sock_common members of the sockets they chain. The
/// tables are exact structure: a bucket count is a power of two whose mask the table holds; an empty ehash bucket
/// holds the nulls marker (index &lt;&lt; 1 | 1), an empty lhash2 bucket (index + LISTENING_NULLS_BASE) &lt;&lt; 1 | 1; an
/// established socket sits in the bucket its skc_hash names; a listener is in TCP_LISTEN; families are AF_INET,
/// AF_INET6 and AF_UNIX. Every chain read is bounded (per chain and in total) and cycle-free by construction (a cap).
/// </summary>
public sealed partial class OffsetInference
{
    private const string SockStruct = "sock", SkCommon = "__sk_common.";
    private const int SockAfUnix = 1, SockAfInet = 2, SockAfInet6 = 10;
    private const int SockTcpListen = 10, SockTcpTimeWait = 6, SockTcpNewSynRecv = 12, SockTcpMaxState = 12;
    /// <summary>IPPROTO_TCP, IPPROTO_UDP; SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET (ABI numbers).</summary>
    private const int SockIpprotoTcp = 6, SockIpprotoUdp = 17, SockStream = 1, SockDgram = 2, SockSeqpacket = 5;
    /// <summary>LISTENING_NULLS_BASE (include/net/inet_hashtables.h): lhash2 bucket i ends its chain in nulls value i + 2^29.</summary>
    private const ulong ListeningNullsBase = 1UL << 29;
    private const int UnixHashBuckets = Network.Sockets.UnixHashBuckets;
    /// <summary>How many leading buckets a table's shape is checked on (then its last bucket and the one past it).</summary>
    private const int SocketShapeBuckets = 64;
    /// <summary>skc_node/skc_nulls_node lie within this many bytes of the sock's start (104 on x86-64, 84 on i386).</summary>
    private const int MaxSockCommonBytes = 256;
    /// <summary>sock_common up to skc_bind_node: addrpair (8), skc_hash (4), skc_portpair (4), skc_family (2), skc_state
    /// (1), flags (1), skc_bound_dev_if (4) — the same 24 bytes for every word size.</summary>
    private const int SockFamily = 16, SockState = 18, SockPortPair = 12, SockRcvSaddr = 4, SockDaddr = 0, SockHash = 8, SockBindNode = 24;
    private const int MaxChainLength = 64;
    /// <summary>udp_hslot { head; int count; spinlock_t lock; } in words at most: 2 with a 4-byte spinlock_t, 6 with
    /// PREEMPT_RT's on x86-64, more with lock debugging.</summary>
    private const int MaxUdpSlotWords = 16;

    private readonly record struct ChainNode(ulong Link, uint Bucket, bool Listening);

    /// <summary>The socket rules alone, on their own step budget (for tests and tools that need only these members).</summary>
    /// <exception cref="Model.KernelModelException">The search exceeded MaxInferenceSteps.</exception>
    public static InferenceReport InferSocketTables(Model.GuestReader reader, Kallsyms.KernelSymbols symbols, Memory.IntrospectionLimits limits) =>
        RulesAlone(reader, symbols, limits, "socket", search => search.InferSocketTables());

    private void InferSocketTables()
    {
        var nodes = new List<ChainNode>();
        uint ehashMask = 0;
        if (SocketDataAddress("tcp_hashinfo") is { } hashinfo) InferTcpHashes(hashinfo, nodes, out ehashMask);
        else ReportUnknown("tcp_hashinfo not found", ("inet_hashinfo", "ehash"), ("inet_hashinfo", "ehash_mask"), ("inet_hashinfo", "lhash2"),
            ("inet_hashinfo", "lhash2_mask"), ("inet_ehash_bucket", InferenceReport.SizeOfMember), ("inet_ehash_bucket", "chain"),
            ("inet_listen_hashbucket", InferenceReport.SizeOfMember), ("inet_listen_hashbucket", "nulls_head"));
        int? node = InferSockCommon(nodes, ehashMask);
        var udp = new List<ulong>();
        var unix = new List<ulong>();
        if (node is { } n)
        {
            if (SocketDataAddress("udp_table") is { } table) udp = InferUdpTable(table, n);
            else ReportUnknown("udp_table not found", ("udp_table", "hash"), ("udp_table", "mask"), ("udp_hslot", InferenceReport.SizeOfMember), ("udp_hslot", "head"));
            if (SocketDataAddress("init_net") is { } net) unix = InferUnixHash(net, n);
            else _report.AddUnknown("net", "unx.table.buckets", "init_net not found");
        }
        else ReportUnknown("needs sock.__sk_common.skc_node", ("udp_table", "hash"), ("net", "unx.table.buckets"));
        var tcp = node is { } at ? nodes.Where(c => IsFullTcp(c.Link - (ulong)at)).Select(c => c.Link - (ulong)at).Distinct().Take(SocketSamples).ToList() : [];
        InferSockTypes(tcp, udp, unix);
        InferUnixAddress(unix);
        InferNetlinkTable();
    }

    private int SocketSamples => Math.Min(_limits.MaxInferenceSamples, 256);

    private void ReportUnknown(string why, params (string Struct, string Member)[] members)
    {
        foreach (var (s, m) in members) _report.AddUnknown(s, m, why);
    }

    /// <summary>A data object the socket rules start from: kallsyms, else the code that uses it.</summary>
    private ulong? SocketDataAddress(string name)
    {
        if (_symbols.TryGetAddress(name, out ulong address)) return address;
        var found = Model.SocketTablesCode.Find(_r, _symbols, name, out _);
        // init_net from code must also be the namespace every socket of tcp_hashinfo names (skc_net).
        return name == "init_net" && found != _socketNet ? null : found;
    }

    /// <summary>The skc_net every socket of tcp_hashinfo holds, when they agree.</summary>
    private ulong? _socketNet;

    private bool IsFullTcp(ulong sk)
    {
        Span<byte> b = stackalloc byte[4];
        if (_r.Read(sk + SockFamily, b) != 4) return false;
        int state = b[2];
        return state != SockTcpTimeWait && state != SockTcpNewSynRecv;
    }

    // ---- tcp_hashinfo ----

    private void InferTcpHashes(ulong hashinfo, List<ChainNode> nodes, out uint ehashMask)
    {
        ehashMask = 0;
        var w = new byte[16 * _p];
        Step();
        if (_r.Read(hashinfo, w) != w.Length)
        {
            ReportUnknown($"tcp_hashinfo at 0x{hashinfo:x} is unreadable", ("inet_hashinfo", "ehash"), ("inet_hashinfo", "lhash2"));
            return;
        }
        var ehash = NullsTables(w, maxStrideWords: 2, i => ((ulong)i << 1) | 1);
        var lhash = NullsTables(w, maxStrideWords: 8, i => ((i + ListeningNullsBase) << 1) | 1);
        lhash.RemoveAll(l => ehash.Any(x => x.PointerAt == l.PointerAt));
        const string EhashRule = "a pointer to buckets whose empty heads hold their own nulls marker (index << 1 | 1), and a u32 mask = count - 1 (a power of two) such that the marker sequence ends exactly at bucket mask";
        const string LhashRule = "a pointer to buckets whose empty heads hold the nulls marker (index + LISTENING_NULLS_BASE) << 1 | 1, and a u32 mask = count - 1 (a power of two) such that the marker sequence ends exactly at bucket mask";
        var e = AddTable(ehash, "inet_hashinfo", "ehash", "ehash_mask", "inet_ehash_bucket", "chain", EhashRule);
        if (e is { } eh)
        {
            ehashMask = eh.Mask;
            CollectNulls(eh, listening: false, nodes);
            // One member is one member: the established hash's pointer and mask are not the listening hash's (their
            // counts may be equal, so the marker test alone cannot tell the two masks apart).
            lhash.RemoveAll(t => t.PointerAt == eh.PointerAt || t.MaskAt == eh.MaskAt);
        }
        if (AddTable(lhash, "inet_hashinfo", "lhash2", "lhash2_mask", "inet_listen_hashbucket", "nulls_head", LhashRule, maskDeclaredBeforePointer: true) is { } l)
            CollectNulls(l, listening: true, nodes);
    }

    private readonly record struct HashTable(int PointerAt, int MaskAt, int Stride, int Head, ulong Buckets, uint Mask, Func<ulong, ulong> Marker);

    /// <summary>Every (pointer, mask, bucket stride, head offset) of the struct window <paramref name="w"/> the nulls-table shape fits.</summary>
    private List<HashTable> NullsTables(byte[] w, int maxStrideWords, Func<ulong, ulong> marker)
    {
        var found = new List<HashTable>();
        for (int o = 0; o + _p <= w.Length; o += _p)
        {
            ulong buckets = Word(w, o);
            if (!IsKernel(buckets) || (buckets & 1) != 0) continue;
            for (int m = 0; m + 4 <= w.Length; m += 4)
            {
                if (m >= o && m < o + _p) continue;
                uint mask = U32(w, m);
                if (!IsMask(mask)) continue;
                for (int stride = _p; stride <= maxStrideWords * _p; stride += _p)
                    for (int head = 0; head < stride; head += _p)
                        if (IsNullsTable(buckets, mask, stride, head, marker))
                            found.Add(new HashTable(o, m, stride, head, buckets, mask, marker));
            }
        }
        return found;
    }

    private bool IsMask(uint mask) => mask >= 1 && mask < _limits.MaxSocketHashBuckets && BitOperations.IsPow2((ulong)mask + 1);

    /// <summary>The shape of an hlist_nulls table: each of the first buckets is its own marker or an even kernel pointer
    /// (at least one marker), and so is bucket <paramref name="mask"/>; bucket mask + 1 (past the end) is not its marker.</summary>
    internal bool IsNullsTable(ulong buckets, uint mask, int stride, int head, Func<ulong, ulong> marker)
    {
        int n = (int)Math.Min(mask + 1UL, SocketShapeBuckets);
        var b = new byte[n * stride];
        Step(b.Length / 64 + 1);
        if (_r.Read(buckets, b) != b.Length) return false;
        int markers = 0;
        for (int i = 0; i < n; i++)
        {
            ulong v = Word(b, i * stride + head);
            if (v == marker((ulong)i)) markers++;
            else if ((v & 1) != 0 || !IsKernel(v)) return false;
        }
        if (markers == 0) return false;
        ulong lastAt = buckets + (ulong)mask * (ulong)stride + (ulong)head;
        if (!_r.TryPointer(lastAt, out ulong last) || last != marker(mask) && ((last & 1) != 0 || !IsKernel(last))) return false;
        return !_r.TryPointer(lastAt + (ulong)stride, out ulong past) || past != marker(mask + 1UL);
    }

    /// <param name="maskDeclaredBeforePointer">The mask is the u32 declared right before the pointer (inet_hashinfo's
    /// <c>unsigned int lhash2_mask; struct inet_listen_hashbucket *lhash2;</c> since lhash2 came, 4.16). Only used when
    /// the tables cannot tell: several mask words with the same value describe the same buckets (on PREEMPT_RT,
    /// ehash_locks_mask, sized by the 32-byte spinlock_t, can equal lhash2_mask).</param>
    private HashTable? AddTable(List<HashTable> found, string structName, string pointer, string mask, string bucket, string head, string rule,
        bool maskDeclaredBeforePointer = false)
    {
        int? p = _report.Add(structName, pointer, found.Select(t => t.PointerAt).Distinct().ToList(), rule);
        Func<IReadOnlyList<int>, int>? beforePointer = null;
        if (maskDeclaredBeforePointer && p is { } pointerAt && found.Where(t => t.PointerAt == pointerAt).Select(t => t.Mask).Distinct().Count() == 1
            && found.Any(t => t.PointerAt == pointerAt && t.MaskAt == pointerAt - 4))
            beforePointer = _ => pointerAt - 4;
        int? m = _report.Add(structName, mask, found.Where(t => p is null || t.PointerAt == p).Select(t => t.MaskAt).Distinct().ToList(), rule,
            beforePointer, $"the mask words hold the same value (the same buckets), and {mask} is the u32 declared right before {pointer}");
        int? s = _report.Add(bucket, InferenceReport.SizeOfMember, found.Select(t => t.Stride).Distinct().ToList(), "the bucket stride of: " + rule);
        int? h = _report.Add(bucket, head, found.Select(t => t.Head).Distinct().ToList(), "where the markers sit in each bucket of: " + rule);
        return p is null || m is null || s is null || h is null ? null : found.First(t => t.PointerAt == p && t.MaskAt == m && t.Stride == s && t.Head == h);
    }

    /// <summary>The chain links of every non-empty bucket (bounded: MaxInferenceSocketBuckets buckets, MaxChainLength per chain, SocketSamples in all).</summary>
    private void CollectNulls(HashTable t, bool listening, List<ChainNode> nodes)
    {
        long count = Math.Min(t.Mask + 1L, _limits.MaxInferenceSocketBuckets);
        const int Chunk = 512;
        var b = new byte[Chunk * t.Stride];
        for (long start = 0; start < count && nodes.Count < SocketSamples; start += Chunk)
        {
            int n = (int)Math.Min(Chunk, count - start);
            var span = b.AsSpan(0, n * t.Stride);
            Step(span.Length / 64 + 1);
            if (_r.Read(t.Buckets + (ulong)(start * t.Stride), span) != span.Length) return;
            for (int i = 0; i < n; i++)
            {
                ulong link = Word(b, i * t.Stride + t.Head);
                for (int hop = 0; hop < MaxChainLength && (link & 1) == 0 && IsKernel(link) && nodes.Count < SocketSamples; hop++)
                {
                    Step();
                    nodes.Add(new ChainNode(link, (uint)(start + i), listening));
                    if (!_r.TryPointer(link, out link)) break;
                }
            }
        }
    }

    // ---- sock_common ----

    /// <summary>
    /// The distance d from a chain link back to skc_family: in every socket of tcp_hashinfo the u16 there is AF_INET or
    /// AF_INET6 and the byte after it a TCP state (TCP_LISTEN in the listening hash, another in the established hash), and
    /// an established socket's skc_hash (8 bytes before the family) masked by ehash_mask is its bucket. The members before
    /// skc_bind_node are the same 24 bytes on every word size (declaration order, checked: a listener's local port is not 0).
    /// </summary>
    private int? InferSockCommon(List<ChainNode> nodes, uint ehashMask)
    {
        const string Rule = "the distance from each tcp_hashinfo chain link back to a u16 AF_INET/AF_INET6 followed by a TCP state (TCP_LISTEN in lhash2, another state in ehash), where an ehash socket's skc_hash & ehash_mask is its bucket; skc_family is declared after skc_addrpair, skc_hash and skc_portpair (16 bytes)";
        var windows = new List<(ChainNode Node, byte[] Before)>();
        foreach (var c in nodes)
        {
            var w = new byte[MaxSockCommonBytes];
            Step(MaxSockCommonBytes / 64);
            if (_r.Read(c.Link - MaxSockCommonBytes, w) == w.Length) windows.Add((c, w));
        }
        var candidates = new List<int>();
        if (windows.Count > 0)
            for (int d = MaxSockCommonBytes - SockFamily; d >= SockBindNode - SockFamily + 2 * _p; d -= 2)
            {
                Step(windows.Count);
                if (windows.All(x => FitsFamily(x.Node, x.Before, MaxSockCommonBytes - d, ehashMask))) candidates.Add(SockFamily + d);
            }
        int? node = _report.Add(SockStruct, SkCommon + "skc_nulls_node", candidates, windows.Count == 0 ? "needs sockets in tcp_hashinfo: " + Rule : Rule);
        const string Members = "sock_common's first members";
        if (node is not { } n)
        {
            ReportUnknown("needs sock.__sk_common.skc_nulls_node", (SockStruct, SkCommon + "skc_node"), (SockStruct, SkCommon + "skc_family"),
                (SockStruct, SkCommon + "skc_state"), (SockStruct, SkCommon + "skc_portpair"), (SockStruct, SkCommon + "skc_rcv_saddr"),
                (SockStruct, SkCommon + "skc_daddr"), (SockStruct, SkCommon + "skc_v6_daddr"), (SockStruct, SkCommon + "skc_v6_rcv_saddr"));
            return null;
        }
        // A listener's local port (skc_num, the high half of skc_portpair) is never 0.
        bool portsOk = windows.Where(x => x.Node.Listening).All(x => BinaryPrimitives.ReadUInt16LittleEndian(x.Before.AsSpan(MaxSockCommonBytes - n + SockPortPair + 2)) != 0);
        if (!portsOk)
        {
            ReportUnknown($"{Members}: a listener at skc_nulls_node {Hex(n)} has local port 0", (SockStruct, SkCommon + "skc_node"), (SockStruct, SkCommon + "skc_family"));
            return null;
        }
        _report.AddStructural(SockStruct, SkCommon + "skc_node", n, "one union with skc_nulls_node (checked: udp and unix chains through it reach AF_INET/AF_INET6/AF_UNIX sockets)");
        _report.AddStructural(SockStruct, SkCommon + "skc_family", SockFamily, "after skc_addrpair, skc_hash, skc_portpair (checked by the skc_nulls_node rule)");
        _report.AddStructural(SockStruct, SkCommon + "skc_state", SockState, "the byte after skc_family (checked: a TCP state in every tcp_hashinfo socket)");
        _report.AddStructural(SockStruct, SkCommon + "skc_portpair", SockPortPair, "after skc_addrpair and skc_hash (checked: every listener's local port is not 0)");
        _report.AddStructural(SockStruct, SkCommon + "skc_rcv_saddr", SockRcvSaddr, "the second half of skc_addrpair");
        _report.AddStructural(SockStruct, SkCommon + "skc_daddr", SockDaddr, "the first half of skc_addrpair");
        InferV6Addresses(windows.Select(x => x.Before).ToList(), n);
        return n;
    }

    private static bool FitsFamily(ChainNode c, byte[] before, int familyAt, uint ehashMask)
    {
        int family = BinaryPrimitives.ReadUInt16LittleEndian(before.AsSpan(familyAt));
        int state = before[familyAt + 2];
        if (family is not (SockAfInet or SockAfInet6)) return false;
        if (c.Listening) return state == SockTcpListen;
        if (state is < 1 or > SockTcpMaxState || state == SockTcpListen) return false;
        uint hash = BinaryPrimitives.ReadUInt32LittleEndian(before.AsSpan(familyAt - SockFamily + SockHash));
        return ehashMask == 0 || (hash & ehashMask) == c.Bucket;
    }

    /// <summary>skc_v6_daddr and skc_v6_rcv_saddr follow skc_bind_node (two pointers), skc_prot and skc_net; then come
    /// skc_cookie (8 bytes, 8-aligned) and skc_flags (a word) before skc_node. Checked: that order ends exactly at the
    /// inferred skc_node, and skc_net is one kernel pointer in every socket of tcp_hashinfo.</summary>
    private void InferV6Addresses(List<byte[]> before, int node)
    {
        int net = SockBindNode + 3 * _p, daddr = net + _p, rcv = daddr + 16;
        int expectedNode = ((rcv + 16 + 7) & ~7) + 8 + _p;
        var nets = before.Select(w => Word(w, MaxSockCommonBytes - node + net)).Distinct().ToList();
        if (expectedNode != node || nets.Count != 1 || !IsKernel(nets[0]))
        {
            ReportUnknown($"declaration order puts skc_node at {Hex(expectedNode)} (inferred {Hex(node)}), skc_net holds {nets.Count} distinct value(s)",
                (SockStruct, SkCommon + "skc_v6_daddr"), (SockStruct, SkCommon + "skc_v6_rcv_saddr"));
            return;
        }
        _socketNet = nets[0];
        const string Why = "after skc_bind_node, skc_prot and skc_net (checked: skc_cookie and skc_flags then end at the inferred skc_node, and skc_net is one kernel pointer in every socket)";
        _report.AddStructural(SockStruct, SkCommon + "skc_v6_daddr", daddr, Why);
        _report.AddStructural(SockStruct, SkCommon + "skc_v6_rcv_saddr", rcv, Why);
    }

    // ---- udp_table ----

    /// <summary>
    /// udp_table { hash, hash2, ..., u32 mask, u32 log }: a pointer to slots and a mask with log = log2(mask + 1) right
    /// after it; each slot { hlist_head head; int count; ... }: head NULL exactly when count is 0, else a chain of count
    /// links through skc_node to AF_INET/AF_INET6 sockets (hash2 chains through skc_portaddr_node and fails that).
    /// </summary>
    private List<ulong> InferUdpTable(ulong table, int node)
    {
        const string Rule = "a pointer to slots {head, count} whose chains through skc_node hold count AF_INET/AF_INET6 sockets (NULL exactly when count is 0), followed by hash2 = hash + (mask + 1) slots, and a u32 mask within four words followed by log = log2(mask + 1)";
        var w = new byte[8 * _p];
        Step();
        var found = new List<(int Hash, int Mask, int Stride, int Head, List<ulong> Socks)>();
        if (_r.Read(table, w) == w.Length)
            for (int m = 0; m + 8 <= w.Length; m += 4)
            {
                uint mask = U32(w, m);
                if (!IsMask(mask) || U32(w, m + 4) != (uint)BitOperations.Log2((ulong)mask + 1)) continue;
                // udp_table { hash, hash2, [hash4,] mask, log }: the mask follows hash within four words, and
                // udp_table_init allocates hash2 right after hash's mask + 1 slots (so hash2 - hash is the slot array's size).
                for (int o = Math.Max(0, m - 4 * _p); o + 2 * _p <= m; o += _p)
                {
                    ulong slots = Word(w, o), hash2 = Word(w, o + _p);
                    if (!IsKernel(slots) || hash2 <= slots || (hash2 - slots) % (mask + 1UL) != 0) continue;
                    // The slot size is exact (hash2 - hash over the slot count); it is bounded, not assumed: head and count,
                    // then spinlock_t (4 bytes, or PREEMPT_RT's 32-byte rt_mutex: 48-byte slots), aligned to two words.
                    ulong slotSize = (hash2 - slots) / (mask + 1UL);
                    if (slotSize < (ulong)(2 * _p) || slotSize > MaxUdpSlotWords * (ulong)_p || slotSize % (ulong)_p != 0) continue;
                    int stride = (int)slotSize;
                    long count = Math.Min(mask + 1L, _limits.MaxInferenceSocketBuckets);
                    var b = new byte[count * stride];
                    Step(b.Length / 64 + 1);
                    if (_r.Read(slots, b) != b.Length) continue;
                    for (int head = 0; head + _p + 4 <= stride; head += _p)
                        if (UdpSlots(b, (int)count, stride, head, node) is { } socks) found.Add((o, m, stride, head, socks));
                }
            }
        int? hash = _report.Add("udp_table", "hash", found.Select(f => f.Hash).Distinct().ToList(), Rule);
        int? maskAt = _report.Add("udp_table", "mask", found.Select(f => f.Mask).Distinct().ToList(), Rule);
        int? size = _report.Add("udp_hslot", InferenceReport.SizeOfMember, found.Select(f => f.Stride).Distinct().ToList(), "the slot stride of: " + Rule);
        int? headAt = _report.Add("udp_hslot", "head", found.Select(f => f.Head).Distinct().ToList(), "where the chains start in each slot of: " + Rule);
        return hash is null || maskAt is null || size is null || headAt is null ? [] : found.First(f => f.Hash == hash && f.Stride == size && f.Head == headAt).Socks;
    }

    /// <summary>The sockets of a udp slot array when it has the shape (some slot in use), else null.</summary>
    private List<ulong>? UdpSlots(byte[] b, int count, int stride, int head, int node)
    {
        var socks = new List<ulong>();
        for (int i = 0; i < count; i++)
        {
            ulong link = Word(b, i * stride + head);
            // The slot's count is the int right after the head pointer (declaration order, checked against the chain).
            uint n = U32(b, i * stride + head + _p);
            if (link == 0) { if (n != 0) return null; continue; }
            if (n == 0 || n > MaxChainLength) return null;
            for (uint hop = 0; hop < n; hop++)
            {
                if (!IsKernel(link) || (link & 1) != 0 || !IsFamily(link - (ulong)node, SockAfInet, SockAfInet6)) return null;
                socks.Add(link - (ulong)node);
                Step();
                if (!_r.TryPointer(link, out link)) return null;
            }
            if (link != 0) return null;
        }
        return socks.Count > 0 ? socks.Distinct().Take(SocketSamples).ToList() : null;
    }

    private bool IsFamily(ulong sk, int a, int b = -1)
    {
        Span<byte> f = stackalloc byte[2];
        if (_r.Read(sk + SockFamily, f) != 2) return false;
        int family = BinaryPrimitives.ReadUInt16LittleEndian(f);
        return family == a || family == b;
    }

    // ---- the unix hash ----

    /// <summary>
    /// net.unx.table { spinlock_t *locks; struct hlist_head *buckets; }: in init_net, a pointer right after another
    /// kernel pointer, to UNIX_HASH_SIZE * 2 heads each NULL or a chain through skc_node of AF_UNIX sockets only (some
    /// bucket in use).
    /// </summary>
    private List<ulong> InferUnixHash(ulong net, int node)
    {
        const string Rule = "the pointer (after the locks pointer) in init_net to 512 hlist heads whose every chain through skc_node holds AF_UNIX sockets only";
        var w = new byte[_limits.MaxInferenceNetBytes];
        Step(w.Length / 64);
        int got = _r.Read(net, w);
        var found = new List<(int At, List<ulong> Socks)>();
        var heads = new byte[UnixHashBuckets * _p];
        for (int o = _p; o + _p <= got; o += _p)
        {
            ulong buckets = Word(w, o);
            if (!IsKernel(buckets) || !IsKernel(Word(w, o - _p)) || (buckets & (ulong)(_p - 1)) != 0) continue;
            Step();
            // A cheap look at the first heads before reading all of them.
            if (!_r.TryPointer(buckets, out ulong first) || first != 0 && !IsKernel(first)) continue;
            Step(heads.Length / 64);
            if (_r.Read(buckets, heads) != heads.Length) continue;
            if (UnixChains(heads, node) is { } socks) found.Add((o, socks));
        }
        int? at = _report.Add("net", "unx.table.buckets", found.Select(f => f.At).ToList(), Rule);
        return at is null ? [] : found.First(f => f.At == at).Socks;
    }

    private List<ulong>? UnixChains(byte[] heads, int node)
    {
        var socks = new List<ulong>();
        for (int i = 0; i < UnixHashBuckets; i++)
        {
            ulong link = Word(heads, i * _p);
            if (link == 0) continue;
            for (int hop = 0; link != 0; hop++)
            {
                if (hop == MaxChainLength || !IsKernel(link) || (link & 1) != 0 || !IsFamily(link - (ulong)node, SockAfUnix)) return null;
                if (socks.Count < SocketSamples) socks.Add(link - (ulong)node);
                Step();
                if (!_r.TryPointer(link, out link)) return null;
            }
        }
        return socks.Count > 0 ? socks : null;
    }

    // ---- struct sock beyond sock_common ----

    /// <summary>
    /// u16 sk_type and u16 sk_protocol, side by side (type first in 6.x, protocol first in 7.x): the one offset where every
    /// TCP socket holds IPPROTO_TCP, every UDP socket IPPROTO_UDP and every unix socket 0, and next to it the one where
    /// every TCP socket holds SOCK_STREAM, every UDP socket SOCK_DGRAM and every unix socket a unix type.
    /// </summary>
    private void InferSockTypes(List<ulong> tcp, List<ulong> udp, List<ulong> unix)
    {
        const string ProtocolRule = "a u16 holding IPPROTO_TCP in every TCP socket, IPPROTO_UDP in every UDP socket and 0 in every unix socket";
        const string TypeRule = "the u16 next to sk_protocol holding SOCK_STREAM in every TCP socket, SOCK_DGRAM in every UDP socket and a unix type in every unix socket";
        var samples = tcp.Select(s => (Sk: s, Kind: 0)).Concat(udp.Select(s => (Sk: s, Kind: 1))).Concat(unix.Select(s => (Sk: s, Kind: 2))).ToList();
        var windows = samples.Select(s => (s.Kind, W: StructWindow(s.Sk))).Where(x => x.W is not null).ToList();
        bool evidence = windows.Any(x => x.Kind == 0) && windows.Any(x => x.Kind != 0);
        List<int> Search(Func<int, int, bool> fits, Func<int, bool> where)
        {
            var found = new List<int>();
            if (!evidence) return found;
            for (int x = MaxSockCommonBytes / 2; x + 2 <= _structBytes; x += 2)
            {
                if (!where(x)) continue;
                Step(windows.Count);
                if (windows.All(s => fits(s.Kind, BinaryPrimitives.ReadUInt16LittleEndian(s.W.AsSpan(x))))) found.Add(x);
            }
            return found;
        }
        int? protocol = _report.Add(SockStruct, "sk_protocol", Search(ProtocolFits, _ => true), evidence ? ProtocolRule : "needs TCP and UDP or unix sockets: " + ProtocolRule);
        if (protocol is { } p) _report.Add(SockStruct, "sk_type", Search(TypeFits, x => x == p - 2 || x == p + 2), TypeRule);
        else _report.AddUnknown(SockStruct, "sk_type", "needs sock.sk_protocol");
    }

    private static bool ProtocolFits(int kind, int protocol) => kind switch
    {
        0 => protocol == SockIpprotoTcp,
        1 => protocol == SockIpprotoUdp,
        _ => protocol == 0,
    };

    private static bool TypeFits(int kind, int type) => kind switch
    {
        0 => type == SockStream,
        1 => type == SockDgram,
        _ => type is SockStream or SockDgram or SockSeqpacket,
    };

    /// <summary>
    /// unix_sock.addr (the member right after struct sock): the one pointer offset where every unix socket holds NULL
    /// (unbound) or a unix_address { refcount_t refcnt; int len; struct sockaddr_un name; } with len in 3..110 and
    /// name.sun_family AF_UNIX, and some socket is bound.
    /// </summary>
    private void InferUnixAddress(List<ulong> unix)
    {
        const string Rule = "a pointer that is NULL or a unix_address (len 3..110 at +4, sun_family AF_UNIX at +8) in every unix socket, non-NULL in some";
        var windows = unix.Select(StructWindow).Where(w => w is not null).Select(w => w!).ToList();
        var candidates = new List<int>();
        for (int x = MaxSockCommonBytes; x + _p <= _structBytes && windows.Count > 0; x += _p)
        {
            Step(windows.Count);
            int bound = 0;
            bool all = true;
            foreach (var w in windows)
            {
                ulong a = Word(w, x);
                if (a == 0) continue;
                if (!IsKernel(a) || !IsUnixAddress(a)) { all = false; break; }
                bound++;
            }
            if (all && bound > 0) candidates.Add(x);
        }
        int? addr = _report.Add("unix_sock", "addr", candidates, windows.Count > 0 ? Rule : "needs unix sockets: " + Rule, c => c[0], "the lowest: addr is unix_sock's first member after struct sock");
        if (addr is null) { ReportUnknown("needs unix_sock.addr", ("unix_address", "len"), ("unix_address", "name")); return; }
        _report.AddStructural("unix_address", "len", UnixAddressLen, "after refcount_t refcnt (checked by unix_sock.addr's rule)");
        _report.AddStructural("unix_address", "name", UnixAddressName, "after refcnt and len (checked: sun_family AF_UNIX)");
    }

    private const int UnixAddressLen = 4, UnixAddressName = 8;

    private bool IsUnixAddress(ulong a)
    {
        Span<byte> b = stackalloc byte[10];
        Step();
        if (_r.Read(a, b) != b.Length) return false;
        int len = BinaryPrimitives.ReadInt32LittleEndian(b[UnixAddressLen..]);
        return len is >= 3 and <= 110 && BinaryPrimitives.ReadUInt16LittleEndian(b[UnixAddressName..]) == SockAfUnix;
    }
}
