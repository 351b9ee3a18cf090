using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// Synthetic bpf trampoline images in the shapes x86's arch_prepare_bpf_trampoline emits: a frame, for each program
/// "mov rdi, prog; lea rsi, run_ctx; call enter; test rax, rax; je skip; call bpf_func; skip: ...; call exit", for
/// fexit/fmod_ret the original function called past its patched call between __bpf_tramp_enter and __bpf_tramp_exit
/// with the ip_after_call NOP slot, then "leave [; add rsp, 8]; ret" (or a jump to the return thunk). The rest of the
/// allocation is int3, as the kernel fills it.
/// </summary>
internal static class TrampolineImages
{
    public const ulong ProgStruct = 0xffff888000300000;

    public sealed record Shape(ulong Enter, ulong Exit, IReadOnlyList<ulong> Programs)
    {
        /// <summary>Set for fexit/fmod_ret: (__bpf_tramp_enter, the traced function past its patched call, __bpf_tramp_exit).</summary>
        public (ulong TrampEnter, ulong Orig, ulong TrampExit)? CallOrig { get; init; }
        /// <summary>Set with X86_FEATURE_RETHUNK: the end is "jmp __x86_return_thunk".</summary>
        public ulong ReturnThunk { get; init; }
        public bool SkipFrame { get; init; }
        /// <summary>Bytes of the allocation (the code, then int3 fill).</summary>
        public int Size { get; init; } = 512;
        /// <summary>Lets a test add forged instructions right before the epilogue.</summary>
        public Action<Assembler>? BeforeEpilogue { get; init; }
    }

    public static byte[] Build(ulong image, Shape s)
    {
        var a = new Assembler(64);
        a.push(rbp);
        a.mov(rbp, rsp);
        a.sub(rsp, 0x28);
        a.push(rbx);
        if (s.CallOrig is { } orig)
        {
            a.mov(rdi, ProgStruct);
            a.call(orig.TrampEnter);
        }
        foreach (ulong entry in s.Programs) Program(a, s, entry);
        if (s.CallOrig is { } o)
        {
            a.call(o.Orig);
            a.mov(__qword_ptr[rbp - 8], rax);
            a.db(0x0f, 0x1f, 0x44, 0x00, 0x00);   // the ip_after_call slot: one 5-byte NOP
            a.mov(rdi, ProgStruct);
            a.call(o.TrampExit);
            a.mov(rax, __qword_ptr[rbp - 8]);
        }
        s.BeforeEpilogue?.Invoke(a);
        a.mov(rbx, __qword_ptr[rbp - 0x20]);
        a.leave();
        if (s.SkipFrame) a.add(rsp, 8);
        if (s.ReturnThunk != 0) a.jmp(s.ReturnThunk);
        else a.ret();
        a.int3();
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), image);
        var code = stream.ToArray();
        var result = new byte[Math.Max(s.Size, code.Length)];
        Array.Fill(result, (byte)0xcc);
        code.CopyTo(result, 0);
        return result;
    }

    private static void Program(Assembler a, Shape s, ulong entry)
    {
        var skip = a.CreateLabel();
        a.mov(rdi, ProgStruct);
        a.lea(rsi, __[rbp - 0x18]);
        a.call(s.Enter);
        a.mov(rbx, rax);
        a.test(rax, rax);
        a.je(skip);
        a.lea(rdi, __[rbp - 0x10]);
        a.call(entry);
        a.Label(ref skip);
        a.mov(rdi, ProgStruct);
        a.mov(rsi, rbx);
        a.lea(rdx, __[rbp - 0x18]);
        a.call(s.Exit);
    }
}
