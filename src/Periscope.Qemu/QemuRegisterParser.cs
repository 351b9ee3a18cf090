using System.Globalization;
using System.Text.RegularExpressions;
using Periscope.Memory;

namespace Periscope.Qemu;

/// <summary>
/// Parses HMP "info registers" text (x86-64, or i386 with EAX…EIP and 8-digit segment bases) into <see cref="CpuState"/>: general registers, segment bases,
/// descriptor tables and control registers. One block per "CPU#n" header.
/// </summary>
public static partial class QemuRegisterParser
{
    [GeneratedRegex(@"\b(?<name>[A-Z][A-Z0-9]*)\s*=\s*(?<value>[0-9a-fA-F]+)")]
    private static partial Regex Pair();

    [GeneratedRegex(@"^(?<seg>ES|CS|SS|DS|FS|GS|LDT|TR)\s*=(?<sel>[0-9a-fA-F]{4}) (?<base>[0-9a-fA-F]{8}(?:[0-9a-fA-F]{8})?) (?<limit>[0-9a-fA-F]{8}) (?<flags>[0-9a-fA-F]{8})", RegexOptions.Multiline)]
    private static partial Regex Segment();

    [GeneratedRegex(@"^(?<tbl>GDT|IDT)=\s+(?<base>[0-9a-fA-F]{8}(?:[0-9a-fA-F]{8})?) (?<limit>[0-9a-fA-F]{8})", RegexOptions.Multiline)]
    private static partial Regex Table();

    public static IReadOnlyList<CpuState> Parse(string text)
    {
        text = text.Replace("\r", "");
        var blocks = Regex.Split(text, @"^CPU#(?=\d)", RegexOptions.Multiline).Where(b => b.Contains("RIP=") || b.Contains("EIP=")).ToList();
        var result = new List<CpuState>();
        foreach (var block in blocks)
        {
            int index = int.TryParse(new string(block.TakeWhile(char.IsDigit).ToArray()), out int i) ? i : result.Count;
            var regs = new Dictionary<string, ulong>();
            foreach (Match m in Pair().Matches(block))
            {
                string name = m.Groups["name"].Value;
                if (!regs.ContainsKey(name) && ulong.TryParse(m.Groups["value"].Value, NumberStyles.HexNumber, null, out ulong v)) regs[name] = v;
            }
            var segs = new Dictionary<string, SegmentState>();
            foreach (Match m in Segment().Matches(block))
                segs[m.Groups["seg"].Value] = new SegmentState(Hex32(m, "sel"), Hex32(m, "limit"), Hex32(m, "flags"), Hex64(m, "base"));
            foreach (Match m in Table().Matches(block))
                segs[m.Groups["tbl"].Value] = new SegmentState(0, Hex32(m, "limit"), 0, Hex64(m, "base"));
            if (!regs.ContainsKey("RIP") && !regs.ContainsKey("EIP")) continue;
            // An i386 guest (or qemu-system-i386) prints EAX…EIP and EFL; RAX…RIP otherwise.
            ulong R(string n) => regs.TryGetValue(n, out ulong v) ? v : n[0] == 'R' && regs.TryGetValue("E" + n[1..], out ulong e) ? e : 0;
            ulong? Opt(string n) => regs.TryGetValue(n, out ulong v) ? v : null;
            SegmentState? S(string n) => segs.TryGetValue(n, out var s) ? s : null;
            result.Add(new CpuState
            {
                Index = index,
                Rax = R("RAX"), Rbx = R("RBX"), Rcx = R("RCX"), Rdx = R("RDX"), Rsi = R("RSI"), Rdi = R("RDI"), Rbp = R("RBP"), Rsp = R("RSP"),
                R8 = R("R8"), R9 = R("R9"), R10 = R("R10"), R11 = R("R11"), R12 = R("R12"), R13 = R("R13"), R14 = R("R14"), R15 = R("R15"),
                Rip = R("RIP"), Rflags = R("RFL"),
                Cs = S("CS"), Fs = S("FS"), Gs = S("GS"), Gdt = S("GDT"), Idt = S("IDT"),
                Cr0 = Opt("CR0"), Cr2 = Opt("CR2"), Cr3 = Opt("CR3"), Cr4 = Opt("CR4"),
                Source = "QMP info registers",
            });
        }
        return result;
    }

    private static uint Hex32(Match m, string g) => uint.Parse(m.Groups[g].Value, NumberStyles.HexNumber);
    private static ulong Hex64(Match m, string g) => ulong.Parse(m.Groups[g].Value, NumberStyles.HexNumber);
}
