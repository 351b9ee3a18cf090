using Iced.Intel;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>Where the per-CPU offsets and the idle-thread pointers are, read from code: <c>__per_cpu_offset</c> (an array of
/// one word per CPU) and <c>idle_threads</c> (a per-CPU task pointer).</summary>
public sealed record IdleThreadsCode(ulong PerCpuOffsetArray, ulong IdleThreads, string Evidence);

/// <summary>
/// On a kernel whose kallsyms has no data symbols (Debian's 686 kernels: no CONFIG_KALLSYMS_ALL), neither
/// <c>__per_cpu_offset</c> nor <c>idle_threads</c> has an address. Both are in the code of <c>idle_thread_get()</c>
/// (kernel/smpboot.c, a text symbol since 2.6.36: <c>tsk = per_cpu(idle_threads, cpu)</c>), whose first load indexes
/// <c>__per_cpu_offset</c> by the CPU number scaled by the word size, and whose next load reads <c>idle_threads</c> at a
/// displacement from the loaded offset (or adds it as an immediate first). The addresses found are only candidates: the
/// caller checks them against the data (CPU 0's idle thread is init_task; every other is a task with pid 0 and PF_IDLE).
/// </summary>
public static class IdleThreadsDecoder
{
    /// <summary>Bytes of idle_thread_get decoded at most: its loads come right after the ftrace NOP and the frame setup.</summary>
    private const int MaxCodeBytes = 96;
    private const int MaxInstructions = 32;
    public const string Function = "idle_thread_get";

    public static IdleThreadsCode? Decode(GuestReader reader, KernelSymbols symbols, out string? reason)
    {
        if (!symbols.TryGetAddress(Function, out ulong fn))
        {
            reason = $"kallsyms has no {Function} to read __per_cpu_offset and idle_threads from";
            return null;
        }
        var code = new byte[MaxCodeBytes];
        int n = reader.Space.Read(fn, code);
        if (n < 16)
        {
            reason = $"{Function} at 0x{fn:x} is unreadable";
            return null;
        }
        return Decode(code.AsSpan(0, n).ToArray(), fn, reader.PointerSize, out reason);
    }

    /// <summary>Decodes <paramref name="code"/>, the first bytes of idle_thread_get at <paramref name="fn"/>.</summary>
    public static IdleThreadsCode? Decode(byte[] code, ulong fn, int pointerSize, out string? reason)
    {
        int n = Math.Min(code.Length, MaxCodeBytes);
        int bitness = pointerSize * 8;
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, n), fn);
        // What each register holds: a known constant (Value), plus __per_cpu_offset[cpu] when HoldsOffset. RELOC_HIDE
        // makes gcc build the address in a register (mov reg, $idle_threads; add reg, __per_cpu_offset(,cpu,4)); without
        // it the load is mov reg, __per_cpu_offset(,cpu,4); mov reg, idle_threads(reg). Both, and their mixes, are followed.
        var regs = new Dictionary<Register, (ulong Value, bool HoldsOffset)>();
        ulong? array = null;
        for (int i = 0; i < MaxInstructions && decoder.IP < fn + (ulong)n; i++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid || ins.FlowControl is FlowControl.Return or FlowControl.UnconditionalBranch or FlowControl.IndirectBranch) break;
            if (ins.OpCount != 2 || ins.Op0Kind != OpKind.Register)
            {
                if (ins.OpCount > 0 && ins.Op0Kind == OpKind.Register) regs.Remove(ins.Op0Register.GetFullRegister());
                continue;
            }
            var dest = ins.Op0Register.GetFullRegister();
            bool indexed = ins.Op1Kind == OpKind.Memory && ins.MemoryBase == Register.None && ins.MemoryIndex != Register.None
                && ins.MemoryIndexScale == pointerSize;
            if (indexed && ins.Mnemonic is Mnemonic.Mov or Mnemonic.Add)
            {
                // mov/add reg, __per_cpu_offset(, cpu, word)
                array = Displacement(ins, bitness);
                if (ins.Mnemonic == Mnemonic.Mov) regs[dest] = (0, true);
                else if (regs.TryGetValue(dest, out var r) && !r.HoldsOffset) regs[dest] = (r.Value, true);
                else regs.Remove(dest);
                continue;
            }
            if (ins.Mnemonic == Mnemonic.Mov && IsImmediate(ins.Op1Kind))
            {
                regs[dest] = (Immediate(ins), false);
                continue;
            }
            if (ins.Mnemonic == Mnemonic.Add && IsImmediate(ins.Op1Kind) && regs.TryGetValue(dest, out var held))
            {
                regs[dest] = (unchecked(held.Value + Immediate(ins)), held.HoldsOffset);
                continue;
            }
            if (array is not null && ins.Mnemonic == Mnemonic.Mov && ins.Op1Kind == OpKind.Memory)
            {
                // mov reg, [base + index + disp]: exactly one register holds the offset, the others known constants.
                ulong sum = Displacement(ins, bitness);
                int offsets = 0;
                bool known = true;
                foreach (var part in new[] { ins.MemoryBase, ins.MemoryIndex })
                {
                    if (part == Register.None) continue;
                    if ((part == ins.MemoryIndex && ins.MemoryIndexScale != 1) || !regs.TryGetValue(part.GetFullRegister(), out var v)) { known = false; break; }
                    sum = unchecked(sum + v.Value);
                    if (v.HoldsOffset) offsets++;
                }
                if (known && offsets == 1)
                {
                    reason = null;
                    return new IdleThreadsCode(array.Value, sum,
                        $"{Function} at 0x{fn:x}: __per_cpu_offset 0x{array.Value:x} (its indexed load), idle_threads 0x{sum:x} (the load at that offset)");
                }
            }
            regs.Remove(dest);
        }
        reason = $"{Function} at 0x{fn:x}: no load of __per_cpu_offset[cpu] followed by a load of idle_threads in its first {n} bytes";
        return null;
    }

    private static bool IsImmediate(OpKind kind) => kind is OpKind.Immediate32 or OpKind.Immediate32to64 or OpKind.Immediate64 or OpKind.Immediate8to32 or OpKind.Immediate8to64;

    private static ulong Immediate(in Instruction ins) => ins.Op1Kind switch
    {
        OpKind.Immediate32 => ins.Immediate32,
        OpKind.Immediate64 => ins.Immediate64,
        OpKind.Immediate32to64 => unchecked((ulong)ins.Immediate32to64),
        OpKind.Immediate8to32 => unchecked((uint)ins.Immediate8to32),
        OpKind.Immediate8to64 => unchecked((ulong)ins.Immediate8to64),
        _ => 0,
    };

    private static ulong Displacement(in Instruction ins, int bitness) =>
        bitness == 32 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64;
}
