using Periscope.Linux;
using Periscope.Memory;

namespace Periscope.Events.Syscalls;

/// <summary>
/// Syscall names as this guest dispatches them: each entry of the kernel's own sys_call_table resolved through
/// kallsyms ("__x64_sys_openat" → "openat"). Nothing is shipped per kernel version; a number whose entry is
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

    public static SyscallTable Read(LinuxKernel kernel, IntrospectionLimits limits)
    {
        var symbols = kernel.Symbols;
        if (!symbols.TryGetAddress("sys_call_table", out ulong table))
            throw new InvalidOperationException("the guest's kallsyms has no sys_call_table: cannot name its syscalls");
        // The table's length is where the next symbol starts; capped before anything is read.
        ulong length = symbols.TryGetNextAddress(table, out ulong next) && next > table ? (next - table) / 8 : 0;
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

    /// <summary>"__x64_sys_openat" → "openat" (kallsyms may name the same address __do_sys_X); null for sys_ni_syscall.</summary>
    internal static string? SyscallName(string symbol)
    {
        foreach (string prefix in (ReadOnlySpan<string>)["__x64_sys_", "__do_sys_", "__se_sys_", "__sys_", "sys_"])
        {
            if (!symbol.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string name = symbol[prefix.Length..];
            return name == "ni_syscall" ? null : name;
        }
        return symbol;   // not a syscall wrapper: show what the table points at (a hook shows up by its own name)
    }
}
