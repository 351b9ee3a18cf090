using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests;

/// <summary>
/// Inference on big guests reads a bounded sample of task_structs: init_task and pid 1 (the pid rule needs both) and an
/// even spread of the rest; a small guest keeps every task. And a guest that gives no module evidence still attaches.
/// </summary>
public class InferenceSamplingTests
{
    private static List<ulong> Tasks(int n) => Enumerable.Range(0, n).Select(i => 0xffff_8880_0000_0000UL + (ulong)i * 0x4000).ToList();

    [Fact]
    public void A_small_guest_keeps_every_task()
    {
        var all = Tasks(58);
        Assert.Equal(all, OffsetInference.Sample(all, 192));
    }

    [Fact]
    public void A_big_guest_is_sampled_to_the_cap_with_init_task_and_pid_1_first_and_the_rest_spread()
    {
        var all = Tasks(5_000);
        var sample = OffsetInference.Sample(all, 192);
        Assert.Equal(192, sample.Count);
        Assert.Equal(all[0], sample[0]);
        Assert.Equal(all[1], sample[1]);
        Assert.Equal(sample.Count, sample.Distinct().Count());
        Assert.True(sample.Zip(sample.Skip(1)).All(p => p.First < p.Second), "list order kept");
        Assert.True(sample[^1] >= all[^30], "the spread reaches the end of the list");
    }

    [Fact]
    public void Pid_is_the_column_followed_by_tgid_not_an_earlier_copy_of_the_pids()
    {
        // Linux 7.3.4: a pid-valued column at 0x3c8 passes the pid rule too; pid 0xb38 is followed by tgid 0xb3c.
        Assert.Equal(0xb38, OffsetInference.PickPid([0x3c8, 0xb38], [0xb3c]));
        // No multi-threaded process: pid and tgid columns are the same two; the lower is pid.
        Assert.Equal(0x970, OffsetInference.PickPid([0x970, 0x974], [0x970, 0x974]));
        // Nothing followed by a tgid: the lowest.
        Assert.Equal(0x100, OffsetInference.PickPid([0x200, 0x100], [0x300]));
    }

    [Fact]
    public void Without_module_evidence_the_offsets_still_build_and_modules_have_no_layout()
    {
        var members = InferenceCacheTests.Debian61.Where(m => m.Struct != "module");
        var report = InferenceCacheTests.Parse(InferenceCacheTests.Entry(members), out string? error);
        Assert.True(report is not null, error);
        var o = OffsetInference.Build(report!, IntrospectionLimits.Default).Module;
        Assert.Null(o.CoreLayout);
        Assert.Null(o.Mem);
    }

    [Fact]
    public void A_found_module_name_without_any_layout_is_named_as_missing()
    {
        var members = InferenceCacheTests.Debian61.Where(m => m.Member != "core_layout");
        var report = InferenceCacheTests.Parse(InferenceCacheTests.Entry(members), out _)!;
        var e = Assert.ThrowsAny<KernelModelException>(() => OffsetInference.Build(report, IntrospectionLimits.Default));
        Assert.Contains("module.core_layout or module.mem", e.Message);
    }
}
