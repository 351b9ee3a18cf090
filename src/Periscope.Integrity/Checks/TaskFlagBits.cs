using System.Globalization;
using System.Numerics;

namespace Periscope.Integrity.Checks;

/// <summary>
/// The PF_* bits of task_struct.flags (include/linux/sched.h). They are preprocessor macros, so BTF cannot give them;
/// this is the one place they are listed. Each era's set of undefined bits (the header's PF__HOLE__ lines) was copied
/// from the header named beside it; a kernel outside the listed eras gets no undefined-bit verdict (the check says it
/// is incomplete) rather than a guess. The few single bits other code relies on are the same in every listed era and
/// are confirmed on the running kernel by <see cref="InvariantChecks"/> (kthreadd carries PF_KTHREAD, init_task PF_IDLE).
/// Why undefined bits matter: a published rootkit technique marks a process by setting a private task->flags bit and
/// filters /proc listings on it; the kernel itself never sets a bit it does not define.
/// </summary>
public static class TaskFlagBits
{
    /// <summary>PF_IDLE: the per-CPU idle task (pid 0).</summary>
    public const uint Idle = 0x00000002;
    /// <summary>PF_KTHREAD: a kernel thread (the one definition is <see cref="Periscope.Linux.Model.KernelMacros.PF_KTHREAD"/>).</summary>
    public const uint Kthread = Periscope.Linux.Model.KernelMacros.PF_KTHREAD;

    private sealed record Era(int Major, int Minor, uint Undefined, string Source);

    // Each set is the bits undefined in EVERY release of its era this machine's mirror has: stable updates fill holes.
    // PF_NO_NOTIFY_SIGNAL (0x00800000) is a hole in 6.1.176, 6.12.95 and 7.3-rc7 and defined in 6.1.192, 6.12.117 and
    // 7.3.4, so no era calls it undefined.
    private static readonly Era[] Eras =
    [
        new(6, 1, 0x00004000 | 0x00010000 | 0x01000000 | 0x02000000 | 0x20000000 | 0x40000000,
            "Debian linux-headers-6.1.0-50-common (6.1.176) and 6.1.0-57-common (6.1.192), include/linux/sched.h"),
        new(6, 12, 0x01000000 | 0x02000000 | 0x40000000,
            "Debian linux-headers-6.12.95+deb12-common and 6.12.117+deb13-common, include/linux/sched.h"),
        new(7, 2, 0x01000000 | 0x02000000 | 0x40000000,
            "Debian linux-headers-7.2.6+deb13-common and 7.2.13+deb14-common, include/linux/sched.h"),
        new(7, 3, 0x01000000 | 0x02000000 | 0x40000000,
            "Debian linux-headers-7.3-common (7.3-rc7) and 7.3.4+deb13-common, include/linux/sched.h"),
    ];

    /// <summary>The bits Linux <paramref name="major"/>.<paramref name="minor"/> does not define, if that era is listed.</summary>
    public static bool TryGetUndefined(int major, int minor, out uint undefined)
    {
        foreach (var era in Eras)
            if (era.Major == major && era.Minor == minor) { undefined = era.Undefined; return true; }
        undefined = 0;
        return false;
    }

    public static string SupportedVersions => string.Join(", ", Eras.Select(e => $"{e.Major}.{e.Minor}"));

    /// <summary>"0x40000000 (bit 30)", one entry per bit.</summary>
    public static string Describe(uint bits)
    {
        var parts = new List<string>();
        for (uint rest = bits; rest != 0; rest &= rest - 1)
        {
            int bit = BitOperations.TrailingZeroCount(rest);
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"0x{1u << bit:x8} (bit {bit})"));
        }
        return string.Join(", ", parts);
    }

    /// <summary>Major and minor from a release string such as "6.1.0-57-amd64" or "6.12.113+deb12-amd64".</summary>
    public static bool TryParseRelease(string release, out int major, out int minor)
    {
        major = minor = 0;
        var parts = release.Split('.', 3);
        if (parts.Length < 2) return false;
        int minorLength = 0;
        while (minorLength < parts[1].Length && char.IsAsciiDigit(parts[1][minorLength])) minorLength++;
        return int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out major)
            && int.TryParse(parts[1].AsSpan(0, minorLength), NumberStyles.None, CultureInfo.InvariantCulture, out minor);
    }
}
