using System.Buffers.Binary;
using System.Text;
using Iced.Intel;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Integrity.Verification;

/// <summary>
/// What the kernel knows about its own legitimate text changes: jump-label sites (from __jump_table) and loaded
/// modules (for ftrace trampoline owners); plus naming and disassembly of addresses.
/// </summary>
public sealed class CodeContext
{
    private const int JumpEntrySize = 16;
    private const int MaxJumpEntries = 1 << 20;
    private readonly LinuxKernel _kernel;
    private readonly Dictionary<ulong, ulong> _jumpSites = [];
    private readonly HashSet<ulong> _staticCallSites = [];
    private readonly IReadOnlyList<KernelModule> _modules;
    private readonly ulong _textStart, _textEnd;

    public CodeContext(LinuxKernel kernel)
    {
        _kernel = kernel;
        _modules = kernel.Modules;
        // [_stext, _etext); an empty range when the symbols are missing, so nothing counts as kernel text.
        if (kernel.Symbols.TryGetAddress("_stext", out ulong s) && kernel.Symbols.TryGetAddress("_etext", out ulong e)) (_textStart, _textEnd) = (s, e);
        LoadJumpTable();
        LoadStaticCallSites();
    }

    /// <summary>Inline static-call sites: {s32 addr, s32 key} relative entries between __start/__stop_static_call_sites.
    /// static_call_update() rewrites the call at each site at run time (tracepoints, preempt=dynamic, perf).</summary>
    private void LoadStaticCallSites()
    {
        var s = _kernel.Symbols;
        if (!s.TryGetAddress("__start_static_call_sites", out ulong start) || !s.TryGetAddress("__stop_static_call_sites", out ulong stop) || stop <= start) return;
        ulong count = Math.Min((stop - start) / 8, MaxJumpEntries);
        var buffer = new byte[count * 8];
        if (_kernel.KernelSpace.Read(start, buffer) != buffer.Length) return;
        for (ulong i = 0; i < count; i++)
            _staticCallSites.Add(start + i * 8 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan((int)(i * 8))));
    }

    public bool TryGetStaticCallSite(ulong from, ulong to, out ulong site)
    {
        for (ulong c = from >= 5 ? from - 4 : 0; c <= from; c++)
            if (_staticCallSites.Contains(c) && to <= c + 5) { site = c; return true; }
        site = 0;
        return false;
    }

    /// <summary>The symbol holding <paramref name="va"/>, if any.</summary>
    public string? SymbolName(ulong va) => _kernel.Symbols.TryFindContaining(va, out var sym, out ulong off) && off < 1 << 20 ? sym.Name : null;

    /// <summary>Code a legitimate branch may go to: kernel text or a listed module.</summary>
    public bool IsKnownCode(ulong va) => ModuleAt(va) is not null || InKernelText(va);

    public bool InKernelText(ulong va) => va >= _textStart && va < _textEnd;

    /// <summary>Jump-label code address → jump target, from the kernel's own __jump_table.</summary>
    public IReadOnlyDictionary<ulong, ulong> JumpSites => _jumpSites;

    /// <summary>x86-64 uses relative jump entries: {s32 code, s32 target, long key}; code and target are relative to
    /// their own fields.</summary>
    private void LoadJumpTable()
    {
        var s = _kernel.Symbols;
        if (!s.TryGetAddress("__start___jump_table", out ulong start) || !s.TryGetAddress("__stop___jump_table", out ulong stop) || stop <= start) return;
        ulong count = Math.Min((stop - start) / JumpEntrySize, MaxJumpEntries);
        var buffer = new byte[count * JumpEntrySize];
        if (_kernel.KernelSpace.Read(start, buffer) != buffer.Length) return;
        for (ulong i = 0; i < count; i++)
        {
            ulong entry = start + i * JumpEntrySize;
            var e = buffer.AsSpan((int)(i * JumpEntrySize));
            ulong code = entry + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(e);
            ulong target = entry + 4 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(e[4..]);
            _jumpSites.TryAdd(code, target);
        }
    }

    public bool TryGetJumpSite(ulong from, ulong to, out ulong site, out ulong target)
    {
        // A jump-label site is 2 or 5 bytes long; find one that covers the whole change.
        for (ulong c = from >= 5 ? from - 4 : 0; c <= from; c++)
        {
            if (_jumpSites.TryGetValue(c, out target) && to <= c + 5) { site = c; return true; }
        }
        site = target = 0;
        return false;
    }

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

    /// <summary>If the bytes at <paramref name="site"/> are a CALL or JMP rel32, its target.</summary>
    public static ulong? BranchTarget(ReadOnlySpan<byte> bytes, ulong site)
    {
        if (bytes.Length >= 5 && bytes[0] is 0xe8 or 0xe9) return site + 5 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(bytes[1..]);
        if (bytes.Length >= 2 && bytes[0] == 0xeb) return site + 2 + (ulong)(long)(sbyte)bytes[1];
        return null;
    }

    public static bool IsNop(ReadOnlySpan<byte> bytes) =>
        bytes.StartsWith((ReadOnlySpan<byte>)[0x0f, 0x1f, 0x44, 0x00, 0x00]) || bytes.StartsWith((ReadOnlySpan<byte>)[0x66, 0x90]);

    /// <summary>
    /// Who owns an ftrace call target: a listed module, the kernel's own ftrace entry code, or (for dynamic trampolines,
    /// which belong to no module) the module holding the ftrace_ops->func that the trampoline's data points at.
    /// Null means no owner can be found: a hidden or foreign hook.
    /// </summary>
    public string? FtraceOwner(ulong target)
    {
        if (ModuleAt(target) is { } m) return $"module {m.Name}";
        if (_kernel.Symbols.TryFindContaining(target, out var sym, out ulong off) && off < 0x1000 && sym.Type is 'T' or 't' && InKernelText(target))
            return $"kernel ({sym.Name})";
        var tramp = new byte[1024];
        int n = _kernel.KernelSpace.Read(target, tramp);
        for (int i = 0; i + 8 <= n; i++)
        {
            ulong p = BinaryPrimitives.ReadUInt64LittleEndian(tramp.AsSpan(i));
            if (!_kernel.Reader.IsKernelPointer(p)) continue;
            if (ModuleAt(p) is { } direct) return $"module {direct.Name} (through a trampoline)";
            if (_kernel.Reader.TryPointer(p, out ulong func) && ModuleAt(func) is { } viaOps) return $"module {viaOps.Name} (ftrace_ops at 0x{p:x})";
        }
        return null;
    }
}
