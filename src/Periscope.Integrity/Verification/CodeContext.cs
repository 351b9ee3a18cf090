using System.Text;
using Iced.Intel;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Integrity.Verification;

/// <summary>
/// Naming and disassembly of kernel addresses for checks that need no history. What makes a text change legitimate
/// is no longer decided here: see <see cref="Judge"/> and the evidence it is given.
/// </summary>
public sealed class CodeContext
{
    private readonly LinuxKernel _kernel;
    private readonly IReadOnlyList<KernelModule> _modules;
    private readonly ulong _textStart, _textEnd;

    public CodeContext(LinuxKernel kernel)
    {
        _kernel = kernel;
        _modules = kernel.Modules;
        // [_stext, _etext); an empty range when the symbols are missing, so nothing counts as kernel text.
        if (kernel.Symbols.TryGetAddress("_stext", out ulong s) && kernel.Symbols.TryGetAddress("_etext", out ulong e)) (_textStart, _textEnd) = (s, e);
    }

    public bool InKernelText(ulong va) => va >= _textStart && va < _textEnd;

    public KernelModule? ModuleAt(ulong va) => _modules.FirstOrDefault(m => m.Base != 0 && va >= m.Base && va < m.Base + m.Size);

    public string Describe(ulong va)
    {
        if (ModuleAt(va) is { } m) return $"{m.Name}+0x{va - m.Base:x}";
        if (_kernel.Symbols.TryFindContaining(va, out var sym, out ulong off) && off < 1 << 20)
            return off == 0 ? sym.Name : $"{sym.Name}+0x{off:x}";
        return $"0x{va:x}";
    }

    /// <summary>Start of the function holding <paramref name="va"/>, to decode from an instruction boundary.</summary>
    public ulong FunctionStart(ulong va)
    {
        if (_kernel.Symbols.TryFindContaining(va, out var sym, out ulong off) && off < 64 * 1024) return sym.Address;
        return va;
    }

    /// <summary>Disassembles the instructions of <paramref name="code"/> (which starts at <paramref name="codeVa"/>) that
    /// overlap [from, to).</summary>
    public static string Disassemble(byte[] code, ulong codeVa, ulong from, ulong to)
    {
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code), codeVa);
        var formatter = new IntelFormatter();
        var output = new StringOutput();
        var sb = new StringBuilder();
        int count = 0;
        while (decoder.IP < codeVa + (ulong)code.Length && count < 4096)
        {
            decoder.Decode(out var instr);
            count++;
            if (instr.NextIP <= from) continue;
            if (instr.IP >= to) break;
            formatter.Format(instr, output);
            int start = (int)(instr.IP - codeVa);
            string hex = Convert.ToHexStringLower(code, start, Math.Min(instr.Length, code.Length - start));
            sb.Append($"{instr.IP:x16}  {hex,-20} {output.ToStringAndReset()}\n");
        }
        return sb.ToString().TrimEnd();
    }
}
