using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Iced.Intel;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>
/// The kernel's VMCOREINFO (kernel/crash_core.c, kernel/printk/printk.c): the lines the kernel writes at boot for crash
/// tools, SYMBOL(name)=hex run-time address, OFFSET(struct.member)=decimal, SIZE(struct)=decimal, LENGTH(array)=decimal,
/// NUMBER(name)=decimal. Kernels built without data symbols in kallsyms or without BTF still publish it (Debian's 686
/// kernels: SYMBOL(vmap_area_list), SYMBOL(prb), the printk ring's and vmap_area's offsets). It is guest data like any
/// other: unparsable lines are dropped, every value is checked where it is used, and the text is capped before it is read.
/// </summary>
public sealed class KernelVmcoreInfo
{
    /// <summary>VMCOREINFO_BYTES is one page; the note around it adds a header. Anything larger is not the kernel's.</summary>
    public const int MaxBytes = 16 << 10;
    private const int MaxLines = 1024;

    private readonly Dictionary<string, ulong> _symbols = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _offsets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _sizes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _lengths = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _numbers = new(StringComparer.Ordinal);

    private KernelVmcoreInfo(string source) => Source = source;

    /// <summary>Where the text came from: the dump's VMCOREINFO note, or the kernel's own note in its memory.</summary>
    public string Source { get; }
    public string? OsRelease { get; private set; }
    /// <summary>KERNELOFFSET=hex: the KASLR slide of the kernel image.</summary>
    public ulong? KernelOffset { get; private set; }

    public bool TryGetSymbol(string name, out ulong address) => _symbols.TryGetValue(name, out address);

    /// <summary>OFFSET(struct.member), when stated and inside [0, 1 MiB) (no kernel struct is larger).</summary>
    public bool TryGetOffset(string structName, string member, out int offset)
    {
        offset = 0;
        if (!_offsets.TryGetValue($"{structName}.{member}", out long v) || v is < 0 or >= 1 << 20) return false;
        offset = (int)v;
        return true;
    }

    /// <summary>True when VMCOREINFO states the struct's size or any of its members' offsets.</summary>
    public bool DescribesStruct(string structName) =>
        _sizes.ContainsKey(structName) || _offsets.Keys.Any(k => k.Length > structName.Length && k.StartsWith(structName, StringComparison.Ordinal) && k[structName.Length] == '.');

    public bool TryGetSize(string structName, out int size)
    {
        size = 0;
        if (!_sizes.TryGetValue(structName, out long v) || v is <= 0 or >= 1 << 20) return false;
        size = (int)v;
        return true;
    }

    public bool TryGetLength(string name, out long length) => _lengths.TryGetValue(name, out length);

    /// <summary>NUMBER(name): printed "%ld" (signed decimal) by most kernels, as 0x-hex by a few lines.</summary>
    public bool TryGetNumber(string name, out long value) => _numbers.TryGetValue(name, out value);

    public static KernelVmcoreInfo Parse(string text, string source)
    {
        var info = new KernelVmcoreInfo(source);
        int lines = 0;
        foreach (var raw in text.AsSpan(0, Math.Min(text.Length, MaxBytes)).EnumerateLines())
        {
            if (++lines > MaxLines) break;
            var line = raw.Trim();
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var key = line[..eq];
            var value = line[(eq + 1)..];
            if (key.SequenceEqual("OSRELEASE")) info.OsRelease = value.ToString();
            else if (Inner(key, "SYMBOL(") is { } sym && ulong.TryParse(value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong address))
                info._symbols.TryAdd(sym, address);
            else if (Inner(key, "OFFSET(") is { } off && Decimal(value) is { } o) info._offsets.TryAdd(off, o);
            else if (Inner(key, "SIZE(") is { } size && Decimal(value) is { } s) info._sizes.TryAdd(size, s);
            else if (Inner(key, "LENGTH(") is { } length && Decimal(value) is { } l) info._lengths.TryAdd(length, l);
            else if (Inner(key, "NUMBER(") is { } number && Number(value) is { } n) info._numbers.TryAdd(number, n);
            else if (key.SequenceEqual("KERNELOFFSET") && ulong.TryParse(value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong slide))
                info.KernelOffset = slide;
        }
        return info;
    }

    private static string? Inner(ReadOnlySpan<char> key, string prefix) =>
        key.StartsWith(prefix, StringComparison.Ordinal) && key.EndsWith(")", StringComparison.Ordinal) && key.Length > prefix.Length + 1
            ? key[prefix.Length..^1].ToString() : null;

    private static long? Decimal(ReadOnlySpan<char> value) =>
        long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? v : null;

    private static long? Number(ReadOnlySpan<char> value) =>
        value.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(value[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong h) ? (long)h : null
            : Decimal(value);

    /// <summary>
    /// The kernel's own note, found through <c>paddr_vmcoreinfo_note()</c> (a text symbol; <c>return __pa(vmcoreinfo_note)</c>):
    /// its first load from an absolute or RIP-relative address reads the pointer variable <c>vmcoreinfo_note</c>, which
    /// points to an ELF note named "VMCOREINFO". Accepted only when the note's OSRELEASE is the running kernel's release.
    /// Null (with the reason) when any step fails.
    /// </summary>
    public static KernelVmcoreInfo? FromKernelMemory(GuestReader reader, KernelSymbols symbols, string release, out string? reason)
    {
        const string Function = "paddr_vmcoreinfo_note";
        const int MaxCodeBytes = 48, MaxInstructions = 12;
        if (!symbols.TryGetAddress(Function, out ulong fn)) { reason = $"kallsyms has no {Function}"; return null; }
        var code = new byte[MaxCodeBytes];
        int n = reader.Space.Read(fn, code);
        int bitness = reader.PointerSize * 8;
        var decoder = Iced.Intel.Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, Math.Max(n, 0)), fn);
        ulong? variable = null;
        for (int i = 0; i < MaxInstructions && decoder.IP < fn + (ulong)Math.Max(n, 0); i++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid || ins.FlowControl is FlowControl.Return) break;
            if (ins.Mnemonic == Mnemonic.Mov && ins.OpCount == 2 && ins.Op0Kind == OpKind.Register && ins.Op1Kind == OpKind.Memory
                && ins.MemoryIndex == Register.None && ins.MemoryBase is Register.None or Register.RIP or Register.EIP)
            {
                variable = ins.IsIPRelativeMemoryOperand ? ins.IPRelativeMemoryAddress : bitness == 32 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64;
                break;
            }
        }
        if (variable is not { } v) { reason = $"{Function} at 0x{fn:x}: no load of vmcoreinfo_note in its first {n} bytes"; return null; }
        if (!reader.TryPointer(v, out ulong note) || !reader.IsKernelPointer(note)) { reason = $"vmcoreinfo_note at 0x{v:x} does not hold a kernel pointer"; return null; }
        // Elf_Nhdr: n_namesz, n_descsz, n_type (three u32 in both ELF classes), the name padded to 4, then the text.
        Span<byte> header = stackalloc byte[12 + 12];
        if (reader.Read(note, header) != header.Length) { reason = $"the note at 0x{note:x} is unreadable"; return null; }
        uint nameSize = BinaryPrimitives.ReadUInt32LittleEndian(header);
        uint descSize = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (nameSize != 11 || !header.Slice(12, 11).SequenceEqual("VMCOREINFO\0"u8))
        {
            reason = $"the note at 0x{note:x} is not named VMCOREINFO";
            return null;
        }
        if (descSize is 0 or > MaxBytes) { reason = $"the note at 0x{note:x} states {descSize} bytes (at most {MaxBytes})"; return null; }
        var text = new byte[descSize];
        if (reader.Read(note + 24, text) != text.Length) { reason = $"the note's {descSize} bytes at 0x{note + 24:x} are unreadable"; return null; }
        int end = Array.IndexOf(text, (byte)0);
        var info = Parse(Encoding.ASCII.GetString(text, 0, end < 0 ? text.Length : end), $"the kernel's VMCOREINFO note at 0x{note:x} (through {Function})");
        if (info.OsRelease != release)
        {
            reason = $"the note at 0x{note:x} names release '{info.OsRelease}', not the running kernel's '{release}'";
            return null;
        }
        reason = null;
        return info;
    }
}
