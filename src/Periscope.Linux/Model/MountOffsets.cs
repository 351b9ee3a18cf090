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
public sealed record MountOffsets
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

    /// <summary>(struct, member) → offset, for the members this kernel has and that are known.</summary>
    public IReadOnlyDictionary<(string Struct, string Member), int> Offsets { get; init; } = new Dictionary<(string, string), int>();

    public static MountOffsets FromBtf(BtfTypes btf) => From((s, m) => btf.FindStruct(s)?.OffsetInside(m));

    /// <summary>The members a report (inferred now, or from the offsets cache) knows, each inside its search window
    /// (<paramref name="taskWindow"/> for task_struct, <paramref name="window"/> for the others).</summary>
    public static MountOffsets FromReport(InferenceReport report, int taskWindow, int window) =>
        From((s, m) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < (s == "task_struct" ? taskWindow : window) ? v : null);

    private static MountOffsets From(Func<string, string, int?> offsetOf)
    {
        var result = new Dictionary<(string, string), int>();
        foreach (var (s, m) in Members)
            if (offsetOf(s, m) is { } v)
                result[(s, m)] = v;
        return new MountOffsets { Offsets = result };
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        foreach (var (s, m) in Members) add(s, m, Offsets.TryGetValue((s, m), out int v) ? v : null);
    }
}
