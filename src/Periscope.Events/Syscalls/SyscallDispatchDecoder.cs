using System.Buffers.Binary;

namespace Periscope.Events.Syscalls;

/// <summary>Why following the dispatch function for one number stopped without a handler.</summary>
public enum DispatchStop
{
    Handler,
    /// <summary>Reached a jump out of the function to something that is not a syscall handler (e.g. a return thunk).</summary>
    NotAHandler,
    /// <summary>An instruction this decoder does not follow (the compiler chose other code).</summary>
    UnknownInstruction,
    /// <summary>A jump target outside the bytes read, or a branch before any compare.</summary>
    OutOfBounds,
    /// <summary>More than MaxSyscallDispatchSteps instructions.</summary>
    TooManySteps,
}

/// <summary>
/// Which handler the guest's own dispatch function runs for a syscall number. Since 6.9, x86-64 dispatches through
/// <c>x64_sys_call(regs, nr)</c>, a <c>switch</c> compiled (no jump tables in retpoline/IBT kernels) into a tree of
/// <c>cmp $imm, %reg</c> / <c>test %reg,%reg</c> and conditional branches whose leaves jump (tail call) to
/// <c>__x64_sys_*</c>. This follows that tree for a given number, evaluating each branch as the CPU would, and returns
/// the first handler it reaches — so a hooked or re-routed case shows up as what it really runs. It follows only the
/// few instruction forms such a tree is made of; anything else stops it (that number stays unnamed).
/// </summary>
public static class SyscallDispatchDecoder
{
    /// <param name="code">The function's bytes, from <paramref name="start"/>.</param>
    /// <param name="isHandler">Whether an address outside the function is a syscall handler's entry.</param>
    public static ulong? Target(ReadOnlySpan<byte> code, ulong start, uint nr, Func<ulong, bool> isHandler, int maxSteps, out DispatchStop stop)
    {
        int pc = 0;
        uint compared = 0;
        bool haveCompare = false;
        for (int step = 0; step < maxSteps; step++)
        {
            if (pc < 0 || pc >= code.Length) { stop = DispatchStop.OutOfBounds; return null; }
            var c = code[pc..];
            int rex = c[0] is >= 0x40 and <= 0x4f ? 1 : 0;   // REX prefix (cmp %r12d, test %r8d, ...)
            var op = c[rex..];
            if (op.Length == 0) { stop = DispatchStop.OutOfBounds; return null; }

            if (c.Length >= 4 && c[0] == 0xf3 && c[1] == 0x0f && c[2] == 0x1e && c[3] == 0xfa) { pc += 4; continue; }   // endbr64
            if (c[0] == 0x90) { pc += 1; continue; }
            if (TryNopLength(c, out int nopLength)) { pc += nopLength; continue; }
            if (op.Length >= 3 && op[0] == 0x83 && (op[1] & 0xf8) == 0xf8)   // cmp $imm8, %r32 (sign-extended)
            {
                compared = (uint)(int)(sbyte)op[2];
                haveCompare = true;
                pc += rex + 3;
                continue;
            }
            if (op.Length >= 6 && op[0] == 0x81 && (op[1] & 0xf8) == 0xf8)   // cmp $imm32, %r32
            {
                compared = BinaryPrimitives.ReadUInt32LittleEndian(op[2..]);
                haveCompare = true;
                pc += rex + 6;
                continue;
            }
            if (rex == 0 && c.Length >= 5 && c[0] == 0x3d)   // cmp $imm32, %eax
            {
                compared = BinaryPrimitives.ReadUInt32LittleEndian(c[1..]);
                haveCompare = true;
                pc += 5;
                continue;
            }
            if (op.Length >= 2 && op[0] == 0x85 && (op[1] & 0xc0) == 0xc0 && ((op[1] >> 3) & 7) == (op[1] & 7))   // test %r, %r
            {
                compared = 0;
                haveCompare = true;
                pc += rex + 2;
                continue;
            }
            if (op.Length >= 2 && op[0] == 0x89 && (op[1] & 0xc0) == 0xc0) { pc += rex + 2; continue; }   // mov %r, %r
            int length = 0;
            long relative = 0;
            bool conditional = false, call = false;
            if (c.Length >= 2 && c[0] is >= 0x70 and <= 0x7f) { length = 2; relative = (sbyte)c[1]; conditional = true; }
            else if (c.Length >= 6 && c[0] == 0x0f && c[1] is >= 0x80 and <= 0x8f) { length = 6; relative = BinaryPrimitives.ReadInt32LittleEndian(c[2..]); conditional = true; }
            else if (c.Length >= 2 && c[0] == 0xeb) { length = 2; relative = (sbyte)c[1]; }
            else if (c.Length >= 5 && c[0] is 0xe9 or 0xe8) { length = 5; relative = BinaryPrimitives.ReadInt32LittleEndian(c[1..]); call = c[0] == 0xe8; }
            if (length != 0)
            {
                if (conditional)
                {
                    int cc = (c[0] == 0x0f ? c[1] : c[0]) & 0xf;
                    if (!haveCompare || !TryCondition(cc, nr, compared, out bool taken)) { stop = DispatchStop.UnknownInstruction; return null; }
                    if (!taken) { pc += length; continue; }
                }
                long destination = pc + length + relative;
                ulong target = start + (ulong)destination;
                bool inside = destination >= 0 && destination < code.Length;
                // Leaves tail-call the handler with jmp, or jcc straight from the compare; a call returns here.
                if (!inside && isHandler(target)) { stop = DispatchStop.Handler; return target; }
                if (call) { pc += length; continue; }   // a call to something else (__fentry__, a tracing hook)
                if (!inside) { stop = DispatchStop.NotAHandler; return null; }
                pc = (int)destination;
                continue;
            }
            stop = DispatchStop.UnknownInstruction;
            return null;
        }
        stop = DispatchStop.TooManySteps;
        return null;
    }

    /// <summary>The multi-byte NOPs compilers and the kernel's patching use: [66|2e]* 0f 1f /0.</summary>
    private static bool TryNopLength(ReadOnlySpan<byte> c, out int length)
    {
        length = 0;
        int i = 0;
        while (i < c.Length && i < 8 && c[i] is 0x66 or 0x2e) i++;
        if (i + 3 > c.Length || c[i] != 0x0f || c[i + 1] != 0x1f) return false;
        byte modrm = c[i + 2];
        int mod = modrm >> 6, rm = modrm & 7;
        int extra = mod switch { 0 => rm == 4 ? 1 : 0, 1 => rm == 4 ? 2 : 1, 2 => rm == 4 ? 5 : 4, _ => 0 };
        length = i + 3 + extra;
        return length <= c.Length;
    }

    /// <summary>Whether jcc with condition <paramref name="cc"/> is taken after <c>cmp $b, a</c> (32-bit).</summary>
    private static bool TryCondition(int cc, uint a, uint b, out bool taken)
    {
        uint r = a - b;
        bool zf = a == b, cf = a < b, sf = (int)r < 0, of = (((a ^ b) & (a ^ r)) >> 31) != 0;
        bool? result = (cc >> 1) switch
        {
            0 => of,
            1 => cf,
            2 => zf,
            3 => cf || zf,
            4 => sf,
            6 => sf != of,
            7 => zf || sf != of,
            _ => null,   // parity: not what a switch compiles to
        };
        taken = result is { } t && ((cc & 1) == 0 ? t : !t);
        return result is not null;
    }
}
