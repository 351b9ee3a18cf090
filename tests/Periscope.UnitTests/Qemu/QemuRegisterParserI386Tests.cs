using Periscope.Qemu;

namespace Periscope.UnitTests.Qemu;

/// <summary>"info registers" of a 686-pae guest (QEMU 7.2, qemu-system-x86_64, captured 2026-11-29): 32-bit names and
/// 8-digit segment bases.</summary>
public class QemuRegisterParserI386Tests
{
    private const string PaeGuest = """
        CPU#0
        EAX=00000126 EBX=ceefd21c ECX=00000000 EDX=000002f8
        ESI=c1324110 EDI=ce5ddc60 EBP=c10f9f60 ESP=c10f9f50
        EIP=ce5e1002 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
        ES =007b 00000000 ffffffff 00cff300 DPL=3 DS   [-WA]
        CS =0060 00000000 ffffffff 00cf9a00 DPL=0 CS32 [-R-]
        SS =0068 00000000 ffffffff 00c09300 DPL=0 DS   [-WA]
        DS =007b 00000000 ffffffff 00cff300 DPL=3 DS   [-WA]
        FS =00d8 00d39000 ffffffff 008f9300 DPL=0 DS16 [-WA]
        GS =0033 08c87380 ffffffff 00dff300 DPL=3 DS   [-WA]
        LDT=0000 00000000 00000000 00008200 DPL=0 LDT
        TR =0080 ff406000 0000407b 00008900 DPL=0 TSS32-avl
        GDT=     ff401000 000000ff
        IDT=     ff400000 000007ff
        CR0=80050033 CR2=b7f94000 CR3=0122f100 CR4=00350ef0
        DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
        DR6=00000000ffff0ff0 DR7=0000000000000400
        EFER=0000000000000800
        """;

    [Fact]
    public void I386_registers_segments_and_control_registers_are_read()
    {
        var cpu = Assert.Single(QemuRegisterParser.Parse(PaeGuest));
        Assert.Equal(0xce5e1002UL, cpu.Rip);
        Assert.Equal(0xc10f9f50UL, cpu.Rsp);
        Assert.Equal(0x126UL, cpu.Rax);
        Assert.Equal(2UL, cpu.Rflags);
        Assert.Equal(0x0122f100UL, cpu.Cr3);
        Assert.Equal(0x00350ef0UL, cpu.Cr4);
        Assert.Equal(0x80050033UL, cpu.Cr0);
        Assert.Equal(0xd8u, cpu.Fs!.Value.Selector);
        Assert.Equal(0x00d39000UL, cpu.Fs!.Value.Base); // i386's per-CPU base lives in FS
        Assert.Equal(0xff400000UL, cpu.Idt!.Value.Base);
        Assert.Equal(0x7ffu, cpu.Idt!.Value.Limit);
        Assert.Equal(0x00cf9a00u, cpu.Cs!.Value.Flags);
    }
}
