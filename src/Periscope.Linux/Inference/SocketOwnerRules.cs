using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>
/// The socket owner's uid without BTF: sock.sk_uid and the socket inode's inode.i_uid. The kernel keeps the two equal:
/// sock_alloc gives the socket inode the creator's fsuid, sock_init_data and sock_graft (accept) copy the inode's i_uid
/// into sk_uid, and sockfs_setattr (fchown) changes both. The evidence is every socket a process's file table holds: its
/// inode's i_uid must equal sk_uid in every one of them, and some socket must belong to a uid other than root's (root's 0
/// is in most words of struct sock, so root-only evidence leaves the member unknown). That non-zero i_uid is checked
/// against a process holding the socket: its fsuid or euid, as when it created the socket.
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
        const string InodeRule = "kuid_t i_uid follows umode_t i_mode and unsigned short i_opflags; checked: some open socket's inode holds a non-zero uid equal to the fsuid or euid of a process holding it";
        const string SockRule = "the u32 equal to the socket inode's i_uid in every open socket (sock_init_data and sock_graft copy it, fchown changes both), non-zero in some";
        if (credFsuid is null && credEuid is null)
        {
            ReportUnknown("needs cred.fsuid or cred.euid", ("inode", "i_uid"), (SockStruct, "sk_uid"));
            return;
        }
        var owned = new List<(byte[] Window, uint Uid)>();
        bool nonRoot = false;
        foreach (var s in sockets)
        {
            Step(s.HolderCreds.Count + 1);
            if (!_r.TryU32(s.Inode + InodeUid, out uint uid) || StructWindow(s.Sock) is not { } w) continue;
            owned.Add((w, uid));
            nonRoot |= uid != 0 && s.HolderCreds.Any(c => HoldsUid(c, credFsuid, uid) || HoldsUid(c, credEuid, uid));
        }
        if (!nonRoot)
        {
            ReportUnknown($"no evidence: none of the {owned.Count} readable open socket(s) belongs to a uid other than root's that a process holding it has (root's 0 is in most words of struct sock)",
                ("inode", "i_uid"), (SockStruct, "sk_uid"));
            return;
        }
        _report.AddStructural("inode", "i_uid", InodeUid, InodeRule);
        var candidates = new List<int>();
        for (int x = 0; x + 4 <= _structBytes; x += 4)
        {
            Step(owned.Count);
            if (owned.All(o => U32(o.Window, x) == o.Uid)) candidates.Add(x);
        }
        _report.Add(SockStruct, "sk_uid", candidates, SockRule);
    }

    private bool HoldsUid(ulong cred, int? idAt, uint uid) => idAt is { } at && _r.TryU32(cred + (ulong)at, out uint id) && id == uid;
}
