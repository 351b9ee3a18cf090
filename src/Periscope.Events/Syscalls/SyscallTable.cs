using Periscope.Linux;
using Periscope.Memory;

namespace Periscope.Events.Syscalls;

/// <summary>
/// Syscall names as this guest dispatches them: the handler its own x64_sys_call reaches for each number (6.9+), or
/// each entry of its sys_call_table, resolved through kallsyms ("__x64_sys_openat" → "openat"). Nothing is shipped per kernel version; a number whose entry is
/// sys_ni_syscall (or outside the table) has no name.
/// </summary>
public sealed class SyscallTable
{
    private readonly string?[] _names;
    private readonly Dictionary<string, int> _numbers = new(StringComparer.Ordinal);

    private SyscallTable(string?[] names, string source)
    {
        _names = names;
        Source = source;
        for (int i = 0; i < names.Length; i++)
            if (names[i] is { } n) _numbers.TryAdd(n, i);
    }

    /// <summary>Where the names came from, for the user ("sys_call_table at 0x..., 451 entries").</summary>
    public string Source { get; }
    public int Count => _names.Length;

    public string? Name(long number) => number >= 0 && number < _names.Length ? _names[number] : null;
    public int? Number(string name) => _numbers.TryGetValue(name, out int n) ? n : null;

    /// <summary>
    /// The names as the guest dispatches: through x64_sys_call's switch when the kernel has one (6.9+: its
    /// sys_call_table is then only kept for tracers, not used to dispatch), else through sys_call_table.
    /// </summary>
    public static SyscallTable Read(LinuxKernel kernel, IntrospectionLimits limits)
    {
        var symbols = kernel.Symbols;
        bool haveTable = symbols.TryGetAddress("sys_call_table", out ulong table);
        if (symbols.TryGetAddress("x64_sys_call", out ulong dispatch))
            return FromDispatch(kernel, limits, dispatch, haveTable ? TableLength(kernel, table) : 0);
        if (!haveTable)
            throw new InvalidOperationException("the guest's kallsyms has neither x64_sys_call nor sys_call_table: cannot name its syscalls");
        ulong length = TableLength(kernel, table);
        if (length == 0) throw new InvalidOperationException($"sys_call_table at 0x{table:x}: cannot tell its length from kallsyms");
        int count = (int)Math.Min(length, (ulong)limits.MaxSyscallTableEntries);
        var names = new string?[count];
        for (int i = 0; i < count; i++)
        {
            if (!kernel.KernelSpace.TryReadUInt64(table + (ulong)i * 8, out ulong target)) continue;
            if (!symbols.TryFindContaining(target, out var symbol, out ulong offset) || offset != 0) continue;
            names[i] = SyscallName(symbol.Name);
        }
        return new SyscallTable(names, $"sys_call_table at 0x{table:x}, {count} entries{(length > (ulong)count ? $" (capped from {length} by MaxSyscallTableEntries)" : "")}");
    }

    /// <summary>The table's length is where the next symbol starts (0: unknown).</summary>
    private static ulong TableLength(LinuxKernel kernel, ulong table)
        => kernel.Symbols.TryGetNextAddress(table, out ulong next) && next > table ? (next - table) / 8 : 0;

    /// <summary>
    /// Follows x64_sys_call's compare tree for every number (up to sys_call_table's length when there is one, else
    /// MaxSyscallTableEntries); each handler reached is named through kallsyms.
    /// </summary>
    private static SyscallTable FromDispatch(LinuxKernel kernel, IntrospectionLimits limits, ulong dispatch, ulong tableLength)
    {
        var symbols = kernel.Symbols;
        ulong length = symbols.TryGetNextAddress(dispatch, out ulong next) && next > dispatch ? next - dispatch : 0;
        if (length == 0) throw new InvalidOperationException($"x64_sys_call at 0x{dispatch:x}: cannot tell its length from kallsyms");
        var code = new byte[(int)Math.Min(length, (ulong)limits.MaxSyscallDispatchBytes)];
        int got = kernel.KernelSpace.Read(dispatch, code);
        if (got < code.Length) throw new InvalidOperationException($"x64_sys_call at 0x{dispatch:x}: only {got} of its {code.Length} bytes are readable");
        // kallsyms names one symbol per address, and a handler has aliases (6.1: __x64_sys_getppid, __ia32_sys_getppid
        // and __do_sys_getppid are one function): any syscall-wrapper name at the start of a function is a handler.
        bool IsHandler(ulong target) => symbols.TryFindContaining(target, out var s, out ulong offset) && offset == 0 && IsSyscallSymbol(s.Name);
        int count = (int)Math.Min(tableLength == 0 ? (ulong)limits.MaxSyscallTableEntries : tableLength, (ulong)limits.MaxSyscallTableEntries);
        var names = new string?[count];
        int named = 0, last = -1;
        for (int nr = 0; nr < count; nr++)
        {
            if (SyscallDispatchDecoder.Target(code, dispatch, (uint)nr, IsHandler, limits.MaxSyscallDispatchSteps, out _) is not { } target) continue;
            symbols.TryFindContaining(target, out var symbol, out _);
            names[nr] = SyscallName(symbol.Name);
            if (names[nr] is not null) { named++; last = nr; }
        }
        if (named == 0) throw new InvalidOperationException($"x64_sys_call at 0x{dispatch:x}: no syscall handler reached through its code");
        if (tableLength == 0) Array.Resize(ref names, last + 1);   // numbers past the last handler are the default case
        return new SyscallTable(names, $"x64_sys_call at 0x{dispatch:x} ({code.Length} bytes followed), {named} of {names.Length} numbers reach a handler");
    }

    private static readonly string[] SyscallPrefixes = ["__x64_sys_", "__ia32_sys_", "__do_sys_", "__se_sys_", "__sys_", "sys_"];

    internal static bool IsSyscallSymbol(string symbol)
    {
        foreach (string prefix in SyscallPrefixes)
            if (symbol.StartsWith(prefix, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>"__x64_sys_openat" → "openat" (kallsyms may name the same address __do_sys_X); null for sys_ni_syscall.</summary>
    internal static string? SyscallName(string symbol)
    {
        foreach (string prefix in SyscallPrefixes)
        {
            if (!symbol.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string name = symbol[prefix.Length..];
            return name == "ni_syscall" ? null : name;
        }
        return symbol;   // not a syscall wrapper: show what the table points at (a hook shows up by its own name)
    }
}
