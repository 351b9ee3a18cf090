using Periscope.TraceRing;

namespace Periscope.UnitTests.Events;

/// <summary>
/// The plugin's recognisers on the real entry_SYSCALL_64 bytes of the Debian kernels at hand (6.1.0-57, 6.12.117,
/// 7.3.4; disassembled from their vmlinuz): the user-RSP store in both encodings, and the exit rule — the first
/// pt_regs access after the call into C is the only exit probe unless a conditional branch comes first, whose target
/// (the shared return to user mode) then gets a probe too.
/// </summary>
public sealed class EntryCodeTests
{
    private static byte[] Hex(string s) => Convert.FromHexString(s);

    [Fact]
    public void User_stack_store_gives_the_per_cpu_slot_in_both_encodings()
    {
        // 6.1: mov %rsp, %gs:0x6014
        Assert.True(EntryCode.TryStoreRspToGsSlot(Hex("654889242514600000"), 0xffffffff81e00083, out ulong slot61));
        Assert.Equal(0x6014UL, slot61);
        // 6.12: mov %rsp, %gs:disp32(%rip) at its link address; the zero-based per-CPU slot is still 0x6014.
        Assert.True(EntryCode.TryStoreRspToGsSlot(Hex("65488925855f207e"), 0xffffffff81e00087, out ulong slot612));
        Assert.Equal(0x6014UL, slot612);
        // 7.3: per-CPU data is no longer zero-based; the slot is the variable's kernel address (cpu_tss_rw + 0x14).
        Assert.True(EntryCode.TryStoreRspToGsSlot(Hex("65488925859ff302"), 0xffffffff81000087, out ulong slot73));
        Assert.Equal(0xffffffff81000087UL + 8 + 0x02f39f85, slot73);
        Assert.False(EntryCode.TryStoreRspToGsSlot(Hex("65488b25855f207e"), 0xffffffff81e00087, out _));   // a load, not the store
        Assert.True(EntryCode.IsSwapgs(Hex("0f01f8")));
    }

    /// <summary>What the plugin's rule finds after the call: the branch target (0: none) or the exit probe's index.</summary>
    private static (ulong ReturnPath, int ProbeIndex) ExitRule(ulong afterCall, string[] instructions)
    {
        ulong vaddr = afterCall;
        for (int i = 0; i < instructions.Length; i++)
        {
            var code = Hex(instructions[i]);
            if (EntryCode.TryConditionalJump(code, vaddr, out ulong target)) return (target, -1);
            if (EntryCode.TryPtRegsAccess(code, out _)) return (0, i);
            vaddr += (ulong)code.Length;
        }
        return (0, -1);
    }

    [Fact]
    public void Linux_6_1_decides_in_the_entry_code_so_one_probe_sees_every_return()
    {
        var (returnPath, probe) = ExitRule(0xffffffff81e00126, ["90", "90", "90", "90", "90", "488b4c2458", "4c8b9c2480000000"]);
        Assert.Equal(0UL, returnPath);
        Assert.Equal(5, probe);   // mov 0x58(%rsp), %rcx: pt_regs->cx
        Assert.True(EntryCode.TryPtRegsAccess(Hex("488b4c2458"), out long displacement));
        Assert.Equal(0x58, displacement);
    }

    [Theory]
    [InlineData("0f84f9160000", 0x1701UL)]   // 6.12.117: je swapgs_restore_regs_and_return_to_usermode
    [InlineData("0f8419170000", 0x1721UL)]   // 7.3.4
    public void Later_kernels_branch_to_the_shared_return_which_gets_a_probe_too(string je, ulong distance)
    {
        const ulong AfterCall = 0xffffffff81000000;
        var (returnPath, probe) = ExitRule(AfterCall, ["84c0", je, "eb18", "b948000000"]);
        Assert.Equal(AfterCall + distance, returnPath);   // test %al,%al (2 bytes), then the 6-byte je and its rel32
        Assert.Equal(-1, probe);
        // On the SYSRET way and at the shared return, the first pt_regs access is pop %r15.
        string[] sharedReturn = ["eb18", "b948000000", "65488b1551f0217e", "83e2fe", "89d0", "48c1ea20", "0f30", "90", "4157", "415f"];
        Assert.Equal(9, ExitRule(returnPath, sharedReturn).ProbeIndex);
        Assert.False(EntryCode.TryPtRegsAccess(Hex("4157"), out _));   // push %r15 is the entry's, not a return's
    }
}
