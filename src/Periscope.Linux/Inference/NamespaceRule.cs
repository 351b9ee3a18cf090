using System.Buffers.Binary;

namespace Periscope.Linux.Inference;

/// <summary>
/// Finds struct ns_common inside a namespace struct without BTF. ns_common declares <c>const struct
/// proc_ns_operations *ops; unsigned int inum;</c> back to back (3.19 to 7.x), and proc_ns_operations starts with
/// <c>const char *name</c>, the name /proc/PID/ns shows ("uts", "net", ...). So ns.inum is where a proc inode number
/// sits right after a pointer to operations named as the namespace. The initial namespaces have fixed inode numbers
/// (include/linux/proc_ns.h), exact evidence; net and mnt got theirs only in 7.0 and were dynamic before.
/// </summary>
public static class NamespaceRule
{
    /// <summary>PROC_DYNAMIC_FIRST: proc_alloc_inum hands out inode numbers from here up.</summary>
    public const uint ProcDynamicFirst = 0xF0000000;
    /// <summary>Lowest of the reserved initial namespace numbers (PROC_*_INIT_INO count down from 0xEFFFFFFF).</summary>
    public const uint ProcInitialLowest = 0xEFFFFFF0;
    /// <summary>How far above PROC_DYNAMIC_FIRST a namespace inode number is believed (an ida of proc inodes; a guest with
    /// a million live proc inodes is not one this view reads).</summary>
    public const uint MaxDynamicInodes = 1 << 24;

    /// <summary>The fixed inode number of the initial namespace whose operations carry <paramref name="opsName"/>
    /// (PROC_IPC_INIT_INO .. PROC_TIME_INIT_INO); null for net and mnt, dynamic before 7.0.</summary>
    public static uint? InitialInode(string opsName) => opsName switch
    {
        "ipc" => 0xEFFFFFFF, "uts" => 0xEFFFFFFE, "user" => 0xEFFFFFFD, "pid" => 0xEFFFFFFC, "cgroup" => 0xEFFFFFFB, "time" => 0xEFFFFFFA,
        _ => null,
    };

    /// <summary>A value proc could have given a namespace as inode number.</summary>
    public static bool IsNamespaceInode(uint value) => value >= ProcInitialLowest && value < ProcDynamicFirst + MaxDynamicInodes;

    /// <summary>
    /// Offsets in <paramref name="window"/> (the start of a namespace struct) where ns.inum can sit: the inode number
    /// (the fixed initial one when <paramref name="initial"/> and the type has one, else any namespace inode number), after
    /// a pointer whose target's name is <paramref name="opsName"/>. <paramref name="opsNameOf"/> reads ops->name (null
    /// when unreadable); it is called only where the inode number already fits, so a window costs few reads.
    /// </summary>
    public static List<int> InumOffsets(ReadOnlySpan<byte> window, int pointerSize, string opsName, bool initial, Func<ulong, string?> opsNameOf)
    {
        var hits = new List<int>();
        uint? exact = initial ? InitialInode(opsName) : null;
        for (int at = pointerSize; at + 4 <= window.Length; at += pointerSize)
        {
            uint value = BinaryPrimitives.ReadUInt32LittleEndian(window.Slice(at, 4));
            if (exact is { } e ? value != e : !IsNamespaceInode(value)) continue;
            ulong ops = pointerSize == 8
                ? BinaryPrimitives.ReadUInt64LittleEndian(window.Slice(at - 8, 8))
                : BinaryPrimitives.ReadUInt32LittleEndian(window.Slice(at - 4, 4));
            if (ops != 0 && opsNameOf(ops) == opsName) hits.Add(at);
        }
        return hits;
    }
}
