using Iced.Intel;
using Periscope.Integrity.Evidence;

namespace Periscope.Integrity.Verification;

/// <summary>Why a bpf trampoline image is not trampoline code: where (offset into the image), the instruction, and
/// where it sends control (null when it cannot be known: an indirect transfer, undecodable bytes, a missing end).</summary>
public sealed record TrampolineImageFault(ulong Offset, string Instruction, ControlTarget? Target, string Why)
{
    public override string ToString() =>
        $"+0x{Offset:x} {Instruction}{(Target is { } t ? $" -> {t}" : "")}: {Why}";
}

/// <summary>
/// Earns the trust a trampoline image gets: the kernel's x86 trampoline generator (arch_prepare_bpf_trampoline) emits
/// straight-line code whose only transfers are direct calls to the kernel's trampoline helpers (__bpf_prog_enter*,
/// __bpf_prog_exit*, __bpf_tramp_enter/exit), to each program's bpf_func, and to the traced function past its patched
/// call; short and near branches inside the image (skipping a program, fmod_ret's jumps to the fexit part, the
/// ip_after_call slot); and one end, "leave [; add rsp, 8]; ret" or a jump to a return thunk. Anything else, a call
/// to any other address, an indirect call or jump (a retpoline thunk included: it goes where a register says), a
/// return elsewhere, undecodable bytes or an image that ends before its code does, is the offending instruction.
/// What this does not model: stores (a forged image could still write the stack it returns through); it bounds where
/// the image's own transfers go, not what the helpers it calls are given.
/// </summary>
public static class TrampolineImageCheck
{
    /// <summary>The first instruction of <paramref name="t"/>'s image that is not trampoline code, or null when the
    /// whole image up to its end is. <paramref name="site"/> is the traced function's patched call (the original
    /// function resumes 5 bytes on). The image's bytes were read up to its stated size, capped at
    /// MaxBpfTrampolineImageBytes (one page, the most the kernel allocates): fewer bytes than the stated size is a fault.</summary>
    public static TrampolineImageFault? Check(BpfTrampolineEvidence t, ulong site, EvidenceIndex current)
    {
        var code = t.ImageCode;
        if (code.Length == 0) return new(0, "", null, "the image cannot be read, so nothing vouches for it");
        if (t.ImageSize > (ulong)code.Length)
            return new((ulong)code.Length, "", null,
                $"the image is said to be {t.ImageSize} bytes, of which {code.Length} were read: larger than the page the kernel builds it in (MaxBpfTrampolineImageBytes), or not all mapped");
        ulong image = t.Image, orig = site + 5;
        var entries = t.Programs.Select(p => p.Entry).Where(e => e != 0).ToHashSet();
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(code), image);
        var starts = new HashSet<ulong>();
        var inside = new List<(Instruction At, ulong Target)>();
        var formatter = new IntelFormatter();
        formatter.Options.HexPrefix = "0x";
        formatter.Options.HexSuffix = null;
        formatter.Options.UppercaseHex = false;
        formatter.Options.AddLeadingZeroToHexNumbers = false;
        Instruction previous = default, beforePrevious = default;
        ulong end = image + (ulong)code.Length;
        while (decoder.IP < end)
        {
            decoder.Decode(out var instr);
            ulong offset = instr.IP - image;
            if (instr.IsInvalid)
                return new(offset, Hex(code, offset, end - instr.IP), null,
                    decoder.LastError == DecoderError.NoMoreBytes ? "the image ends inside this instruction, before the trampoline's end" : "not a valid instruction");
            starts.Add(instr.IP);
            string Text() => Format(formatter, instr);
            switch (instr.FlowControl)
            {
                case FlowControl.Next:
                case FlowControl.Exception:   // ud2: a trap into the kernel's own handler
                    break;
                case FlowControl.Interrupt:
                    if (instr.Code != Code.Int3) return new(offset, Text(), null, "a software interrupt or system call; a trampoline makes none");
                    break;   // int3: text_poke_bp's transient state while the kernel patches the image
                case FlowControl.Call:
                    {
                        ulong target = instr.NearBranchTarget;
                        if (!instr.IsCallNear) return new(offset, Text(), null, "a far call");
                        if (target >= image && target < end) { inside.Add((instr, target)); break; }
                        if (entries.Contains(target) || target == orig || IsKernelFunction(current, target, IsTrampolineHelper)) break;
                        return new(offset, Text(), current.Resolve(target),
                            "a call to neither a program on this trampoline, nor a trampoline helper, nor the traced function past its patched call");
                    }
                case FlowControl.UnconditionalBranch:
                    {
                        ulong target = instr.NearBranchTarget;
                        if (!instr.IsJmpShortOrNear) return new(offset, Text(), null, "a far jump");
                        if (target >= image && target < end) { inside.Add((instr, target)); break; }
                        if (IsKernelFunction(current, target, IsReturnThunk))
                            return Epilogue(previous, beforePrevious, instr, offset, formatter) ?? Internal(inside, starts, instr.NextIP, image, current, formatter);
                        return new(offset, Text(), current.Resolve(target), "a jump out of the image to anything but a return thunk");
                    }
                case FlowControl.ConditionalBranch:
                case FlowControl.XbeginXabortXend:
                    {
                        if (instr.FlowControl == FlowControl.XbeginXabortXend && instr.Code is not (Code.Xbegin_rel16 or Code.Xbegin_rel32))
                            break;   // xabort, xend: no target of their own
                        ulong target = instr.NearBranchTarget;
                        if (target >= image && target < end) { inside.Add((instr, target)); break; }
                        return new(offset, Text(), current.Resolve(target), "a conditional branch out of the image");
                    }
                case FlowControl.Return:
                    if (instr.Code != Code.Retnq) return new(offset, Text(), null, "a return the trampoline does not emit (far, interrupt or with an immediate)");
                    return Epilogue(previous, beforePrevious, instr, offset, formatter) ?? Internal(inside, starts, instr.NextIP, image, current, formatter);
                default:   // IndirectBranch, IndirectCall
                    return new(offset, Text(), null, "an indirect transfer: control goes where a register or memory says, which nothing vouches for");
            }
            beforePrevious = previous;
            previous = instr;
        }
        return new(end - image, "", null, $"no return within the {code.Length} bytes of the image (image size {t.ImageSize}): truncated, or not a trampoline");
    }

    /// <summary>The trampoline returns through its own frame: "leave" right before the return, or "leave; add rsp, 8"
    /// (BPF_TRAMP_F_SKIP_FRAME: back to the traced function's caller).</summary>
    private static TrampolineImageFault? Epilogue(in Instruction previous, in Instruction beforePrevious, in Instruction ret, ulong offset, IntelFormatter formatter)
    {
        if (previous.Mnemonic == Mnemonic.Leave) return null;
        if (beforePrevious.Mnemonic == Mnemonic.Leave && previous.Code == Code.Add_rm64_imm8 && previous.Op0Register == Register.RSP && previous.Immediate8 == 8)
            return null;
        return new(offset, Format(formatter, ret), null, "the trampoline's end does not follow \"leave\" (its frame is not what it returns through)");
    }

    /// <summary>Branches inside the image must land on an instruction of the code before its end: a jump into the middle
    /// of an instruction, or past the end into bytes never decoded, hides code from this check.</summary>
    private static TrampolineImageFault? Internal(List<(Instruction At, ulong Target)> inside, HashSet<ulong> starts, ulong codeEnd, ulong image,
        EvidenceIndex current, IntelFormatter formatter)
    {
        foreach (var (at, target) in inside)
            if (target >= codeEnd || !starts.Contains(target))
                return new(at.IP - image, Format(formatter, at), current.Resolve(target) with { Description = $"image+0x{target - image:x}" },
                    target >= codeEnd ? "a transfer past the trampoline's end, into bytes that are not its code" : "a transfer into the middle of an instruction");
        return null;
    }

    private static bool IsKernelFunction(EvidenceIndex current, ulong target, Func<string, bool> name) =>
        current.InKernelText(target) && current.TryFindSymbol(target, out var s) && s.Address == target && s.Module == 0 && name(s.Name);

    /// <summary>The kernel functions a trampoline calls around each program and the original function (their suffixes
    /// vary by kernel and program kind: _recur, _sleepable, _lsm_cgroup).</summary>
    public static bool IsTrampolineHelper(string name) =>
        name.StartsWith("__bpf_prog_enter", StringComparison.Ordinal) || name.StartsWith("__bpf_prog_exit", StringComparison.Ordinal)
        || name is "__bpf_tramp_enter" or "__bpf_tramp_exit";

    /// <summary>What emit_return jumps to instead of "ret" with X86_FEATURE_RETHUNK (x86_return_thunk is one of these).</summary>
    public static bool IsReturnThunk(string name) =>
        name is "__x86_return_thunk" or "retbleed_return_thunk" or "srso_return_thunk" or "srso_alias_return_thunk" or "its_return_thunk" or "call_depth_return_thunk";

    private static string Format(IntelFormatter formatter, in Instruction instr)
    {
        var output = new StringOutput();
        formatter.Format(instr, output);
        return output.ToStringAndReset();
    }

    private static string Hex(byte[] code, ulong offset, ulong left) =>
        "bytes " + Convert.ToHexStringLower(code, (int)offset, (int)Math.Min(left, 8));
}
