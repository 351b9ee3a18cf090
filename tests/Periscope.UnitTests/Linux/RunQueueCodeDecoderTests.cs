using Periscope.Linux.Model;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// struct rq members, runqueues and __per_cpu_offset read from the scheduler's code, from text vectors: the functions as
/// Debian's 6.1.0-57 (x86-64), 7.3.4 (x86-64) and 6.1 686 (i386) kernels hold them in memory; the expected values are
/// those kernels' BTF (x86-64) and the displacements the functions use. Then code that does not fit, which must give no
/// answer rather than a guess.
/// </summary>
public sealed class RunQueueCodeDecoderTests
{
    private static readonly (string Name, ulong At, string Hex)[] Debian61 =
    [
        ("idle_task", 0xffffffffa60e3ad0UL, "0f1f4400004863ff48c7c0401c0300488b14fd60cb41a7488b840268090000c3cccccccc66662e0f"),
        ("idle_cpu", 0xffffffffa60e3a20UL, "0f1f4400004863ff48c7c0401c030031d2480304fd60cb41a7488b886809000048398860090000740789d0c3cccccccc"),
        ("update_rq_clock", 0xffffffffa60dd750UL, "0f1f4400008b8788090000a8020f85b0000000534889fb669083c8048bbb700a0000898388090000e8538e02004889c2482b9390090000785348898390090000"),
        ("print_rt_stats", 0xffffffffa60fbff0UL, "0f1f440000554889fd5389f3e8af7c03004863c348c7c2401c0300480314c560cb41a74881c240020000740a89de4889efe88add00005b5de943b603000f1f00"),
        ("print_dl_stats", 0xffffffffa61020f0UL, "0f1f4400004863c648c7c2401c0300480314c560cb41a74881c2e0080000e92d7e0000cccccccccccccccccccccccccc4863ff48c7c0b0980100488b14fd60cb41a7488b0402c3cccccccc0f1f440000"),
        ("__pick_first_entity", 0xffffffffa60f0890UL, "0f1f440000488b4738488d50f04885c0480f45c2c3cccccc"),
        ("__pick_last_entity", 0xffffffffa60f08b0UL, "0f1f4400004883c730e8829b8f00488d50f04885c0480f45"),
        ("sched_clock_cpu", 0xffffffffa61065d0UL, ""),
    ];

    private static readonly (string Name, ulong At, string Hex)[] Debian73 =
    [
        ("idle_task", 0xffffffffb600eb40UL, "0f1f40d60f1f4400005548c7c58077b6b8534863df4881fb002000007314488b04dde0b05db75b488b4405205dc3"),
        ("idle_cpu", 0xffffffffb600eac0UL, "0f1f40d60f1f440000554863ef5348c7c38077b6b84881fd00200000733248031cede0b05db731c0488b532048395318"),
        ("update_rq_clock", 0xffffffffb5fba270UL, "0f1f40d60f1f4400008b87a00f0000a8020f85e10000004155415455534889fb0f1f44000083c8048bbb281000008983a00f0000e8b72406000f1f4400004889"),
        ("print_rt_stats", 0xffffffffb5fea8d0UL, "0f1f40d60f1f44000041544c63e6554889fd534c89e34883ec08e8f11a070048c7c28077b6b84981fc0020000073284a0314e5e0b05db74881c200030000740a"),
        ("print_dl_stats", 0xffffffffb5ff3a40UL, "0f1f40d60f1f44000041544c63e648c7c28077b6b8554889fd534c89e34883ec084981fc0020000073214a0314e5e0b05db74883c40889de4889ef5b4881c2880900005d415ce9e5bf02004c89e648c7"),
        ("__pick_first_entity", 0xffffffffb5fd1670UL, "0f1f40d60f1f440000488b4748488d50e04885c0480f45c2"),
        ("__pick_last_entity", 0xffffffffb5fd16a0UL, "0f1f40d60f1f440000488b47404885c0741e66662e0f1f84"),
        ("sched_clock_cpu", 0xffffffffb601c760UL, ""),
        ("fair_server_init", 0xffffffffb5fd8690UL, "0f1f40d60f1f44000055488dafe00d0000534889fb4889efe8d3b001004889de4889ef5b48c7c210"),
    ];

    private static readonly (string Name, ulong At, string Hex)[] Debian686 =
    [
        ("idle_task", 0xcd0a93d0UL, "3e8d7426005589c2b80086e6cd8b149580f5bbcd89e58b8402d00500005dc3903e8d7426005589e5"),
        ("idle_cpu", 0xcd0a9320UL, "3e8d7426005589c2b80086e6cd03049580f5bbcd31d289e58b88d00500003988cc050000740a89d05dc38db600000000"),
        ("update_rq_clock", 0xcd0a4030UL, "3e8d7426005589e557565389c38b80e0050000a802757b3e8d74260083c8048983e00500008b8384060000e80033020089c689d72b83e40500001b93e8050000"),
        ("print_rt_stats", 0xcd0bca40UL, "3e8d7426005589e55689d65389c3e8ad730300b90086e6cd030cb580f5bbcd81c100020000740989f289d8e870f90000e83bab03005b5e5dc38db42600000000"),
        ("print_dl_stats", 0xcd0c3800UL, "3e8d74260055b90086e6cd030c9580f5bbcd89e581c170050000e8718e00005dc3cccccccccccccccccccccccccccccc89c2b88897e5cd03049580f5bbcdc390b828bed6cdc38db426000000008d7600"),
        ("__pick_first_entity", 0xcd0b3280UL, "3e8d742600558b40348d50f885c089e50f45c25dc38db426"),
        ("__pick_last_entity", 0xcd0b32a0UL, "3e8d7426005583c03089e5e8008b80005d8d50f885c00f45"),
        ("sched_clock_cpu", 0xcd0c7360UL, ""),
    ];

    private static RunQueueCode? Decode((string Name, ulong At, string Hex)[] functions, int word, out string? reason)
    {
        var byName = functions.ToDictionary(f => f.Name);
        var byAddress = functions.ToDictionary(f => f.At);
        return RunQueueCodeDecoder.Decode(name => byName.TryGetValue(name, out var f) ? f.At : null,
            at => byAddress.TryGetValue(at, out var f) ? Convert.FromHexString(f.Hex) : null, word, out reason);
    }

    [Fact]
    public void Debian_6_1_x86_64_gives_every_member_as_BTF_has_it()
    {
        var r = Decode(Debian61, 8, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Equal((0x31c40UL, 0xffffffffa741cb60UL), (r.RunQueues, r.PerCpuOffsetArray));
        Assert.Equal((0x968, 0x960, 0xa70), (r.Idle, r.Curr, r.Cpu));
        Assert.Equal((0x240, 0x8e0), (r.Rt, r.Dl));
        Assert.Equal((0x30, 0x38, 0x10), (r.CfsRoot, r.CfsLeftmost, r.SeRunNode));
        Assert.Null(r.FairServer); // 6.1 has no fair server (no fair_server_init)
    }

    /// <summary>7.x moved curr and idle to the front of struct rq and run_node behind the new fields of sched_entity; the
    /// runqueues address is a kernel address (a bounds check on the CPU number sits before the loads).</summary>
    [Fact]
    public void Debian_7_3_x86_64_gives_every_member_as_BTF_has_it()
    {
        var r = Decode(Debian73, 8, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Equal((0xffffffffb8b67780UL, 0xffffffffb75db0e0UL), (r.RunQueues, r.PerCpuOffsetArray));
        Assert.Equal((0x20, 0x18, 0x1028), (r.Idle, r.Curr, r.Cpu));
        Assert.Equal((0x300, 0x988), (r.Rt, r.Dl));
        Assert.Equal((0x40, 0x48, 0x20), (r.CfsRoot, r.CfsLeftmost, r.SeRunNode));
        Assert.Equal(0xde0, r.FairServer);
    }

    /// <summary>i386 (regparm: the first argument in eax; 32-bit displacements, negative ones included).</summary>
    [Fact]
    public void Debian_686_gives_every_member()
    {
        var r = Decode(Debian686, 4, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Equal((0xcde68600UL, 0xcdbbf580UL), (r.RunQueues, r.PerCpuOffsetArray));
        Assert.Equal((0x5d0, 0x5cc, 0x684), (r.Idle, r.Curr, r.Cpu));
        Assert.Equal((0x200, 0x570), (r.Rt, r.Dl));
        Assert.Equal((0x30, 0x34, 0x8), (r.CfsRoot, r.CfsLeftmost, r.SeRunNode));
    }

    /// <summary>Without idle_task (or with code that never loads through runqueues + __per_cpu_offset[cpu]) nothing is
    /// returned; a missing helper function leaves only its own member unknown.</summary>
    [Theory]
    [InlineData("")]                                   // no bytes
    [InlineData("c3")]                                 // ret
    [InlineData("48c7c0401c0300c3")]                   // mov rax, $runqueues; ret (no per-CPU offset)
    [InlineData("488b14fd60cb41a7c3")]                 // the array load, then ret
    [InlineData("ebfe")]                               // jmp to itself: straight-line decoding stops
    [InlineData("ffffffffffffffffffffffffffffffff")]   // not code
    public void Idle_task_without_the_load_is_no_answer(string hex)
    {
        var functions = Debian61.Select(f => f.Name == "idle_task" ? (f.Name, f.At, hex) : f).ToArray();
        Assert.Null(Decode(functions, 8, out string? reason));
        Assert.NotNull(reason);
    }

    [Fact]
    public void A_missing_helper_leaves_only_its_member_unknown()
    {
        var r = Decode(Debian61.Where(f => f.Name is not ("update_rq_clock" or "__pick_first_entity")).ToArray(), 8, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Null(r.Cpu);
        Assert.Null(r.SeRunNode);
        Assert.Null(r.CfsLeftmost);
        Assert.Equal((0x968, 0x960, 0x240, 0x8e0, 0x30), (r.Idle, r.Curr, r.Rt, r.Dl, r.CfsRoot));
    }

    /// <summary>idle_cpu comparing two loads neither of which is idle_task's rq->idle gives no curr; a helper whose address
    /// arithmetic uses another per-CPU variable gives no member.</summary>
    [Fact]
    public void Loads_that_disagree_with_idle_task_give_no_member()
    {
        // idle_cpu with 0x900/0x908 instead of 0x960/0x968; print_rt_stats adding to $0x198b0 (another per-CPU variable).
        var functions = Debian61.Select(f => f.Name switch
        {
            "idle_cpu" => (f.Name, f.At, "0f1f4400004863ff48c7c0401c030031d2480304fd60cb41a7488b880809000048398800090000740789d0c3"),
            "print_rt_stats" => (f.Name, f.At, "4863c348c7c2b0980100480314c560cb41a74881c240020000c3"),
            _ => f,
        }).ToArray();
        var r = Decode(functions, 8, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Null(r.Curr);
        Assert.Null(r.Rt);
        Assert.Equal(0x8e0, r.Dl);
    }

    /// <summary>A function longer than the decoder reads, or one that is all padding, costs at most MaxCodeBytes.</summary>
    [Fact]
    public void Long_or_endless_code_is_bounded()
    {
        var nops = Convert.FromHexString(string.Concat(Enumerable.Repeat("90", 1 << 16)));
        var events = RunQueueCodeDecoder.Trace(nops, 0xffffffff81000000, 8, null);
        Assert.Empty(events);
        var functions = Debian61.Select(f => f.Name == "idle_task" ? (f.Name, f.At, Convert.ToHexString(nops)) : f).ToArray();
        Assert.Null(Decode(functions, 8, out _));
    }
}
