using System.Buffers.Binary;

namespace Periscope.Linux.Inference;

/// <summary>A task's pid and the bytes of its task_struct read from its start (zero past the first unreadable byte).</summary>
public readonly record struct TaskWindow(int Pid, byte[] Bytes);

/// <summary>task_struct.start_time and start_boottime as inferred: an offset, or null with what was seen instead.</summary>
public sealed record StartTimeDecision(int? StartTime, int? StartBootTime, IReadOnlyList<int> Candidates, string Rule);

/// <summary>Where the timekeeper sits in tk_core and its members' offsets (from the timekeeper's start), as inferred.</summary>
public sealed record TimekeeperDecision(int TimekeeperInCore, int MonoBase, int OffsReal, string Rule);

/// <summary>
/// The rules that find the members `timeline` reads without BTF, from constraints the live data satisfies (pure, so
/// they are tested on synthetic bytes). The kernel declares <c>u64 start_time; u64 start_boottime;</c> next to each
/// other in task_struct (since 5.5; <c>real_start_time</c> before): both are nanoseconds of a clock since boot, set once at
/// fork, so in every task but the idle tasks they are nonzero, not after the current time, grow with the pid (pids are
/// handed out in order: a reused pid breaks the order only here and there) in steps of nanoseconds, not of a counter,
/// and start_boottime &gt;= start_time. The
/// timekeeper's <c>tkr_mono.base_real</c> is by construction <c>tkr_mono.base + offs_real</c> (tk_update_ktime_data), and
/// offs_real is the negation of the <c>wall_to_monotonic</c> timespec64 declared right before it (tk_set_wall_to_mono):
/// two exact equations that random data does not satisfy.
/// </summary>
public static class TimelineRules
{
    /// <summary>Fewer tasks than this give the ordering constraint too little to decide on.</summary>
    public const int MinTasks = 8;
    /// <summary>The share of pid-adjacent task pairs whose start times must not fall (a reused pid breaks a pair or two).</summary>
    public const double MinOrderedShare = 0.9;
    /// <summary>The share of pid-adjacent pairs whose start times must strictly grow: early in boot the clock may tick
    /// in jiffies (tasks forked in one tick share a start time), but a per-task constant (timer_slack_ns) never grows.</summary>
    public const double MinGrowingShare = 0.25;
    /// <summary>Nanoseconds, not a count: the median step between pid-adjacent tasks whose start times differ is at least
    /// a microsecond (a fork takes longer; a tick is milliseconds), while a per-task serial number (7.x's scx.tid) grows
    /// by one or a few.</summary>
    public const ulong MinMedianStepNs = 1_000;
    /// <summary>Bytes of tk_core searched: the seqcount, then tk_read_base tkr_mono and the members up to offs_real (0x90
    /// on x86-64 before 6.13, less since; 0x100 leaves room for both eras and both word sizes).</summary>
    public const int TimekeeperWindow = 0x100;
    /// <summary>struct tk_read_base's base and base_real lie within its first 64 bytes (clock, mask, cycle_last,
    /// mult, shift, xtime_nsec come first).</summary>
    private const int MaxMonoBase = 64;
    private const long NsPerSecond = 1_000_000_000;

    /// <summary>
    /// start_time (and start_boottime when the next u64 also satisfies every constraint and is never below it) among the
    /// <paramref name="tasks"/>' windows; <paramref name="idle"/> is init_task's window (its start_time is 0: it is never
    /// forked). Offsets are tried at the alignment of a u64 in a struct (8 on x86-64, 4 on i386), except where they
    /// overlap a member already known (<paramref name="knownMembers"/>: offset and size; pid and tgid side by side read
    /// as one u64 also grow with the pid and are 0 in init_task). More than one candidate that is not such a pair is an
    /// ambiguity: reported, nothing decided.
    /// </summary>
    public static StartTimeDecision InferStartTime(IReadOnlyList<TaskWindow> tasks, byte[]? idle, int pointerSize, ulong upperBound,
        IReadOnlyList<(int Offset, int Size)>? knownMembers = null)
    {
        var sorted = tasks.Where(t => t.Pid > 0).OrderBy(t => t.Pid).ToList();
        if (sorted.Count < MinTasks)
            return new StartTimeDecision(null, null, [], $"only {sorted.Count} tasks to compare (at least {MinTasks} needed)");
        int length = sorted.Min(t => t.Bytes.Length);
        if (idle is not null) length = Math.Min(length, idle.Length);
        int step = pointerSize == 4 ? 4 : 8;
        var candidates = new List<int>();
        for (int o = 0; o + 8 <= length; o += step)
            if (!(knownMembers ?? []).Any(m => o < m.Offset + m.Size && m.Offset < o + 8) && Fits(sorted, idle, o, upperBound)) candidates.Add(o);
        string rule = $"nonzero in every task, 0 in init_task, not after now, not falling with the pid in >= {MinOrderedShare:P0} "
            + $"and growing in >= {MinGrowingShare:P0} of {sorted.Count - 1} pid-adjacent pairs, by a median step of >= {MinMedianStepNs} ns";
        if (candidates.Count == 1) return new StartTimeDecision(candidates[0], null, candidates, rule);
        if (candidates.Count == 2 && candidates[1] == candidates[0] + 8 && sorted.All(t => U64(t.Bytes, candidates[1]) >= U64(t.Bytes, candidates[0])))
            return new StartTimeDecision(candidates[0], candidates[1], candidates,
                $"{rule}; two adjacent u64s, the second never below the first: start_time then start_boottime (their order in task_struct)");
        return new StartTimeDecision(null, null, candidates, candidates.Count == 0 ? $"no offset is {rule}" : $"ambiguous: {candidates.Count} offsets are {rule}");
    }

    private static bool Fits(List<TaskWindow> sorted, byte[]? idle, int o, ulong upperBound)
    {
        if (idle is not null && U64(idle, o) != 0) return false;
        int ordered = 0;
        ulong previous = 0;
        var steps = new List<ulong>();
        for (int i = 0; i < sorted.Count; i++)
        {
            ulong v = U64(sorted[i].Bytes, o);
            if (v == 0 || v > upperBound) return false;
            if (i > 0 && v >= previous) ordered++;
            if (i > 0 && v > previous) steps.Add(v - previous);
            previous = v;
        }
        if (ordered < MinOrderedShare * (sorted.Count - 1) || steps.Count < MinGrowingShare * (sorted.Count - 1)) return false;
        steps.Sort();
        return steps[steps.Count / 2] >= MinMedianStepNs;
    }

    /// <summary>
    /// The timekeeper in tk_core's bytes (<paramref name="core"/>): it follows the seqcount_raw_spinlock_t, which is the
    /// u32 seqcount padded to a pointer, or with PREEMPT_RT (or lockdep) the u32 and a pointer to its raw spinlock
    /// (__SEQ_LOCK, include/linux/seqlock.h), and starts with tkr_mono.clock, a kernel pointer. tkr_mono.base is the s64
    /// at B and base_real the u64 at B + 8 with base_real − base = offs_real &gt; 0, where offs_real is the s64 at R after B
    /// whose preceding timespec64 (wall_to_monotonic: tv_sec, then a long tv_nsec) equals −offs_real in nanoseconds.
    /// Exactly one (start, B, R) decides.
    /// </summary>
    public static TimekeeperDecision? InferTimekeeper(ReadOnlySpan<byte> core, int pointerSize, Func<ulong, bool> isKernelPointer, out string why)
    {
        var decisions = new List<TimekeeperDecision>();
        var rejected = new List<string>();
        foreach (int start in new[] { pointerSize, 2 * pointerSize })
        {
            // With the lock pointer, the word after the seqcount points at that raw spinlock.
            if (start == 2 * pointerSize && (core.Length < start || !isKernelPointer(WordLayout.ReadWord(core, pointerSize, pointerSize)))) continue;
            if (InferTimekeeperAt(core, start, pointerSize, isKernelPointer, out string whyNot) is { } d) decisions.Add(d);
            else rejected.Add(whyNot);
        }
        if (decisions.Count == 1)
        {
            why = "";
            return decisions[0];
        }
        why = decisions.Count == 0 ? string.Join("; ", rejected)
            : $"ambiguous: a timekeeper fits both after a padded seqcount (tk_core+{decisions[0].TimekeeperInCore}) and after one with a lock pointer (tk_core+{decisions[1].TimekeeperInCore})";
        return null;
    }

    private static TimekeeperDecision? InferTimekeeperAt(ReadOnlySpan<byte> core, int start, int pointerSize, Func<ulong, bool> isKernelPointer, out string why)
    {
        if (core.Length < start + pointerSize || !isKernelPointer(WordLayout.ReadWord(core, start, pointerSize)))
        {
            why = $"tk_core+{start}: no clocksource pointer where the timekeeper's tkr_mono.clock belongs";
            return null;
        }
        // tkr_mono.mask, the u64 after the clock pointer, is the clocksource's CLOCKSOURCE_MASK(bits): 2^bits - 1.
        ulong mask = core.Length >= start + pointerSize + 8 ? BinaryPrimitives.ReadUInt64LittleEndian(core[(start + pointerSize)..]) : 0;
        if (mask < 0xff || (mask & (mask + 1)) != 0)
        {
            why = $"tk_core+{start + pointerSize}: 0x{mask:x} is no clocksource mask (2^bits - 1) where tkr_mono.mask belongs";
            return null;
        }
        int timespec = 8 + pointerSize; // time64_t tv_sec; long tv_nsec (4-byte aligned on i386)
        var found = new List<(int Base, int OffsReal)>();
        for (int b = start + pointerSize; b < start + MaxMonoBase && b + 16 <= core.Length; b += 4)
        {
            long monoBase = I64(core, b);
            long offs = unchecked(I64(core, b + 8) - monoBase);
            if (monoBase <= 0 || offs <= 0) continue;
            for (int r = b + 16 + timespec; r + 8 <= core.Length; r += 4)
            {
                if (I64(core, r) != offs) continue;
                long sec = I64(core, r - timespec);
                long nsec = pointerSize == 8 ? I64(core, r - 8) : BinaryPrimitives.ReadInt32LittleEndian(core[(r - 4)..]);
                if (nsec is >= 0 and < NsPerSecond && sec == -(offs / NsPerSecond) - (offs % NsPerSecond != 0 ? 1 : 0) && unchecked(sec * NsPerSecond + nsec) == -offs)
                    found.Add((b - start, r - start));
            }
        }
        if (found.Count != 1)
        {
            why = found.Count == 0
                ? "no tkr_mono.base, base_real = base + offs_real and wall_to_monotonic = -offs_real in tk_core"
                : $"ambiguous: {found.Count} (tkr_mono.base, offs_real) pairs satisfy base_real = base + offs_real";
            return null;
        }
        why = "";
        return new TimekeeperDecision(start, found[0].Base, found[0].OffsReal,
            $"tkr_mono.clock a kernel pointer at tk_core+{start}{(start > pointerSize ? " (after the seqcount and its lock pointer)" : "")} and mask 2^bits - 1 after it; tkr_mono.base_real = tkr_mono.base + offs_real; wall_to_monotonic = -offs_real");
    }

    private static ulong U64(byte[] w, int o) => BinaryPrimitives.ReadUInt64LittleEndian(w.AsSpan(o, 8));
    private static long I64(ReadOnlySpan<byte> w, int o) => BinaryPrimitives.ReadInt64LittleEndian(w[o..]);
}
