using Periscope.Integrity.Verification;

namespace Periscope.UnitTests.Integrity;

/// <summary>The handler address of an interrupt gate in both formats: i386's 8 bytes (offset halves at bytes 0 and 6)
/// and x86-64's 16 (plus the upper half at byte 8). Bytes as the guests hold them.</summary>
public sealed class InterruptGateTests
{
    [Fact]
    public void I386_gate_handler_is_its_two_offset_halves()
    {
        // Debian 686-pae, vector 0: asm_exc_divide_error at 0xcb931cc0, selector 0x60 (__KERNEL_CS), type 0x8e.
        byte[] gate = [0xc0, 0x1c, 0x60, 0x00, 0x00, 0x8e, 0x93, 0xcb];
        Assert.Equal(0xcb931cc0UL, Verifier.GateHandler(gate));
    }

    [Fact]
    public void X86_64_gate_handler_adds_the_upper_half_and_ignores_the_reserved_word()
    {
        byte[] gate = [0x30, 0x12, 0x10, 0x00, 0x00, 0x8e, 0x00, 0x81, 0xff, 0xff, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef];
        Assert.Equal(0xffffffff81001230UL, Verifier.GateHandler(gate));
        // The same first 8 bytes read as an i386 gate give only the low 32 bits.
        Assert.Equal(0x81001230UL, Verifier.GateHandler(gate.AsSpan(0, 8)));
    }
}
