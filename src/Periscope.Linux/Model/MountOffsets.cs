using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// What `mounts` reads beyond the path members (<see cref="PathOffsets"/>: mount.mnt, mnt_parent, mnt_mountpoint,
/// vfsmount.mnt_root, super_block.s_dev) and nsproxy.mnt_ns (<see cref="NamespaceOffsets"/>): the namespace's mount list
/// (up to 6.7) or rb-tree (6.8+), struct mount's id, peer group, master and device name, the vfsmount's super block and
/// flags, the super block's flags, type and subtype, the type's name, and task->fs->root. From BTF, or inferred without it
/// (<see cref="OffsetInference"/>, MountRules). Members are absent when the kernel lacks them or they were not inferred.
/// </summary>
public sealed record MountOffsets : MemberOffsetGroup
{
    /// <summary>The members by the kernel's struct and member names, in this order.</summary>
    public static readonly (string Struct, string Member)[] Members =
    [
        ("mnt_namespace", "list"), ("mnt_namespace", "mounts"), ("mount", "mnt_list"), ("mount", "mnt_node"),
        ("mount", "mnt_id"), ("mount", "mnt_group_id"), ("mount", "mnt_master"), ("mount", "mnt_ns"), ("mount", "mnt_devname"),
        ("vfsmount", "mnt_sb"), ("vfsmount", "mnt_flags"),
        ("super_block", "s_flags"), ("super_block", "s_type"), ("super_block", "s_subtype"), ("file_system_type", "name"),
        ("task_struct", "fs"), ("fs_struct", "root"),
    ];

    protected override IReadOnlyList<(string Struct, string Member)> MemberNames => Members;

    public static MountOffsets FromBtf(BtfTypes btf) => new() { Offsets = Collect(Members, (s, m) => btf.FindStruct(s)?.OffsetInside(m)) };

    /// <summary>The members a report (inferred now, or from the offsets cache) knows, each inside its search window
    /// (<paramref name="taskWindow"/> for task_struct, <paramref name="window"/> for the others).</summary>
    public static MountOffsets FromReport(InferenceReport report, int taskWindow, int window) => new()
    {
        Offsets = Collect(Members, (s, m) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < (s == "task_struct" ? taskWindow : window) ? v : null),
    };
}
