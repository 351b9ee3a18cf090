using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>
/// The socket owner's uid without BTF: sock.sk_uid and the socket inode's inode.i_uid. The kernel keeps the two equal:
/// sock_alloc gives the socket inode the creator's fsuid, sock_init_data and sock_graft (accept) copy the inode's i_uid
/// into sk_uid, and sockfs_setattr (fchown) changes both. The evidence is every socket a process's file table holds: the
/// pair of words must be equal in every one of them, and in some socket non-zero and the fsuid or euid of a process
/// holding it (as when it created the socket). Root's 0 is in most words of struct sock: root-only evidence leaves both
/// members unknown. i_uid is searched among struct inode's first words: 4 in 6.1 (after i_mode and i_opflags), 0x18 in
/// 7.x (i_flags and the two ACL pointers moved before it).
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>One open socket: its sock, its inode (socket_alloc.vfs_inode) and the credentials (real_cred) of every
    /// process whose file table holds it.</summary>
    public readonly record struct SocketHolding(ulong Sock, ulong Inode, IReadOnlyList<ulong> HolderCreds);

    /// <summary>The socket owner rules alone, on their own step budget, given the open sockets and cred's fsuid and euid
    /// offsets (for tests).</summary>
    /// <exception cref="Model.KernelModelException">The search exceeded MaxInferenceSteps.</exception>
    public static InferenceReport InferSocketOwners(Model.GuestReader reader, Memory.IntrospectionLimits limits, IReadOnlyList<SocketHolding> sockets, int? credFsuid, int? credEuid) =>
        RulesAlone(reader, new Kallsyms.KernelSymbols([]), limits, "socket owner", search => search.InferSocketUid([.. sockets], credFsuid, credEuid));

    /// <summary>The sockets behind the open socket files (file.private_data → socket.sk, file.f_inode), with their holders.</summary>
    private void InferSocketOwner(List<ulong> socketFiles, Dictionary<ulong, List<ulong>> holders, TaskEvidence t, PathEvidence p)
    {
        int? pd = _report.Find("file", "private_data")?.Offset, sk = _report.Find("socket", "sk")?.Offset;
        if (pd is not { } pdAt || sk is not { } skAt || p.FileInode is not { } fi || t.RealCred is not { } rc || socketFiles.Count == 0)
        {
            ReportUnknown("needs open socket files, file.private_data, socket.sk, file.f_inode and task_struct.real_cred", ("inode", "i_uid"), (SockStruct, "sk_uid"));
            return;
        }
        var sockets = new List<SocketHolding>();
        foreach (ulong file in socketFiles)
        {
            Step();
            ulong sock = Ptr(Ptr(file + (ulong)pdAt) + (ulong)skAt), inode = Ptr(file + (ulong)fi);
            var creds = holders.TryGetValue(file, out var by) ? by.Select(task => Ptr(task + (ulong)rc)).Where(IsKernel).Distinct().ToList() : [];
            if (IsKernel(sock) && IsKernel(inode)) sockets.Add(new SocketHolding(sock, inode, creds));
        }
        InferSocketUid(sockets, _report.Find("cred", "fsuid")?.Offset, _report.Find("cred", "euid")?.Offset);
    }

    private void InferSocketUid(List<SocketHolding> sockets, int? credFsuid, int? credEuid)
    {
        const string Rule = "the u32 pair (sock.sk_uid, inode.i_uid) equal in every open socket and its inode (sock_init_data and sock_graft copy i_uid into sk_uid, fchown changes both), non-zero in some socket where it is the fsuid or euid of a process holding it";
        if (credFsuid is null && credEuid is null)
        {
            ReportUnknown("needs cred.fsuid or cred.euid", ("inode", "i_uid"), (SockStruct, "sk_uid"));
            return;
        }
        var seen = new List<(byte[] Sock, byte[] Inode, IReadOnlyList<ulong> Creds)>();
        foreach (var s in sockets)
        {
            Step();
            if (StructWindow(s.Sock) is not { } sw || SmallWindow(s.Inode) is not { } iw) continue;
            seen.Add((sw, iw, s.HolderCreds));
        }
        var pairs = new List<(int Sk, int Inode)>();
        for (int y = InodeFirstUid; y + 4 <= Math.Min(MaxInodeUidOffset, _smallBytes); y += 4)
        {
            // Evidence first: some socket whose inode word y is non-zero and a uid of a process holding it.
            Step(seen.Count);
            if (!seen.Any(o => U32(o.Inode, y) is var uid && uid != 0 && o.Creds.Any(c => HoldsUid(c, credFsuid, uid) || HoldsUid(c, credEuid, uid)))) continue;
            for (int x = 0; x + 4 <= _structBytes; x += 4)
            {
                Step(seen.Count);
                if (seen.All(o => U32(o.Sock, x) == U32(o.Inode, y))) pairs.Add((x, y));
            }
        }
        if (pairs.Count == 0)
        {
            ReportUnknown($"no evidence: none of the {seen.Count} readable open socket(s) has a non-zero uid (a uid other than root's) that a process holding it has, in a word equal in its sock and its inode (root's 0 is in most words of struct sock)",
                ("inode", "i_uid"), (SockStruct, "sk_uid"));
            return;
        }
        int? inodeUid = _report.Add("inode", "i_uid", pairs.Select(p => p.Inode).Distinct().ToList(), Rule);
        if (inodeUid is null) _report.AddUnknown(SockStruct, "sk_uid", "needs inode.i_uid: " + Rule);
        else _report.Add(SockStruct, "sk_uid", pairs.Where(p => p.Inode == inodeUid).Select(p => p.Sk).Distinct().ToList(), Rule);
    }

    private bool HoldsUid(ulong cred, int? idAt, uint uid) => idAt is { } at && _r.TryU32(cred + (ulong)at, out uint id) && id == uid;
}
