using System.Buffers.Binary;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;

namespace Periscope.UnitTests.Views;

/// <summary>timeline's rules without BTF on synthetic task_structs and timekeepers, for both word sizes, with the data
/// that must not decide: constants, counters, garbage, ties and a timekeeper whose equations do not hold.</summary>
public class TimelineRulesTests
{
    private const int TaskBytes = 0x200, StartTime = 0x120;
    private const ulong Now = 600_000_000_000;

    /// <summary>Tasks 1..count: start_time at <see cref="StartTime"/> (jiffy-like ties included), start_boottime after it,
    /// a constant (timer_slack_ns), a counter not ordered by pid, and a kernel pointer.</summary>
    private static (List<TaskWindow> Tasks, byte[] Idle) Tasks(int count, int startTime = StartTime, bool withBootTime = true)
    {
        var tasks = new List<TaskWindow>();
        var rng = new Random(7);
        for (int pid = 1; pid <= count; pid++)
        {
            var b = new byte[TaskBytes];
            ulong start = 1_000_000_000UL + (ulong)(pid / 2) * 4_000_000; // two tasks per tick
            Put(b, startTime, start);
            if (withBootTime) Put(b, startTime + 8, start);
            Put(b, 0x40, 50_000); // timer_slack_ns: the same in every task
            Put(b, 0x48, (ulong)rng.Next(1, 100_000)); // nvcsw: not ordered
            Put(b, 0x50, 0xffff_8880_0000_0000UL + (ulong)pid * 0x2000); // a pointer that grows with the pid but is no time
            tasks.Add(new TaskWindow(pid, b));
        }
        var idle = new byte[TaskBytes];
        Put(idle, 0x40, 50_000);
        return (tasks, idle);
    }

    private static void Put(byte[] b, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(offset), value);

    [Theory]
    [InlineData(8)]
    [InlineData(4)]
    public void Start_time_and_start_boottime_are_the_adjacent_pair(int pointerSize)
    {
        int at = pointerSize == 4 ? 0x124 : StartTime; // a u64 is 4-aligned in an i386 struct
        var (tasks, idle) = Tasks(40, at);
        var d = TimelineRules.InferStartTime(tasks, idle, pointerSize, Now);
        Assert.Equal(at, d.StartTime);
        Assert.Equal(at + 8, d.StartBootTime);
    }

    [Fact]
    public void A_reused_pid_does_not_break_the_rule()
    {
        var (tasks, idle) = Tasks(40);
        Put(tasks[4].Bytes, StartTime, 500_000_000_000); // pid 5 reused late
        Put(tasks[4].Bytes, StartTime + 8, 500_000_000_000);
        Assert.Equal(StartTime, TimelineRules.InferStartTime(tasks, idle, 8, Now).StartTime);
    }

    [Fact]
    public void A_start_time_after_now_or_zero_rejects_the_offset()
    {
        var (tasks, idle) = Tasks(40, withBootTime: false);
        Put(tasks[10].Bytes, StartTime, Now + 1);
        var d = TimelineRules.InferStartTime(tasks, idle, 8, Now);
        Assert.Null(d.StartTime);
        Assert.Empty(d.Candidates);
        (tasks, idle) = Tasks(40, withBootTime: false);
        Put(tasks[3].Bytes, StartTime, 0);
        Assert.Null(TimelineRules.InferStartTime(tasks, idle, 8, Now).StartTime);
    }

    [Fact]
    public void Pid_and_tgid_read_as_one_u64_are_no_start_time_once_known()
    {
        var (tasks, idle) = Tasks(40);
        foreach (var t in tasks) { BinaryPrimitives.WriteInt32LittleEndian(t.Bytes.AsSpan(0x98), t.Pid); BinaryPrimitives.WriteInt32LittleEndian(t.Bytes.AsSpan(0x9c), t.Pid); }
        Assert.Null(TimelineRules.InferStartTime(tasks, idle, 8, ulong.MaxValue >> 1).StartTime);
        var d = TimelineRules.InferStartTime(tasks, idle, 8, ulong.MaxValue >> 1, [(0x98, 4), (0x9c, 4)]);
        Assert.Equal((StartTime, StartTime + 8), (d.StartTime!.Value, d.StartBootTime!.Value));
    }

    [Fact]
    public void A_serial_number_that_grows_with_the_pid_is_no_time()
    {
        var (tasks, idle) = Tasks(40);
        foreach (var t in tasks) Put(t.Bytes, 0x180, (ulong)t.Pid * 3); // 7.x's scx.tid: one more per fork
        var d = TimelineRules.InferStartTime(tasks, idle, 8, Now);
        Assert.Equal([StartTime, StartTime + 8], d.Candidates);
        Assert.Equal(StartTime, d.StartTime);
    }

    [Fact]
    public void Nonzero_in_init_task_rejects_the_offset()
    {
        var (tasks, idle) = Tasks(40, withBootTime: false);
        Put(idle, StartTime, 1);
        Assert.Null(TimelineRules.InferStartTime(tasks, idle, 8, Now).StartTime);
    }

    [Fact]
    public void Two_unrelated_candidates_are_an_ambiguity_not_a_guess()
    {
        var (tasks, idle) = Tasks(40, withBootTime: false);
        foreach (var t in tasks) Put(t.Bytes, 0x180, 2_000_000_000UL + (ulong)t.Pid * 1_000_000);
        var d = TimelineRules.InferStartTime(tasks, idle, 8, Now);
        Assert.Null(d.StartTime);
        Assert.Equal([StartTime, 0x180], d.Candidates);
        Assert.Contains("ambiguous", d.Rule, StringComparison.Ordinal);
    }

    [Fact]
    public void Too_few_tasks_decide_nothing_and_short_windows_do_not_throw()
    {
        var (tasks, idle) = Tasks(TimelineRules.MinTasks - 1);
        Assert.Null(TimelineRules.InferStartTime(tasks, idle, 8, Now).StartTime);
        var tiny = Enumerable.Range(1, 20).Select(p => new TaskWindow(p, new byte[3])).ToList();
        Assert.Null(TimelineRules.InferStartTime(tiny, new byte[0], 8, Now).StartTime);
        Assert.Null(TimelineRules.InferStartTime([], null, 4, Now).StartTime);
    }

    private const long OffsReal = 1_796_000_000_123_456_789, MonoBase = 42_000_000_500;

    /// <summary>tk_core: seq, then the timekeeper (clock, mask, …, tkr_mono.base, base_real, …, wall_to_monotonic, offs_real).</summary>
    /// <param name="seqLock">seqcount_raw_spinlock_t with its lock pointer (PREEMPT_RT or lockdep): the timekeeper one word later.</param>
    private static byte[] TkCore(int p, int monoBase, int offsReal, bool consistent = true, bool seqLock = false)
    {
        var b = new byte[TimelineRules.TimekeeperWindow];
        BinaryPrimitives.WriteUInt32LittleEndian(b, 1234); // seq
        int tk = seqLock ? 2 * p : p;
        if (seqLock && p == 8) Put(b, p, 0xffff_ffff_8300_0250); else if (seqLock) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(p), 0xc300_0250);
        if (p == 8) Put(b, tk, 0xffff_ffff_8200_1000); else BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(tk), 0xc200_1000);
        Put(b, tk + p, ulong.MaxValue); // CLOCKSOURCE_MASK(64)
        Put(b, tk + p + 8, 0x1234_5678_9abc); // cycle_last
        Put(b, tk + monoBase, MonoBase);
        Put(b, tk + monoBase + 8, (ulong)(MonoBase + OffsReal + (consistent ? 0 : 1)));
        long wtm = -OffsReal;
        long sec = Math.DivRem(wtm, 1_000_000_000, out long nsec);
        if (nsec < 0) { sec--; nsec += 1_000_000_000; }
        int ts = tk + offsReal - (8 + p);
        Put(b, ts, (ulong)sec);
        if (p == 8) Put(b, ts + 8, (ulong)nsec); else BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(ts + 8), (int)nsec);
        Put(b, tk + offsReal, (ulong)OffsReal);
        Put(b, tk + offsReal + 8, 0); // offs_boot
        Put(b, tk + offsReal + 16, (ulong)OffsReal); // offs_tai: equal to offs_real while the TAI offset is 0
        return b;
    }

    private static bool Kernel8(ulong va) => va >= 0xffff_8000_0000_0000;
    private static bool Kernel4(ulong va) => va is >= 0xc000_0000 and <= 0xffff_ffff;

    [Theory]
    [InlineData(8, 40, 0x90)] // before 6.13: tkr_mono, tkr_raw, xtime_sec, ktime_sec, wall_to_monotonic, offs_real
    [InlineData(8, 40, 0x58)] // 6.13+: tkr_mono, xtime_sec, ktime_sec, wall_to_monotonic, offs_real
    [InlineData(4, 36, 0x80)] // i386: u64s 4-aligned, timespec64 of 12 bytes
    [InlineData(8, 40, 0x58, true)] // PREEMPT_RT 7.3: the seqcount's lock pointer before the timekeeper
    [InlineData(8, 40, 0x90, true)] // PREEMPT_RT 6.1
    [InlineData(4, 36, 0x80, true)]
    public void Timekeeper_offsets_come_from_its_two_equations(int p, int monoBase, int offsReal, bool seqLock = false)
    {
        var d = TimelineRules.InferTimekeeper(TkCore(p, monoBase, offsReal, seqLock: seqLock), p, p == 8 ? Kernel8 : Kernel4, out string why);
        Assert.True(d is not null, why);
        Assert.Equal((seqLock ? 2 * p : p, monoBase, offsReal), (d.TimekeeperInCore, d.MonoBase, d.OffsReal));
    }

    [Fact]
    public void A_timekeeper_whose_equations_fail_or_whose_shape_is_wrong_is_refused()
    {
        Assert.Null(TimelineRules.InferTimekeeper(TkCore(8, 40, 0x90, consistent: false), 8, Kernel8, out _));
        var noMask = TkCore(8, 40, 0x90);
        Put(noMask, 16, 0x1234);
        Assert.Null(TimelineRules.InferTimekeeper(noMask, 8, Kernel8, out string why));
        Assert.Contains("mask", why, StringComparison.Ordinal);
        // Read one word later (the clock pointer's address taken for tk_core): the mask is then cycle_last.
        Assert.Null(TimelineRules.InferTimekeeper(TkCore(8, 40, 0x90).AsSpan(8), 8, Kernel8, out _));
        Assert.Null(TimelineRules.InferTimekeeper(new byte[TimelineRules.TimekeeperWindow], 8, Kernel8, out _));
        Assert.Null(TimelineRules.InferTimekeeper(new byte[5], 8, Kernel8, out _));
        var random = new byte[TimelineRules.TimekeeperWindow];
        new Random(3).NextBytes(random);
        Assert.Null(TimelineRules.InferTimekeeper(random, 8, _ => true, out _));
    }

    [Fact]
    public void Ktime_get_loads_are_found_in_64_and_32_bit_code()
    {
        // mov eax, [rip+0x100]; mov rdx, [rip+0x130]; ret  (at 0xffffffff81000000)
        byte[] code64 = [0x8b, 0x05, 0x00, 0x01, 0x00, 0x00, 0x48, 0x8b, 0x15, 0x30, 0x01, 0x00, 0x00, 0xc3, 0x90];
        ulong fn = 0xffff_ffff_8100_0000;
        Assert.Equal([fn + 6 + 0x100, fn + 13 + 0x130], TimekeeperCode.LoadedAddresses(code64, fn, 8));
        // mov eax, [0xc1a00000]; mov edx, [0xc1a00028]; ret
        byte[] code32 = [0xa1, 0x00, 0x00, 0xa0, 0xc1, 0x8b, 0x15, 0x28, 0x00, 0xa0, 0xc1, 0xc3];
        Assert.Equal([0xc1a0_0000UL, 0xc1a0_0028UL], TimekeeperCode.LoadedAddresses(code32, 0xc100_0000, 4));
        Assert.Empty(TimekeeperCode.LoadedAddresses([0xff, 0xff, 0xff], fn, 8));
    }
}
