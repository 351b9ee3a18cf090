using System.Buffers.Binary;

namespace Periscope.TraceRing;

/// <summary>
/// The instruction forms the trace plugin recognises in the kernel's syscall entry and exit code (compiled into the
/// plugin and into Periscope.Events, so that unit tests check them on real kernels' bytes). Each takes the bytes of one
/// instruction as QEMU's translator delivered it.
/// </summary>
public static class EntryCode
{
    public static bool IsSwapgs(ReadOnlySpan<byte> c) => c.Length == 3 && c[0] == 0x0f && c[1] == 0x01 && c[2] == 0xf8;

    /// <summary>
    /// The store of the user stack pointer to the per-CPU scratch slot, in either encoding the kernel uses:
    /// <c>mov %rsp, %gs:disp32</c> (65 48 89 24 25 disp32, Linux 6.1: the slot is disp32) or, since per-CPU
    /// references became RIP-relative (6.12 and 7.3 checked), <c>mov %rsp, %gs:disp32(%rip)</c> (65 48 89 25 disp32: the slot is the
    /// next instruction's address plus disp32, modulo 2^64, which is what the CPU adds to the GS base).
    /// </summary>
    public static bool TryStoreRspToGsSlot(ReadOnlySpan<byte> c, ulong vaddr, out ulong slot)
    {
        slot = 0;
        if (c.Length == 9 && c[0] == 0x65 && c[1] == 0x48 && c[2] == 0x89 && c[3] == 0x24 && c[4] == 0x25)
        {
            slot = BinaryPrimitives.ReadUInt32LittleEndian(c[5..]);
            return true;
        }
        if (c.Length == 8 && c[0] == 0x65 && c[1] == 0x48 && c[2] == 0x89 && c[3] == 0x25)
        {
            slot = vaddr + 8 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(c[4..]);
            return true;
        }
        return false;
    }

    /// <summary>jcc rel8 (70-7f) or jcc rel32 (0f 80-8f): its target.</summary>
    public static bool TryConditionalJump(ReadOnlySpan<byte> c, ulong vaddr, out ulong target)
    {
        target = 0;
        if (c.Length == 2 && c[0] >= 0x70 && c[0] <= 0x7f) { target = vaddr + 2 + (ulong)(long)(sbyte)c[1]; return true; }
        if (c.Length == 6 && c[0] == 0x0f && c[1] >= 0x80 && c[1] <= 0x8f)
        {
            target = vaddr + 6 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(c[2..]);
            return true;
        }
        return false;
    }

    /// <summary>
    /// The first access to pt_regs after do_syscall_64 returns: Linux 6.1 re-reads pt_regs->cx
    /// (<c>mov disp8(%rsp), reg</c> with REX.W) to decide between SYSRET and IRET; later kernels pop the registers
    /// (<c>pop %r15</c>) on the SYSRET path, and again on the shared return to user mode (the IRET path).
    /// </summary>
    public static bool TryPtRegsAccess(ReadOnlySpan<byte> c, out long displacement)
    {
        displacement = 0;
        if (c.Length == 5 && (c[0] == 0x48 || c[0] == 0x4c) && c[1] == 0x8b && (c[2] & 0xc7) == 0x44 && c[3] == 0x24)
        {
            displacement = (sbyte)c[4];
            return displacement >= 0;
        }
        return c.Length == 2 && c[0] == 0x41 && c[1] == 0x5f;
    }
}
