using Periscope.Qemu;

namespace Periscope.UnitTests.Qemu;

public class QemuRegisterParserTests
{
    // Captured from QEMU 7.2 HMP "info registers" on the demo guest (-cpu max, TCG), trimmed after EFER.
    private const string Captured =
        "\r\nCPU#0\r\nRAX=000000000001ad40 RBX=0000000000000000 RCX=0000000000000020 RDX=4000000000000000\r\n" +
        "RSI=0000000000000083 RDI=00000000000003d4 RBP=ffffffff8d41aa40 RSP=ffffffff8d403e98\r\n" +
        "R8 =ff3a9c830f623000 R9 =00000000314df9d5 R10=00000000fffffffb R11=0000000000000000\r\n" +
        "R12=0000000000000000 R13=0000000000000000 R14=ffffffff8d41a118 R15=0000000000014790\r\n" +
        "RIP=ffffffff8c4592eb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n" +
        "ES =0000 0000000000000000 00000000 00000000\r\n" +
        "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\r\n" +
        "SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n" +
        "DS =0000 0000000000000000 00000000 00000000\r\n" +
        "FS =0000 0000000000000000 00000000 00000000\r\n" +
        "GS =0000 ff3a9c830f600000 00000000 00000000\r\n" +
        "LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT\r\n" +
        "TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl\r\n" +
        "GDT=     fffffe0000001000 0000007f\r\n" +
        "IDT=     fffffe0000000000 00000fff\r\n" +
        "CR0=80050033 CR2=00000000005794a9 CR3=0000000002a0c000 CR4=00751ef0\r\n" +
        "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \r\n" +
        "DR6=00000000ffff0ff0 DR7=0000000000000400\r\nEFER=0000000000000d01\r\n";

    [Fact]
    public void Parses_real_info_registers_output()
    {
        var cpu = Assert.Single(QemuRegisterParser.Parse(Captured));
        Assert.Equal(0, cpu.Index);
        Assert.Equal(0xffffffff8c4592ebUL, cpu.Rip);
        Assert.Equal(0xff3a9c830f623000UL, cpu.R8);
        Assert.Equal(0x246UL, cpu.Rflags);
        Assert.Equal(0x2a0c000UL, cpu.Cr3);
        Assert.Equal(0x751ef0UL, cpu.Cr4);
        Assert.Equal(0xff3a9c830f600000UL, cpu.Gs!.Value.Base);
        Assert.Equal(0x10u, cpu.Cs!.Value.Selector);
        Assert.Equal(0xfffffe0000000000UL, cpu.Idt!.Value.Base);
        Assert.Equal(0xfffu, cpu.Idt!.Value.Limit);
    }

    [Fact]
    public void Several_cpus_and_garbage()
    {
        string two = Captured + Captured.Replace("CPU#0", "CPU#1").Replace("RIP=ffffffff8c4592eb", "RIP=ffffffff8c000000");
        var cpus = QemuRegisterParser.Parse(two);
        Assert.Equal(2, cpus.Count);
        Assert.Equal(1, cpus[1].Index);
        Assert.Equal(0xffffffff8c000000UL, cpus[1].Rip);
        Assert.Empty(QemuRegisterParser.Parse("no registers here"));
    }
}
