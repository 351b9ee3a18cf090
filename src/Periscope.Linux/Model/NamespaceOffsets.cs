using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// What the namespace views read (include/linux/nsproxy.h, include/linux/ns_common.h): task_struct.nsproxy, the nsproxy's
/// namespace pointers, ns_common.inum inside each namespace struct, and cred.user_ns. From BTF, or inferred without it
/// (<see cref="OffsetInference"/>: the initial namespaces' fixed inode numbers and their proc_ns_operations). Members
/// are null when the kernel lacks them (time namespaces before 5.6, kernels without CONFIG_CGROUPS) or they were not inferred.
/// </summary>
public sealed record NamespaceOffsets
{
    /// <summary>The nsproxy members /proc/PID/ns shows, the struct each points to, and the name its proc_ns_operations
    /// carries (the link name /proc prints), in struct nsproxy's declaration order (unchanged since 5.6).</summary>
    public static readonly (NamespaceType Type, string Member, string Struct, string OpsName)[] NsproxyMembers =
    [
        (NamespaceType.Uts, "uts_ns", "uts_namespace", "uts"), (NamespaceType.Ipc, "ipc_ns", "ipc_namespace", "ipc"),
        (NamespaceType.Mnt, "mnt_ns", "mnt_namespace", "mnt"), (NamespaceType.PidForChildren, "pid_ns_for_children", "pid_namespace", "pid"),
        (NamespaceType.Net, "net_ns", "net", "net"), (NamespaceType.Time, "time_ns", "time_namespace", "time"),
        (NamespaceType.TimeForChildren, "time_ns_for_children", "time_namespace", "time"), (NamespaceType.Cgroup, "cgroup_ns", "cgroup_namespace", "cgroup"),
    ];

    /// <summary>The namespace structs whose ns.inum the views read (user_namespace through cred.user_ns).</summary>
    public static readonly string[] NamespaceStructs =
        ["uts_namespace", "ipc_namespace", "mnt_namespace", "pid_namespace", "net", "time_namespace", "cgroup_namespace", "user_namespace"];

    public int? TaskNsproxy { get; init; }
    public int? CredUserNs { get; init; }
    /// <summary>nsproxy member name → offset (only the members this kernel has).</summary>
    public IReadOnlyDictionary<string, int> Nsproxy { get; init; } = new Dictionary<string, int>();
    /// <summary>namespace struct name → offset of its ns.inum.</summary>
    public IReadOnlyDictionary<string, int> Inum { get; init; } = new Dictionary<string, int>();

    public static NamespaceOffsets FromBtf(BtfTypes btf)
    {
        int? O(string structName, string path) => btf.FindStruct(structName)?.OffsetInside(path);
        var nsproxy = new Dictionary<string, int>();
        foreach (var (_, member, _, _) in NsproxyMembers) if (O("nsproxy", member) is { } v) nsproxy[member] = v;
        var inum = new Dictionary<string, int>();
        foreach (var s in NamespaceStructs) if (O(s, "ns.inum") is { } v) inum[s] = v;
        return new NamespaceOffsets { TaskNsproxy = O("task_struct", "nsproxy"), CredUserNs = O("cred", "user_ns"), Nsproxy = nsproxy, Inum = inum };
    }

    /// <summary>The members a report (inferred now, or from the offsets cache) knows, each inside <paramref name="window"/>.</summary>
    public static NamespaceOffsets FromReport(InferenceReport report, int window)
    {
        int? Get(string s, string m) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < window ? v : null;
        var nsproxy = new Dictionary<string, int>();
        foreach (var (_, member, _, _) in NsproxyMembers) if (Get("nsproxy", member) is { } v) nsproxy[member] = v;
        var inum = new Dictionary<string, int>();
        foreach (var s in NamespaceStructs) if (Get(s, "ns.inum") is { } v) inum[s] = v;
        return new NamespaceOffsets { TaskNsproxy = Get("task_struct", "nsproxy"), CredUserNs = Get("cred", "user_ns"), Nsproxy = nsproxy, Inum = inum };
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        add("task_struct", "nsproxy", TaskNsproxy);
        foreach (var (_, member, _, _) in NsproxyMembers) add("nsproxy", member, Nsproxy.TryGetValue(member, out int v) ? v : null);
        foreach (var s in NamespaceStructs) add(s, "ns.inum", Inum.TryGetValue(s, out int v) ? v : null);
        add("cred", "user_ns", CredUserNs);
    }
}
