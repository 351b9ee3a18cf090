using Iced.Intel;

namespace Periscope.Linux.Inference;

/// <summary>
/// Where struct module keeps { int num_static_call_sites; struct static_call_site *static_call_sites; }, read from the
/// code that uses them: kernel/static_call_inline.c's static_call_add_module() and static_call_del_module() (static,
/// usually inlined into static_call_module_notify) begin with <c>start = mod->static_call_sites; stop = start +
/// mod->num_static_call_sites</c>: a pointer-sized load at some displacement d from the module pointer and a 32-bit load
/// at d - 4 or d - 8 (the int, then the padded pointer). Needed when no loaded module has inline static calls (then the
/// data alone cannot tell the NULL/0 pair from any other). Returns every such pair; the caller checks them against the data.
/// </summary>
public static class StaticCallSitesCode
{
    /// <summary>The functions searched, in order: whichever kallsyms has.</summary>
    public static readonly string[] Functions = ["static_call_add_module", "static_call_del_module", "static_call_module_notify"];

    /// <summary>(pointer offset, count offset) pairs loaded through one base register in <paramref name="code"/> (x86-64).</summary>
    public static List<(int Pointer, int Count)> Pairs(byte[] code, ulong ip, int maxOffset)
    {
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(code), ip);
        var pointers = new HashSet<(Register, int)>();
        var counts = new HashSet<(Register, int)>();
        while (decoder.IP < ip + (ulong)code.Length)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) break;
            if (ins.OpCount != 2 || ins.Op0Kind != OpKind.Register || ins.Op1Kind != OpKind.Memory) continue;
            if (ins.MemoryBase is Register.None or Register.RSP or Register.RIP || ins.MemoryIndex != Register.None) continue;
            long d = (long)ins.MemoryDisplacement64;
            if (d <= 0 || d >= maxOffset) continue;
            if (ins.Mnemonic == Mnemonic.Mov && ins.MemorySize == MemorySize.UInt64) pointers.Add((ins.MemoryBase, (int)d));
            else if (ins.Mnemonic is Mnemonic.Movsxd or Mnemonic.Mov && ins.MemorySize is MemorySize.Int32 or MemorySize.UInt32 or MemorySize.DwordOffset) counts.Add((ins.MemoryBase, (int)d));
        }
        var pairs = new List<(int, int)>();
        foreach (var (reg, p) in pointers)
            foreach (int gap in (ReadOnlySpan<int>)[4, 8])
                if (counts.Contains((reg, p - gap))) { pairs.Add((p, p - gap)); break; }
        return [.. pairs.Distinct()];
    }
}
