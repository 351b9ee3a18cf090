using Iced.Intel;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Verification;
using static Iced.Intel.AssemblerRegisters;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// The trampoline image check on synthetic images: the shapes the kernel emits pass (fentry with one or two programs,
/// fexit calling the original function, return thunks, a skipped frame, int3 fill after the end); each forgery names the
/// offending instruction's offset and target: a call to an arbitrary kernel address, an indirect jump, a call through
/// a retpoline thunk, push-and-return, a branch past the end or into an instruction, undecodable bytes, a truncated
/// image, an image larger than its bytes.
/// </summary>
public sealed class TrampolineImageCheckTests
{
    private const ulong Text = 0xffffffff81000000, TextEnd = 0xffffffff82000000;
    private const ulong Image = 0xffffffffc0600000, Jit = 0xffffffffc0700000;
    private const ulong Function = Text + 0x1000, Site = Function;
    private const ulong Enter = Text + 0xa000, Exit = Text + 0xa100, TrampEnter = Text + 0xa200, TrampExit = Text + 0xa300;
    private const ulong ReturnThunk = Text + 0xa400, RetpolineRax = Text + 0xa500, CommitCreds = Text + 0x2000;

    private static readonly EvidenceIndex Current = new(new EvidenceSnapshot
    {
        KernelTextStart = Text, KernelTextEnd = TextEnd,
        Symbols =
        [
            new CodeSymbol(Function, 0, "traced", 0), new CodeSymbol(CommitCreds, 0, "commit_creds", 0),
            new CodeSymbol(Enter, 0, "__bpf_prog_enter_recur", 0), new CodeSymbol(Exit, 0, "__bpf_prog_exit_recur", 0),
            new CodeSymbol(TrampEnter, 0, "__bpf_tramp_enter", 0), new CodeSymbol(TrampExit, 0, "__bpf_tramp_exit", 0),
            new CodeSymbol(ReturnThunk, 0, "__x86_return_thunk", 0), new CodeSymbol(RetpolineRax, 0, "__x86_indirect_thunk_rax", 0),
        ],
    });

    private static readonly TrampolineImages.Shape Fentry = new(Enter, Exit, [Jit]);

    private static BpfTrampolineEvidence Trampoline(byte[] code, ulong? size = null, int programs = 1) =>
        new(0xffff888000200000, Function, "traced", 0, Image, Image, "bpf_trampoline_1",
            [.. Enumerable.Range(0, programs).Select(i => new BpfTrampolineProgramEvidence((uint)(10 + i), "p", "00", "tracing", "fentry", true) { Entry = Jit + (ulong)i * 0x1000 })])
        { ImageCode = code, ImageSize = size ?? (ulong)code.Length };

    private static TrampolineImageFault? Check(byte[] code, ulong? size = null, int programs = 1) =>
        TrampolineImageCheck.Check(Trampoline(code, size, programs), Site, Current);

    public static TheoryData<string> LegitShapes() => ["fentry", "two programs", "fexit calling the original", "return thunk", "skip frame", "one page"];

    [Theory]
    [MemberData(nameof(LegitShapes))]
    public void The_shapes_the_kernel_emits_pass(string shape)
    {
        var s = shape switch
        {
            "fentry" => Fentry,
            "two programs" => Fentry with { Programs = [Jit, Jit + 0x1000] },
            "fexit calling the original" => Fentry with { CallOrig = (TrampEnter, Site + 5, TrampExit) },
            "return thunk" => Fentry with { ReturnThunk = ReturnThunk },
            "skip frame" => Fentry with { CallOrig = (TrampEnter, Site + 5, TrampExit), SkipFrame = true },
            _ => Fentry with { Size = 4096 },
        };
        var fault = Check(TrampolineImages.Build(Image, s), programs: s.Programs.Count);
        Assert.True(fault is null, $"{shape}: {fault}");
    }

    [Fact]
    public void A_call_to_an_arbitrary_kernel_function_is_named_with_its_offset_and_target()
    {
        var code = TrampolineImages.Build(Image, Fentry with { Exit = CommitCreds });
        var fault = Assert.IsType<TrampolineImageFault>(Check(code));
        Assert.Equal(OffsetOf(code, 0xe8, CommitCreds), fault.Offset);
        Assert.StartsWith("call ", fault.Instruction, StringComparison.Ordinal);
        Assert.Equal((CodeOwnerKind.KernelText, CommitCreds, "commit_creds"), (fault.Target!.Owner, fault.Target.Address, fault.Target.Description));
    }

    [Fact]
    public void A_call_to_a_program_not_on_this_trampoline_or_into_the_middle_of_the_original_is_a_fault()
    {
        var other = Check(TrampolineImages.Build(Image, Fentry with { Programs = [Jit + 0x5000] }));
        Assert.Equal(Jit + 0x5000, other!.Target!.Address);
        Assert.Equal(CodeOwnerKind.Unowned, other.Target.Owner);
        var mid = Check(TrampolineImages.Build(Image, Fentry with { CallOrig = (TrampEnter, Site + 6, TrampExit) }));
        Assert.Equal(Site + 6, mid!.Target!.Address);
    }

    [Fact]
    public void Indirect_transfers_are_faults_a_retpoline_thunk_included()
    {
        var jmp = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => { a.mov(rax, CommitCreds); a.jmp(rax); } }));
        Assert.Contains("indirect transfer", jmp!.Why);
        Assert.Equal("jmp rax", jmp.Instruction);
        Assert.Null(jmp.Target);
        var call = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => a.call(__qword_ptr[rax]) }));
        Assert.Contains("indirect transfer", call!.Why);
        var thunk = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => { a.mov(rax, CommitCreds); a.call(RetpolineRax); } }));
        Assert.Equal(RetpolineRax, thunk!.Target!.Address);
    }

    [Fact]
    public void Push_and_return_is_not_the_trampolines_end()
    {
        var fault = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => { a.push(unchecked((int)(uint)CommitCreds)); a.ret(); } }));
        Assert.Equal("ret", fault!.Instruction);
        Assert.Contains("does not follow \"leave\"", fault.Why);
    }

    [Fact]
    public void Branches_past_the_end_or_into_an_instruction_are_faults()
    {
        // je to the int3 fill after the return: bytes that were never decoded as the trampoline's code.
        var code = TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => a.je(Image + 400) });
        var past = Assert.IsType<TrampolineImageFault>(Check(code));
        Assert.Contains("past the trampoline's end", past.Why);
        Assert.Equal("image+0x190", past.Target!.Description);
        // A jump into the second byte of the first instruction (push rbp; mov rbp, rsp: +2 is inside "mov").
        var into = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => a.jmp(Image + 2) }));
        Assert.Contains("middle of an instruction", into!.Why);
        // An out-of-image conditional branch.
        var outside = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => a.jne(CommitCreds) }));
        Assert.Equal(CommitCreds, outside!.Target!.Address);
    }

    [Fact]
    public void Truncated_undecodable_and_oversized_images_are_faults()
    {
        var code = TrampolineImages.Build(Image, Fentry with { Size = 0 });
        int ret = Array.LastIndexOf(code, (byte)0xc3);
        // Cut before the return: no end within the image's bytes.
        var noEnd = Check(code[..ret]);
        Assert.Contains("no return within", noEnd!.Why);
        // Cut inside the last call: the image ends inside an instruction.
        int lastCall = (int)OffsetOf(code, 0xe8, Exit);
        var inside = Check(code[..(lastCall + 3)]);
        Assert.Equal((ulong)lastCall, inside!.Offset);
        Assert.Contains("ends inside this instruction", inside.Why);
        // Bytes that are no instruction in 64-bit mode (0x06: push es).
        var bad = Check([0x55, 0x06, 0xc9, 0xc3]);
        Assert.Equal(1UL, bad!.Offset);
        Assert.Contains("not a valid instruction", bad.Why);
        // The kernel says the image is larger than what could be read (the cap, or unmapped bytes).
        var big = Check(code, size: 1UL << 20);
        Assert.Contains("is said to be 1048576 bytes", big!.Why);
        Assert.Contains("nothing vouches", Check([])!.Why);
    }

    [Fact]
    public void A_system_call_in_the_image_is_a_fault()
    {
        var fault = Check(TrampolineImages.Build(Image, Fentry with { BeforeEpilogue = a => a.syscall() }));
        Assert.Equal("syscall", fault!.Instruction);
    }

    private static ulong OffsetOf(byte[] code, byte opcode, ulong target)
    {
        for (int i = 0; i + 5 <= code.Length; i++)
            if (code[i] == opcode && Image + (ulong)i + 5 + (ulong)(long)System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(code.AsSpan(i + 1)) == target)
                return (ulong)i;
        throw new InvalidOperationException("no such transfer");
    }
}
