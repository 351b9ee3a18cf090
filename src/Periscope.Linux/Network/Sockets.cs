using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Periscope.Linux.Files;
using Periscope.Linux.Model;

namespace Periscope.Linux.Network;

/// <summary>What kind of socket, as the /proc/net file that lists it.</summary>
public enum SocketKind { Tcp, Tcp6, Udp, Udp6, Unix, Netlink, Other }

/// <summary>Where a socket was found.</summary>
[Flags]
public enum SocketViews : byte
{
    None = 0,
    /// <summary>A process's file table holds it (socket:[INODE] in /proc/PID/fd).</summary>
    FileTable = 1,
    /// <summary>The kernel's own tables hold it: tcp_hashinfo's established or listening hash, udp_table, the unix hash, nl_table.</summary>
    KernelTable = 2,
}

/// <summary>Why a socket is a finding.</summary>
public enum SocketFinding
{
    None,
    /// <summary>A process holds a socket whose state means the kernel must have hashed it, and the kernel's table lacks it: unhashed (hidden from /proc/net and ss).</summary>
    MissingFromKernelTable,
    /// <summary>The kernel's table holds a user socket (it has a file) that no process's file table holds.</summary>
    NoOwner,
}

/// <param name="Local">As /proc/net prints it: "0100007F:1B59" (IPv4, port in hex), 32 hex digits for IPv6; the path for unix.</param>
/// <param name="State">sk_state (TCP_* numbers, also used by UDP and unix) — for unix /proc/net/unix's St is <see cref="SocketState"/>.</param>
/// <param name="Uid">sk_uid; null when its offset is not known (not inferred without BTF).</param>
public sealed record SocketEntry(ulong Sock, SocketKind Kind, int State, string Local, string Remote, ulong Inode, uint? Uid, IReadOnlyList<int> Owners,
    SocketViews Seen, SocketFinding Finding, int Type, int SocketState, bool Listening, int Protocol, uint PortId)
{
    public bool IsFinding => Finding != SocketFinding.None;
}

public sealed record SocketReport(IReadOnlyList<SocketEntry> Sockets, IReadOnlyList<string> Unavailable, IReadOnlyList<string> Gaps)
{
    /// <summary>A gap, or a part that could not be read at all (what it would have shown is unknown, not absent).</summary>
    public bool IsIncomplete => Gaps.Count > 0 || Unavailable.Count > 0;
}

/// <summary>
/// Sockets found two ways: through every process's file table (lsof's socket:[INODE] files → struct socket → sock), and
/// independently through the kernel's own tables — tcp_hashinfo (established hash, listening hash), udp_table, and the
/// initial network namespace's unix hash. Each socket is compared across the two views: a user socket a process holds
/// that the kernel's table should hold and does not was unhashed (what rootkits do to hide a listener from /proc/net and
/// ss); a user socket in a table that no process holds has no owner. Buckets are capped by MaxSocketHashBuckets per
/// table, sockets by MaxSocketsTotal; chains are cycle-checked. Layouts come from BTF, or are inferred without it: the
/// kernel-table view needs sock_common and the tables' members (<see cref="TableLayout"/>), the file-table view the file
/// side's (<see cref="FileLayout"/>); each runs when its members are known, and findings need both.
/// </summary>
public sealed class Sockets
{
    /// <summary>AF_UNIX, AF_INET, AF_NETLINK, AF_INET6 (include/linux/socket.h; ABI numbers).</summary>
    private const int AF_UNIX = 1, AF_INET = 2, AF_NETLINK = 16, AF_INET6 = 10;
    /// <summary>TCP_ESTABLISHED..TCP_CLOSING, TCP_LISTEN, TCP_TIME_WAIT, TCP_CLOSE, TCP_NEW_SYN_RECV (include/net/tcp_states.h).</summary>
    private const int TCP_ESTABLISHED = 1, TCP_TIME_WAIT = 6, TCP_CLOSE = 7, TCP_LISTEN = 10, TCP_NEW_SYN_RECV = 12;
    /// <summary>IPPROTO_TCP and IPPROTO_UDP (include/uapi/linux/in.h).</summary>
    private const int IPPROTO_TCP = 6, IPPROTO_UDP = 17;
    /// <summary>UNIX_HASH_SIZE (net/unix: 256 buckets for bound and 256 for unbound sockets, 512 in all since 5.19's per-netns table;
    /// the global unix_socket_table before had 2 * 256): BTF carries only a pointer, so the count is this macro.</summary>
    internal const int UnixHashBuckets = 512;
    /// <summary>__SO_ACCEPTCON (include/linux/net.h): /proc/net/unix's flag for a listening socket.</summary>
    public const int SoAcceptCon = 1 << 16;
    /// <summary>enum socket_state (include/uapi/linux/net.h), the ABI numbers /proc/net/unix prints as St.</summary>
    private const int SS_UNCONNECTED = 1, SS_CONNECTING = 2, SS_CONNECTED = 3, SS_DISCONNECTING = 4;

    private readonly LinuxKernel _kernel;
    private readonly GuestReader _r;
    private readonly TableLayout? _l;
    private readonly FileLayout? _f;
    private readonly List<string> _unavailable = [];
    private readonly List<string> _gaps = [];
    private long _total;

    public Sockets(LinuxKernel kernel)
    {
        _kernel = kernel;
        _r = kernel.Reader;
        var tables = new MemberOffsets(kernel.Layouts);
        _l = TableLayout.From(tables);
        if (_l is null) _unavailable.Add($"sockets: {MemberOffsets.Lacks(tables)}");
        var files = new MemberOffsets(kernel.Layouts);
        _f = FileLayout.From(files);
        if (_f is null) _unavailable.Add($"sockets in the processes' file tables: {MemberOffsets.Lacks(files)}");
        if (_l is not null && _l.SkUid is null) _unavailable.Add("socket uids: sock.sk_uid is not known");
    }

    public SocketReport Read()
    {
        if (_l is not { } l) return new([], _unavailable, _gaps);
        // View 1: the processes' file tables.
        var owners = new Dictionary<ulong, List<int>>();
        var files = _f is null ? null : new OpenFiles(_kernel);
        foreach (var t in files is null ? [] : _kernel.Tasks)
        {
            if (t.Pid == 0) continue;
            var pf = files!.Read(t);
            if (pf.Gap is not null) _gaps.Add(pf.Gap);
            foreach (var f in pf.Files.Where(f => f.Kind == OpenFileKind.Socket))
            {
                if (!_r.TryPointer(f.File + _f!.FilePrivate, out ulong socket) || !_r.IsKernelPointer(socket)
                    || !_r.TryPointer(socket + _f.SocketSk, out ulong sk) || !_r.IsKernelPointer(sk))
                {
                    _gaps.Add($"pid {t.Pid} fd {f.Fd}: socket file 0x{f.File:x} leads to no readable struct sock");
                    continue;
                }
                if (!owners.TryGetValue(sk, out var list)) owners[sk] = list = [];
                if (!list.Contains(t.Pid)) list.Add(t.Pid);
            }
        }
        // View 2: the kernel's tables.
        var hashed = new HashSet<ulong>();
        var order = new List<ulong>();
        void Add(ulong sk) { if (hashed.Add(sk)) order.Add(sk); }
        ReadTcp(l, Add);
        ReadUdp(l, Add);
        ReadUnix(l, Add);
        ReadNetlink(l, Add);

        var result = new List<SocketEntry>();
        foreach (ulong sk in order.Concat(owners.Keys.Where(k => !hashed.Contains(k))))
        {
            var seen = (hashed.Contains(sk) ? SocketViews.KernelTable : SocketViews.None) | (owners.ContainsKey(sk) ? SocketViews.FileTable : SocketViews.None);
            if (Describe(l, sk, seen, owners.GetValueOrDefault(sk) ?? []) is { } e) result.Add(e);
        }
        return new(result, _unavailable, _gaps.Distinct().ToList());
    }

    private bool Take()
    {
        if (++_total <= _kernel.Limits.MaxSocketsTotal) return true;
        if (_total == _kernel.Limits.MaxSocketsTotal + 1) _gaps.Add($"sockets: stopped at the limit MaxSocketsTotal = {_kernel.Limits.MaxSocketsTotal}");
        return false;
    }

    /// <summary>tcp_hashinfo: ehash[0..ehash_mask] (established, time-wait, new-syn-recv) and lhash2[0..lhash2_mask] (listening).</summary>
    private void ReadTcp(TableLayout l, Action<ulong> add)
    {
        if (!_kernel.DataAddresses.TryGetAddress("tcp_hashinfo", out ulong hashinfo)) { _unavailable.Add("tcp table: tcp_hashinfo not found (kallsyms, code)"); return; }
        if (_r.TryPointer(hashinfo + l.EhashBuckets, out ulong ehash) && _r.TryU32(hashinfo + l.EhashMask, out uint emask))
            WalkBuckets("tcp established hash", ehash, emask, l.EhashBucketSize, l.EhashChain, nulls: true, l.SkNullsNode, add);
        else _gaps.Add($"tcp established hash: tcp_hashinfo at 0x{hashinfo:x} is unreadable");
        if (_r.TryPointer(hashinfo + l.Lhash2, out ulong lhash) && _r.TryU32(hashinfo + l.Lhash2Mask, out uint lmask))
            WalkBuckets("tcp listening hash", lhash, lmask, l.ListenBucketSize, l.ListenHead, l.ListenNulls, l.ListenNulls ? l.SkNullsNode : l.SkNode, add);
        else _gaps.Add($"tcp listening hash: tcp_hashinfo at 0x{hashinfo:x} is unreadable");
    }

    private void ReadUdp(TableLayout l, Action<ulong> add)
    {
        if (!_kernel.DataAddresses.TryGetAddress("udp_table", out ulong table)) { _unavailable.Add("udp table: udp_table not found (kallsyms, code)"); return; }
        if (_r.TryPointer(table + l.UdpHash, out ulong hash) && _r.TryU32(table + l.UdpMask, out uint mask))
            WalkBuckets("udp table", hash, mask, l.UdpSlotSize, l.UdpSlotHead, nulls: false, l.SkNode, add);
        else _gaps.Add($"udp table at 0x{table:x} is unreadable");
    }

    /// <summary>MAX_LINKS (include/uapi/linux/netlink.h): nl_table has one netlink_table per protocol, 32 of them; BTF
    /// carries only the pointer.</summary>
    private const int NetlinkProtocols = 32;

    /// <summary>
    /// nl_table[protocol].hash: each protocol's rhashtable of bound netlink sockets (all network namespaces), chained
    /// through netlink_sock.node; a chain ends at a "nulls" marker (low bit set), a bucket pointer's bit 0 is its lock.
    /// A table being resized has a future_tbl whose sockets are read too. Only user sockets (with a file) are taken:
    /// the kernel's own netlink sockets have no owner to compare with.
    /// </summary>
    private void ReadNetlink(TableLayout l, Action<ulong> add)
    {
        if (_f is not { } f) { _unavailable.Add("netlink table: needs the file-table members (user netlink sockets are told by their file)"); return; }
        var b = new MemberOffsets(_kernel.Layouts);
        int? tableSize = b.StructSize("netlink_table"), hash = b.Offset("netlink_table", "hash"), tbl = b.Offset("rhashtable", "tbl"),
            size = b.Offset("bucket_table", "size"), nest = b.Offset("bucket_table", "nest"), future = b.Offset("bucket_table", "future_tbl"),
            buckets = b.Offset("bucket_table", "buckets"), node = b.Offset("netlink_sock", "node");
        if (tableSize is null || hash is null || tbl is null || size is null || nest is null || future is null || buckets is null || node is null)
        {
            _unavailable.Add($"netlink table: {MemberOffsets.Lacks(b)}");
            return;
        }
        if (!_kernel.DataAddresses.TryGetAddress("nl_table", out ulong nlTableVar)) { _unavailable.Add("netlink table: nl_table not found (kallsyms, code)"); return; }
        if (!_r.TryPointer(nlTableVar, out ulong nlTable) || !_r.IsKernelPointer(nlTable)) { _gaps.Add("netlink table: nl_table is unreadable"); return; }
        for (int protocol = 0; protocol < NetlinkProtocols; protocol++)
        {
            if (!_r.TryPointer(nlTable + (ulong)(protocol * tableSize.Value + hash.Value + tbl.Value), out ulong table)) { _gaps.Add($"netlink table {protocol} is unreadable"); continue; }
            for (int generation = 0; table != 0 && generation < 4; generation++)
            {
                string what = $"netlink table {protocol}";
                if (!_r.IsKernelPointer(table) || !_r.TryU32(table + (ulong)size.Value, out uint count) || !_r.TryU32(table + (ulong)nest.Value, out uint nested))
                {
                    _gaps.Add($"{what}: bucket table 0x{table:x} is unreadable");
                    break;
                }
                if (nested != 0) { _gaps.Add($"{what}: nested bucket table (nest {nested}) not read"); break; }
                if (count == 0 || count > _kernel.Limits.MaxSocketHashBuckets || (count & (count - 1)) != 0)
                {
                    _gaps.Add($"{what}: {count} buckets (a power of two up to MaxSocketHashBuckets = {_kernel.Limits.MaxSocketHashBuckets} expected)");
                    break;
                }
                WalkRhashBuckets(what, table + (ulong)buckets.Value, count, (ulong)node.Value, f, add);
                if (!_r.TryPointer(table + (ulong)future.Value, out table)) break;
            }
        }
    }

    private void WalkRhashBuckets(string what, ulong first, uint count, ulong nodeOffset, FileLayout l, Action<ulong> add)
    {
        const int Chunk = 512;
        int word = _r.PointerSize;
        var buffer = new byte[Chunk * word];
        for (uint start = 0; start < count; start += Chunk)
        {
            int n = (int)Math.Min(Chunk, count - start);
            var bytes = buffer.AsSpan(0, n * word);
            if (_r.Read(first + start * (ulong)word, bytes) != bytes.Length) { _gaps.Add($"{what}: buckets at 0x{first + start * (ulong)word:x} are unreadable"); return; }
            for (int i = 0; i < n; i++)
            {
                ulong head = Word(bytes[(i * word)..]) & ~1UL; // bit 0: the bucket's lock
                var seen = new HashSet<ulong>();
                for (ulong link = head; link != 0 && (link & 1) == 0;)
                {
                    if (!_r.IsKernelPointer(link)) { _gaps.Add($"{what}: chain link 0x{link:x} is not a kernel pointer"); break; }
                    if (!seen.Add(link)) { _gaps.Add($"{what}: chain node 0x{link:x} reached twice (a cycle)"); break; }
                    if (!Take()) return;
                    ulong sk = link - nodeOffset;
                    if (_r.TryPointer(sk + l.SkSocket, out ulong socket) && socket != 0 && _r.IsKernelPointer(socket)
                        && _r.TryPointer(socket + l.SocketFile, out ulong file) && file != 0)
                        add(sk);
                    if (!_r.TryPointer(link, out link)) { _gaps.Add($"{what}: chain node unreadable"); break; }
                }
            }
        }
    }

    private void ReadUnix(TableLayout l, Action<ulong> add)
    {
        if (l.NetUnixBuckets is { } off && _kernel.DataAddresses.TryGetAddress("init_net", out ulong net))
        {
            if (_r.TryPointer(net + off, out ulong buckets) && _r.IsKernelPointer(buckets))
                WalkBuckets("unix hash", buckets, UnixHashBuckets - 1, (ulong)_r.PointerSize, 0, nulls: false, l.SkNode, add);
            else _gaps.Add("unix hash: init_net.unx.table.buckets is unreadable");
        }
        else if (_kernel.Symbols.TryGetAddress("unix_socket_table", out ulong table))
            WalkBuckets("unix hash", table, UnixHashBuckets - 1, (ulong)_r.PointerSize, 0, nulls: false, l.SkNode, add);
        else _unavailable.Add("unix hash: neither init_net.unx.table nor unix_socket_table");
    }

    /// <summary>Buckets 0..mask of a hash table, each an hlist_head (or hlist_nulls_head: the chain ends at an odd "nulls" value).</summary>
    private void WalkBuckets(string what, ulong table, uint mask, ulong bucketStride, ulong headAt, bool nulls, ulong nodeOffset, Action<ulong> add)
    {
        int bucketSize = (int)bucketStride, headOffset = (int)headAt;
        if (bucketSize < _r.PointerSize || bucketSize > 4096 || headOffset < 0 || headOffset > bucketSize - _r.PointerSize) { _gaps.Add($"{what}: bucket layout ({bucketSize} bytes, head at {headOffset}) is implausible"); return; }
        long count = (long)mask + 1;
        if (count > _kernel.Limits.MaxSocketHashBuckets || (count & (count - 1)) != 0 && what != "unix hash")
        {
            _gaps.Add($"{what}: mask 0x{mask:x} gives {count} buckets (a power of two up to MaxSocketHashBuckets = {_kernel.Limits.MaxSocketHashBuckets} expected)");
            count = Math.Min(count, _kernel.Limits.MaxSocketHashBuckets);
        }
        if (!_r.IsKernelPointer(table)) { _gaps.Add($"{what}: table 0x{table:x} is not a kernel pointer"); return; }
        const int Chunk = 256;
        var buffer = new byte[Chunk * bucketSize];
        for (long start = 0; start < count; start += Chunk)
        {
            int n = (int)Math.Min(Chunk, count - start);
            var bytes = buffer.AsSpan(0, n * bucketSize);
            if (_r.Read(table + (ulong)(start * bucketSize), bytes) != bytes.Length) { _gaps.Add($"{what}: buckets at 0x{table + (ulong)(start * bucketSize):x} are unreadable"); return; }
            for (int i = 0; i < n; i++)
            {
                ulong first = Word(bytes[(i * bucketSize + headOffset)..]);
                if (first == 0 || (nulls && (first & 1) != 0)) continue;
                var seen = new HashSet<ulong>();
                for (ulong node = first; node != 0 && !(nulls && (node & 1) != 0);)
                {
                    if (!_r.IsKernelPointer(node)) { _gaps.Add($"{what}: chain link 0x{node:x} is not a kernel pointer"); break; }
                    if (!seen.Add(node)) { _gaps.Add($"{what}: chain node 0x{node:x} reached twice (a cycle)"); break; }
                    if (!Take()) return;
                    add(node - nodeOffset);
                    if (!_r.TryPointer(node, out node)) { _gaps.Add($"{what}: chain node unreadable"); break; }
                }
            }
        }
    }

    private SocketEntry? Describe(TableLayout l, ulong sk, SocketViews seen, IReadOnlyList<int> owners)
    {
        if (!_r.TryU32(sk + l.Family, out uint famWord) || !_r.TryU8(sk + l.State, out byte state))
        {
            _gaps.Add($"sock 0x{sk:x} is unreadable");
            return null;
        }
        int family = (int)(famWord & 0xFFFF);
        // Time-wait and request socks are not full struct socks: only sock_common may be read.
        bool full = !(family is AF_INET or AF_INET6 && state is TCP_TIME_WAIT or TCP_NEW_SYN_RECV);
        int type = 0, protocol = 0;
        ulong inode = 0;
        uint? uid = null;
        bool hasFile = false, hasSocket = false;
        int socketState = 0;
        if (full)
        {
            _r.TryU32(sk + l.SkType, out uint tp);
            type = (int)(tp & 0xFFFF); // u16 sk_type, u16 sk_protocol (since 5.6; bitfields before)
            _r.TryU32(sk + l.SkProtocol, out uint pr);
            protocol = (int)(pr & 0xFFFF);
            if (l.SkUid is { } uidAt && _r.TryU32(sk + uidAt, out uint u)) uid = u;
            if (_f is { } f && _r.TryPointer(sk + f.SkSocket, out ulong socket) && socket != 0 && _r.IsKernelPointer(socket))
            {
                hasSocket = true;
                _r.TryPointer(socket - f.SocketAllocSocket + f.SocketAllocInode + f.InodeIno, out inode); // unsigned long i_ino
                hasFile = _r.TryPointer(socket + f.SocketFile, out ulong file) && file != 0;
                if (_r.TryU32(socket + f.SocketStateOff, out uint ss)) socketState = (int)ss;
            }
        }
        SocketKind kind = family switch
        {
            AF_INET => state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV || protocol == IPPROTO_TCP ? SocketKind.Tcp : protocol == IPPROTO_UDP ? SocketKind.Udp : SocketKind.Other,
            AF_INET6 => state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV || protocol == IPPROTO_TCP ? SocketKind.Tcp6 : protocol == IPPROTO_UDP ? SocketKind.Udp6 : SocketKind.Other,
            AF_UNIX => SocketKind.Unix,
            AF_NETLINK => SocketKind.Netlink,
            _ => SocketKind.Other,
        };
        string local = "", remote = "";
        uint portId = 0;
        _r.TryU32(sk + l.Ports, out uint ports); // skc_dport (be16) then skc_num (host order)
        int lport = (int)(ports >> 16), rport = BinaryPrimitives.ReverseEndianness((ushort)(ports & 0xFFFF));
        if (family == AF_INET)
        {
            _r.TryU32(sk + l.RcvSaddr, out uint la);
            _r.TryU32(sk + l.Daddr, out uint ra);
            local = $"{la:X8}:{lport:X4}";
            remote = $"{ra:X8}:{rport:X4}";
        }
        else if (family == AF_INET6)
        {
            local = $"{In6(sk + l.V6RcvSaddr)}:{lport:X4}";
            remote = $"{In6(sk + l.V6Daddr)}:{rport:X4}";
        }
        else if (family == AF_UNIX && full) local = UnixPath(l, sk);
        else if (family == AF_NETLINK && full && l.NetlinkPortId is { } pid) _r.TryU32(sk + pid, out portId);

        bool listening = family == AF_UNIX ? state == TCP_LISTEN : false;
        // /proc/net/unix's St as unix_seq_show derives it from sk_state and whether a struct socket is attached, not
        // socket->state (which 7.x no longer sets to SS_CONNECTED for unix sockets).
        if (family == AF_UNIX)
            socketState = hasSocket ? (state == TCP_ESTABLISHED ? SS_CONNECTED : SS_UNCONNECTED) : (state == TCP_ESTABLISHED ? SS_CONNECTING : SS_DISCONNECTING);

        var finding = SocketFinding.None;
        // A finding compares the two views: none when one of them could not run.
        if (_f is null) return new SocketEntry(sk, kind, state, local, remote, inode, uid, owners, seen, finding, type, socketState, listening, protocol, portId);
        bool tableKind = kind is SocketKind.Tcp or SocketKind.Tcp6 or SocketKind.Udp or SocketKind.Udp6 or SocketKind.Unix or SocketKind.Netlink;
        if (tableKind && seen == SocketViews.FileTable && ShouldBeHashed(kind, state, kind == SocketKind.Netlink ? (int)Math.Min(portId, int.MaxValue) : lport)) finding = SocketFinding.MissingFromKernelTable;
        else if (tableKind && seen == SocketViews.KernelTable && hasFile) finding = SocketFinding.NoOwner;
        return new SocketEntry(sk, kind, state, local, remote, inode, uid, owners, seen, finding, type, socketState, listening, protocol, portId);
    }

    /// <summary>Whether the kernel keeps a socket in this state in the tables read: a TCP socket from listen() or connect()
    /// until it closes, a UDP socket once bound to a port, every unix socket (bound or not).</summary>
    private static bool ShouldBeHashed(SocketKind kind, int state, int localPort) => kind switch
    {
        SocketKind.Tcp or SocketKind.Tcp6 => state != TCP_CLOSE,
        SocketKind.Udp or SocketKind.Udp6 => localPort != 0,
        SocketKind.Unix => true,
        // A netlink socket is in nl_table once bound (bind, connect or its first send autobinds): port id non-zero.
        SocketKind.Netlink => localPort != 0,
        _ => false,
    };

    /// <summary>A pointer in a buffer read from the guest: the guest's word (4 bytes on i386), zero-extended.</summary>
    private ulong Word(ReadOnlySpan<byte> b) =>
        _r.PointerSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

    private string In6(ulong va)
    {
        Span<byte> b = stackalloc byte[16];
        if (_r.Read(va, b) != 16) return new string('?', 32);
        var s = new StringBuilder(32);
        for (int i = 0; i < 16; i += 4) s.Append(BinaryPrimitives.ReadUInt32LittleEndian(b[i..]).ToString("X8", CultureInfo.InvariantCulture));
        return s.ToString();
    }

    /// <summary>unix_sock->addr->name (a sockaddr_un of addr->len bytes): the path, or '@' and the name for the abstract namespace.</summary>
    private string UnixPath(TableLayout l, ulong sk)
    {
        if (l.UnixAddr is not { } addrOff || !_r.TryPointer(sk + addrOff, out ulong addr) || addr == 0 || !_r.IsKernelPointer(addr)) return "";
        if (!_r.TryI32(addr + l.UnixAddrLen, out int len) || len <= 2 || len > 110) return "";
        Span<byte> b = stackalloc byte[110];
        var name = b[..(len - 2)];
        if (_r.Read(addr + l.UnixAddrName + 2, name) != name.Length) return "";
        if (name[0] == 0) return "@" + Encoding.UTF8.GetString(name[1..]).Replace('\0', '@');
        int nul = name.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? name : name[..nul]);
    }

    /// <summary>The kernel-table view: sock_common, struct sock's type/protocol/uid and the tables' members.</summary>
    private sealed record TableLayout
    {
        public ulong Family, State, Ports, RcvSaddr, Daddr, V6RcvSaddr, V6Daddr, SkNode, SkNullsNode, SkType, SkProtocol;
        public ulong? SkUid;
        public ulong EhashBuckets, EhashMask, EhashBucketSize, EhashChain, Lhash2, Lhash2Mask, ListenBucketSize, ListenHead;
        public bool ListenNulls;
        public ulong UdpHash, UdpMask, UdpSlotSize, UdpSlotHead;
        public ulong? NetUnixBuckets, UnixAddr, NetlinkPortId;
        public ulong UnixAddrLen, UnixAddrName;

        public static TableLayout? From(MemberOffsets b)
        {
            bool listenNulls = b.Has("inet_listen_hashbucket", "nulls_head");
            int?[] o =
            [
                b.Offset("sock", "__sk_common.skc_family"), b.Offset("sock", "__sk_common.skc_state"), b.Offset("sock", "__sk_common.skc_portpair"),
                b.Offset("sock", "__sk_common.skc_rcv_saddr"), b.Offset("sock", "__sk_common.skc_daddr"),
                b.Offset("sock", "__sk_common.skc_v6_rcv_saddr"), b.Offset("sock", "__sk_common.skc_v6_daddr"),
                b.Offset("sock", "__sk_common.skc_node"), b.Offset("sock", "__sk_common.skc_nulls_node"),
                b.Offset("sock", "sk_type"), b.Offset("sock", "sk_protocol"),
                b.Offset("inet_hashinfo", "ehash"), b.Offset("inet_hashinfo", "ehash_mask"), b.StructSize("inet_ehash_bucket"), b.Offset("inet_ehash_bucket", "chain"),
                b.Offset("inet_hashinfo", "lhash2"), b.Offset("inet_hashinfo", "lhash2_mask"), b.StructSize("inet_listen_hashbucket"),
                b.Offset("inet_listen_hashbucket", listenNulls ? "nulls_head" : "head"),
                b.Offset("udp_table", "hash"), b.Offset("udp_table", "mask"), b.StructSize("udp_hslot"), b.Offset("udp_hslot", "head"),
                b.Offset("unix_address", "len"), b.Offset("unix_address", "name"),
            ];
            if (o.Any(x => x is null)) return null;
            var v = o.Select(x => (ulong)x!.Value).ToArray();
            return new TableLayout
            {
                Family = v[0], State = v[1], Ports = v[2], RcvSaddr = v[3], Daddr = v[4], V6RcvSaddr = v[5], V6Daddr = v[6], SkNode = v[7], SkNullsNode = v[8],
                SkType = v[9], SkProtocol = v[10],
                EhashBuckets = v[11], EhashMask = v[12], EhashBucketSize = v[13], EhashChain = v[14], Lhash2 = v[15], Lhash2Mask = v[16], ListenBucketSize = v[17], ListenHead = v[18],
                ListenNulls = listenNulls, UdpHash = v[19], UdpMask = v[20], UdpSlotSize = v[21], UdpSlotHead = v[22], UnixAddrLen = v[23], UnixAddrName = v[24],
                SkUid = (ulong?)b.Optional("sock", "sk_uid"),
                NetUnixBuckets = (ulong?)b.Optional("net", "unx.table.buckets"),
                UnixAddr = (ulong?)b.Optional("unix_sock", "addr"),
                NetlinkPortId = (ulong?)b.Optional("netlink_sock", "portid"),
            };
        }
    }

    /// <summary>The file-table view: socket file → struct socket → sock, and back to the socket inode's number.</summary>
    private sealed record FileLayout(ulong FilePrivate, ulong SocketSk, ulong SocketFile, ulong SocketStateOff, ulong SocketAllocSocket,
        ulong SocketAllocInode, ulong InodeIno, ulong SkSocket)
    {
        public static FileLayout? From(MemberOffsets b)
        {
            int?[] o =
            [
                b.Offset("file", "private_data"), b.Offset("socket", "sk"), b.Offset("socket", "file"), b.Offset("socket", "state"),
                b.Offset("socket_alloc", "socket"), b.Offset("socket_alloc", "vfs_inode"), b.Offset("inode", "i_ino"), b.Offset("sock", "sk_socket"),
            ];
            if (o.Any(x => x is null)) return null;
            var v = o.Select(x => (ulong)x!.Value).ToArray();
            return new FileLayout(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        }
    }
}
