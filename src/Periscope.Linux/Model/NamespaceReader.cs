namespace Periscope.Linux.Model;

/// <summary>
/// A task's namespace links as /proc/PID/ns shows them, read through <see cref="MemberOffsets"/> (BTF, or the offsets
/// inferred without it) and the guest reader: one code path for both. A namespace whose pointer or ns.inum cannot be
/// read is left out of the task's links (the view then lacks that one link, never invents it).
/// </summary>
public sealed class NamespaceReader
{
    private readonly GuestReader _r;
    private readonly int? _nsproxy, _realCred, _credUserNs, _threadPid, _pidNumbers, _upidNs;
    private readonly int _pidLevel, _upidSize;
    private readonly List<(NamespaceType Type, int Member, int Inum)> _slots = [];
    private readonly int? _pidInum, _userInum;

    public NamespaceReader(LinuxKernel kernel)
    {
        _r = kernel.Reader;
        var b = new MemberOffsets(kernel.Layouts);
        _nsproxy = b.Offset("task_struct", "nsproxy");
        _realCred = b.Offset("task_struct", "real_cred");
        _credUserNs = b.Offset("cred", "user_ns");
        _userInum = b.Offset("user_namespace", "ns.inum");
        foreach (var (type, member, structName, _) in NamespaceOffsets.NsproxyMembers)
        {
            // Members only some kernels have (time_ns before 5.6; cgroup_ns without CONFIG_CGROUPS) are skipped, not missing.
            if (b.Optional("nsproxy", member) is not { } at) continue;
            if (b.Offset(structName, "ns.inum") is { } inum) _slots.Add((type, at, inum));
        }
        _threadPid = b.Optional("task_struct", "thread_pid");
        if (_threadPid is not null)
        {
            _pidNumbers = b.Offset("pid", "numbers");
            _upidNs = b.Offset("upid", "ns");
            _pidInum = b.Offset("pid_namespace", "ns.inum");
            var abi = PidAbi.For(_r.PointerSize);
            // struct pid { refcount_t count; unsigned int level; ... } and struct upid { int nr; struct pid_namespace *ns; }.
            _pidLevel = b.Optional("pid", "level") ?? PidAbi.PidLevel;
            _upidSize = kernel.Layouts.TryStructSize("upid", out int size) ? size : abi.UpidSize;
        }
        Unavailable = b.Missing.Count > 0 ? $"namespaces: {MemberOffsets.Lacks(b)}" : null;
    }

    /// <summary>Why some namespace links cannot be read on this kernel; null when all can.</summary>
    public string? Unavailable { get; }

    /// <summary>The task's namespace links in /proc/PID/ns order (only pid and user for an exited task, which has no nsproxy).</summary>
    public IReadOnlyList<NamespaceLink> Read(ulong task)
    {
        var links = new List<NamespaceLink>();
        if (_nsproxy is { } nsproxyAt && _r.TryPointer(task + (ulong)nsproxyAt, out ulong nsproxy) && nsproxy != 0)
            foreach (var (type, member, inum) in _slots)
                if (Link(type, nsproxy + (ulong)member, inum) is { } link) links.Add(link);
        // pid: task_active_pid_ns() = ns of thread_pid->numbers[thread_pid->level].
        if (_threadPid is { } tp && _pidNumbers is { } numbers && _upidNs is { } upidNs && _pidInum is { } pidInum
            && _r.TryPointer(task + (ulong)tp, out ulong pid) && pid != 0 && _r.TryU32(pid + (ulong)_pidLevel, out uint level)
            && level < 64 && Link(NamespaceType.Pid, pid + (ulong)numbers + level * (ulong)_upidSize + (ulong)upidNs, pidInum) is { } pidLink)
            links.Add(pidLink);
        if (_realCred is { } rc && _credUserNs is { } userNs && _userInum is { } userInum
            && _r.TryPointer(task + (ulong)rc, out ulong cred) && cred != 0 && Link(NamespaceType.User, cred + (ulong)userNs, userInum) is { } userLink)
            links.Add(userLink);
        links.Sort((a, b) => a.Type.CompareTo(b.Type));
        return links;
    }

    /// <summary>The namespace the pointer at <paramref name="pointerAt"/> names, with its inode number; null when NULL or unreadable.</summary>
    private NamespaceLink? Link(NamespaceType type, ulong pointerAt, int inumOffset) =>
        _r.TryPointer(pointerAt, out ulong ns) && ns != 0 && _r.TryU32(ns + (ulong)inumOffset, out uint inode)
            ? new NamespaceLink(type, inode, ns) : null;
}
