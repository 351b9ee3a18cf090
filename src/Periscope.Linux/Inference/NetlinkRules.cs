using System.Buffers.Binary;
using System.Numerics;

namespace Periscope.Linux.Inference;

/// <summary>
/// The netlink side of `sockets` without BTF: nl_table (a pointer to MAX_LINKS = 32 struct netlink_table, each starting
/// with an rhashtable of bound netlink sockets, initialised for every protocol), its bucket tables and netlink_sock's
/// rhash node and port id. The structure is exact: every one of the 32 tables has a bucket table whose size is a power
/// of two; an rhashtable chain ends in the nulls marker of its own bucket (the bucket slot's address | 1, RHT_NULLS_MARKER);
/// every socket chained in table i is AF_NETLINK with sk_protocol i; a kernel socket's port id is 0, a bound user
/// socket's is not. Every read is bounded.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>MAX_LINKS (include/uapi/linux/netlink.h): nl_table holds one netlink_table per protocol.</summary>
    private const int NetlinkProtocols = 32;
    private const int SockAfNetlink = 16;
    /// <summary>TCP_CLOSE: sock_init_data's state, which a netlink socket keeps until connect() sets NETLINK_CONNECTED (1).</summary>
    private const int NetlinkClosed = 7;
    /// <summary>Bound on sizeof(struct netlink_table) (about 200 bytes on x86-64).</summary>
    private const int MaxNetlinkTableBytes = 1024;
    /// <summary>Bound on bucket_table's header before buckets[] (64 bytes: cache-line aligned).</summary>
    private const int MaxBucketTableHeader = 256;
    /// <summary>Bound on netlink_sock.node's offset (after struct sock and the dump callback: about 0x4a0 on x86-64).</summary>
    private const int MaxNetlinkNodeOffset = 4096;
    /// <summary>bucket_table { u32 size; u32 nest; u32 hash_rnd; struct list_head walkers; struct rcu_head rcu; future_tbl; ... }.</summary>
    private const int BucketSize = 0, BucketNest = 4, BucketHashRnd = 8;
    /// <summary>L1_CACHE_BYTES on x86 (CONFIG_X86_L1_CACHE_SHIFT 6): ____cacheline_aligned_in_smp's alignment.</summary>
    private const int CacheLineBytes = 64;

    private static readonly (string Struct, string Member)[] NetlinkMembers =
    [
        ("netlink_table", InferenceReport.SizeOfMember), ("netlink_table", "hash"), ("rhashtable", "tbl"), ("bucket_table", "size"),
        ("bucket_table", "nest"), ("bucket_table", "future_tbl"), ("bucket_table", "buckets"), ("netlink_sock", "node"), ("netlink_sock", "portid"),
    ];

    /// <summary>One bucket table of nl_table: its protocol, address and size.</summary>
    private readonly record struct NetlinkBuckets(int Protocol, ulong Table, uint Size);

    /// <summary>A chain link of a netlink bucket table, with the table and the bucket slot it hangs from.</summary>
    private readonly record struct NetlinkLink(ulong Link, NetlinkBuckets Table, ulong Slot);

    private void InferNetlinkTable()
    {
        if (SocketDataAddress("nl_table") is not { } variable || !_r.TryPointer(variable, out ulong array) || !IsKernel(array))
        {
            ReportUnknown("nl_table not found (kallsyms, netlink_has_listeners' code) or unreadable", NetlinkMembers);
            return;
        }
        var tables = InferNetlinkTableStride(array);
        if (tables is null) { ReportUnknown("needs netlink_table's stride", NetlinkMembers[3..]); return; }
        _report.AddStructural("bucket_table", "size", BucketSize, "bucket_table's first member (checked: a power of two in all 32 tables)");
        _report.AddStructural("bucket_table", "nest", BucketNest, "after size (checked: 0, a flat table, in all 32 tables)");
        int? future = InferFutureTable(tables);
        var links = new List<NetlinkLink>();
        var buckets = BucketCandidates(tables, future is null ? MaxBucketTableHeader : future.Value + _p, links);
        InferBucketsStart(buckets, future);
        int? node = InferNetlinkNode(links);
        InferNetlinkPortId(links, node);
    }

    /// <summary>sizeof(struct netlink_table) and where its rhashtable's tbl pointer sits: the one (stride, offset) at which
    /// all 32 entries hold distinct bucket tables (u32 size a power of two, u32 nest 0).</summary>
    private List<NetlinkBuckets>? InferNetlinkTableStride(ulong array)
    {
        const string Rule = "the stride and offset at which every one of nl_table's 32 entries points to its own bucket table (u32 size a power of two up to MaxSocketHashBuckets, then u32 nest 0)";
        var w = new byte[NetlinkProtocols * MaxNetlinkTableBytes];
        Step(w.Length / 64);
        int got = _r.Read(array, w);
        var shape = new Dictionary<ulong, uint?>();
        uint? SizeOf(ulong tbl)
        {
            if (shape.TryGetValue(tbl, out var known)) return known;
            Step();
            uint? size = IsKernel(tbl) && (tbl & (ulong)(_p - 1)) == 0 && _r.TryU32(tbl + BucketSize, out uint s) && _r.TryU32(tbl + BucketNest, out uint nest)
                && nest == 0 && s != 0 && s <= _limits.MaxSocketHashBuckets && BitOperations.IsPow2(s) ? s : null;
            return shape[tbl] = size;
        }
        var found = new List<(int Stride, int At, List<NetlinkBuckets> Tables)>();
        for (int stride = 4 * _p; stride <= MaxNetlinkTableBytes && stride * NetlinkProtocols <= got; stride += _p)
            for (int at = 0; at + _p <= stride; at += _p)
            {
                var tables = new List<NetlinkBuckets>();
                for (int i = 0; i < NetlinkProtocols; i++)
                {
                    ulong tbl = Word(w, i * stride + at);
                    if (SizeOf(tbl) is not { } size || tables.Any(t => t.Table == tbl)) break;
                    tables.Add(new NetlinkBuckets(i, tbl, size));
                }
                if (tables.Count == NetlinkProtocols) found.Add((stride, at, tables));
            }
        int? s = _report.Add("netlink_table", InferenceReport.SizeOfMember, found.Select(f => f.Stride).Distinct().ToList(), "the stride of: " + Rule);
        int? hash = _report.Add("netlink_table", "hash", found.Select(f => f.At).Distinct().ToList(), Rule);
        if (s is null || hash is null) return null;
        _report.AddStructural("rhashtable", "tbl", 0, "rhashtable's first member (the pointer found by netlink_table.hash's rule)");
        return found.First(f => f.Stride == s && f.At == hash).Tables;
    }

    /// <summary>bucket_table.future_tbl: after hash_rnd come walkers (an empty list_head, pointing to itself, when nobody
    /// walks the table) and rcu (two words); future_tbl is then NULL or another bucket table (a resize in progress).</summary>
    private int? InferFutureTable(List<NetlinkBuckets> tables)
    {
        int walkers = (BucketHashRnd + 4 + _p - 1) & ~(_p - 1), future = walkers + 4 * _p;
        bool fits = tables.All(t =>
        {
            Step();
            return _r.TryPointer(t.Table + (ulong)walkers, out ulong next) && _r.TryPointer(t.Table + (ulong)(walkers + _p), out ulong prev)
                && next == t.Table + (ulong)walkers && prev == next && _r.TryPointer(t.Table + (ulong)future, out ulong f) && (f == 0 || IsKernel(f));
        });
        if (!fits)
        {
            _report.AddUnknown("bucket_table", "future_tbl", $"the walkers list at {Hex(walkers)} is not an empty list_head in every table (someone walks it)");
            return null;
        }
        return _report.AddStructural("bucket_table", "future_tbl", future,
            "after size, nest, hash_rnd, walkers and rcu (checked: walkers is an empty list_head and future_tbl NULL or a kernel pointer in all 32 tables)");
    }

    /// <summary>Where bucket_table.buckets may start: the offsets from which, in every table, each of the size buckets is
    /// NULL or a chain (bit 0 of the head is its lock) ending in that bucket's own nulls marker (the slot's address | 1),
    /// with some chain in all. The marker names the slot, not the array's start: offsets shifted by whole buckets fit too,
    /// and netlink_sock.portid's hash rule picks among them. Collects the chain links (bounded: MaxInferenceSocketBuckets
    /// buckets a table, MaxChainLength a chain, SocketSamples in all).</summary>
    private List<int> BucketCandidates(List<NetlinkBuckets> tables, int from, List<NetlinkLink> links)
    {
        var found = new List<int>();
        for (int at = from; at <= MaxBucketTableHeader; at += _p)
        {
            var chained = new List<NetlinkLink>();
            if (!tables.All(t => ChainsEndInOwnMarker(t, at, chained)) || chained.Count == 0) continue;
            found.Add(at);
            links.AddRange(chained.Where(c => links.Count < SocketSamples && !links.Any(l => l.Link == c.Link)));
        }
        return found;
    }

    private bool ChainsEndInOwnMarker(NetlinkBuckets t, int at, List<NetlinkLink> links)
    {
        long count = Math.Min(t.Size, _limits.MaxInferenceSocketBuckets);
        var b = new byte[count * _p];
        Step(b.Length / 64 + 1);
        if (_r.Read(t.Table + (ulong)at, b) != b.Length) return false;
        for (int i = 0; i < count; i++)
        {
            ulong slot = t.Table + (ulong)at + (ulong)(i * _p);
            ulong link = Word(b, i * _p) & ~1UL;
            for (int hop = 0; link != 0 && link != (slot | 1); hop++)
            {
                if (hop == MaxChainLength || (link & 1) != 0 || !IsKernel(link)) return false;
                Step();
                if (links.Count < SocketSamples) links.Add(new NetlinkLink(link, t, slot));
                if (!_r.TryPointer(link, out link)) return false;
            }
        }
        return true;
    }

    /// <summary>netlink_sock.node: the distance back from every chain link to a sock whose skc_family is AF_NETLINK, whose
    /// skc_state is TCP_CLOSE (as sock_init_data leaves it), NETLINK_UNCONNECTED or NETLINK_CONNECTED, and whose sk_protocol (when known) is its table's index.
    /// The sock is netlink_sock's first member.</summary>
    private int? InferNetlinkNode(List<NetlinkLink> links)
    {
        int? protocolAt = _report.Find(SockStruct, "sk_protocol")?.Offset;
        string rule = "the distance back from every nl_table chain link to a sock with skc_family AF_NETLINK, skc_state TCP_CLOSE (sock_init_data) or NETLINK_UNCONNECTED/NETLINK_CONNECTED (0, 1)"
            + (protocolAt is null ? "" : " and sk_protocol its table's index");
        var windows = new List<(NetlinkLink Link, byte[] Before)>();
        foreach (var l in links)
        {
            var w = new byte[MaxNetlinkNodeOffset];
            Step(w.Length / 64);
            if (_r.Read(l.Link - MaxNetlinkNodeOffset, w) == w.Length) windows.Add((l, w));
        }
        var candidates = new List<int>();
        for (int d = MaxSockCommonBytes; d <= MaxNetlinkNodeOffset && windows.Count > 0; d += _p)
        {
            Step(windows.Count);
            int sk = MaxNetlinkNodeOffset - d;
            if (windows.All(x => BinaryPrimitives.ReadUInt16LittleEndian(x.Before.AsSpan(sk + SockFamily)) == SockAfNetlink && x.Before[sk + SockState] is 0 or 1 or NetlinkClosed
                    && (protocolAt is not { } p || sk + p + 2 > MaxNetlinkNodeOffset || BinaryPrimitives.ReadUInt16LittleEndian(x.Before.AsSpan(sk + p)) == x.Link.Table.Protocol)))
                candidates.Add(d);
        }
        return _report.Add("netlink_sock", "node", candidates, windows.Count > 0 ? rule : "needs readable chain links: " + rule);
    }

    /// <summary>bucket_table.buckets is ____cacheline_aligned_in_smp: among the marker rule's candidates (which fit at
    /// every whole-bucket shift whose tail reads zeroes), the one on a 64-byte boundary (L1_CACHE_BYTES on x86) right after
    /// future_tbl.</summary>
    private void InferBucketsStart(List<int> buckets, int? future)
    {
        const string Rule = "the offset after future_tbl where, in all 32 bucket tables, each of size buckets is NULL or a chain ending in the bucket's own nulls marker (slot address | 1), some chain present";
        var aligned = buckets.Where(o => o % CacheLineBytes == 0 && future is { } f && o > f && o - f <= CacheLineBytes).ToList();
        _report.Add("bucket_table", "buckets", buckets, Rule, aligned.Count == 1 ? _ => aligned[0] : null,
            "buckets[] is cache-line aligned: the multiple of 64 within 64 bytes after future_tbl");
    }

    /// <summary>netlink_sock.portid (<see cref="NetlinkPortIdRule"/>): the sockets chained in nl_table, each read up to
    /// netlink_sock.node, told apart as kernel or user sockets by their struct socket's file.</summary>
    private void InferNetlinkPortId(List<NetlinkLink> links, int? node)
    {
        const string Rule = "the word-aligned u32 after sk_protocol (past the first word boundary after it) and before netlink_sock.node that is 0 in every kernel netlink socket (struct socket without a file), not 0 in every user one, unique per protocol and network namespace, right after the word flags with NETLINK_F_KERNEL_SOCKET (bit 0) set exactly in the kernel sockets";
        int? skSocket = _report.Find(SockStruct, "sk_socket")?.Offset, socketFile = _report.Find("socket", "file")?.Offset, protocolAt = _report.Find(SockStruct, "sk_protocol")?.Offset;
        if (node is not { } n || skSocket is not { } ss || socketFile is not { } sf || protocolAt is not { } pa || _socketNet is null)
        {
            _report.AddUnknown("netlink_sock", "portid", "needs netlink_sock.node, sock.sk_socket, socket.file, sock.sk_protocol and skc_net: " + Rule);
            return;
        }
        int netAt = SockBindNode + 3 * _p;
        var socks = new List<NetlinkPortIdRule.Socket>();
        foreach (var l in links)
        {
            var w = new byte[n];
            Step(n / 64 + 1);
            if (_r.Read(l.Link - (ulong)n, w) != w.Length || ss + _p > n || netAt + _p > n) continue;
            ulong socket = Word(w, ss);
            bool user = socket != 0 && IsKernel(socket) && _r.TryPointer(socket + (ulong)sf, out ulong file) && file != 0;
            socks.Add(new NetlinkPortIdRule.Socket(w, user, l.Table.Protocol, Word(w, netAt)));
        }
        bool evidence = socks.Any(s => s.User) && socks.Any(s => !s.User);
        Step((long)socks.Count * (n / _p + 1));
        var candidates = NetlinkPortIdRule.Candidates(socks, pa, _p);
        _report.Add("netlink_sock", "portid", candidates, evidence ? Rule : "needs kernel and user netlink sockets: " + Rule);
    }
}
