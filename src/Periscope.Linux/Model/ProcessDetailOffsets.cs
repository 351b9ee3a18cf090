using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// What `ps --full` reads beyond the task list: mm_struct's argument and environment bounds, the credential ids and
/// capability sets /proc/PID/status prints, and the cgroup path's members (task->cgroups->dfl_cgrp->kn, kernfs names). From BTF, or inferred without it (<see cref="OffsetInference"/>: declaration
/// orders next to members the search already settled, each checked against the data). Null when not known.
/// </summary>
public sealed record ProcessDetailOffsets : MemberOffsetGroup
{
    /// <summary>The members by the kernel's struct and member names, in this order.</summary>
    public static readonly (string Struct, string Member)[] Members =
    [
        ("mm_struct", "arg_start"), ("mm_struct", "arg_end"), ("mm_struct", "env_start"), ("mm_struct", "env_end"),
        ("cred", "suid"), ("cred", "sgid"), ("cred", "egid"), ("cred", "fsuid"), ("cred", "fsgid"),
        ("cred", "cap_inheritable"), ("cred", "cap_permitted"), ("cred", "cap_effective"), ("cred", "cap_bset"), ("cred", "cap_ambient"),
        ("task_struct", "cgroups"), ("css_set", "dom_cset"), ("css_set", "dfl_cgrp"), ("cgroup", "kn"),
        // parent was renamed __parent in 6.15 (KernelMacros.KernfsParentRenamedSince): a kernel has one of the two, BTF
        // and inference (which names it by the release) alike.
        ("kernfs_node", "priv"), ("kernfs_node", "parent"), ("kernfs_node", "__parent"), ("kernfs_node", "name"),
    ];

    protected override IReadOnlyList<(string Struct, string Member)> MemberNames => Members;

    public static ProcessDetailOffsets FromBtf(BtfTypes btf) =>
        new() { Offsets = Collect(Members, (s, m) => btf.FindStruct(s)?.OffsetInside(m)) };

    /// <summary>The members a report knows, each inside its search window (<paramref name="taskWindow"/> for task_struct's).</summary>
    public static ProcessDetailOffsets FromReport(InferenceReport report, int taskWindow, int structWindow) =>
        new() { Offsets = Collect(Members, (s, m) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < (s == "task_struct" ? taskWindow : structWindow) ? v : null) };
}
