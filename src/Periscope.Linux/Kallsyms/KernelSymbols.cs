using System.Collections.ObjectModel;

namespace Periscope.Linux.Kallsyms;

/// <summary>
/// The kernel's symbol table in kallsyms order (the order of the core part of <c>/proc/kallsyms</c>),
/// with lookups by name and by address. Immutable; the lookup indexes are built on first use and are thread-safe.
/// </summary>
public sealed class KernelSymbols
{
    /// <summary>Addresses at or above this value are kernel-half addresses (the 57-bit canonical split, which also
    /// covers 48-bit kernels). Symbols below it are per-CPU offsets or other small absolute values.</summary>
    internal const ulong KernelHalfStart = 0xff00_0000_0000_0000;

    private readonly KernelSymbol[] _symbols;
    private readonly ReadOnlyCollection<KernelSymbol> _all;
    private Dictionary<string, int>? _byName;
    private AddressIndex? _byAddress;

    /// <summary>Creates a table from symbols in kallsyms order.</summary>
    /// <exception cref="ArgumentNullException">A symbol has a null name.</exception>
    public KernelSymbols(IEnumerable<KernelSymbol> symbols)
    {
        ArgumentNullException.ThrowIfNull(symbols);
        _symbols = symbols.ToArray();
        foreach (var s in _symbols)
        {
            if (s.Name is null)
                throw new ArgumentNullException(nameof(symbols), "A kernel symbol has a null name.");
        }
        _all = Array.AsReadOnly(_symbols);
    }

    /// <summary>Takes ownership of an array the decoder built (names are known to be non-null).</summary>
    internal KernelSymbols(KernelSymbol[] symbols, bool _)
    {
        _symbols = symbols;
        _all = Array.AsReadOnly(_symbols);
    }

    public int Count => _symbols.Length;

    public KernelSymbol this[int i] => (uint)i < (uint)_symbols.Length
        ? _symbols[i]
        : throw new ArgumentOutOfRangeException(nameof(i), i, $"Symbol index must be in [0, {_symbols.Length}).");

    /// <summary>All symbols in kallsyms order.</summary>
    public IReadOnlyList<KernelSymbol> All => _all;

    /// <summary>The address of the first symbol (in kallsyms order) with exactly this name.</summary>
    public bool TryGetAddress(string name, out ulong address)
    {
        if (TryGetSymbol(name, out var symbol))
        {
            address = symbol.Address;
            return true;
        }
        address = 0;
        return false;
    }

    /// <summary>The first symbol (in kallsyms order) with exactly this name.</summary>
    public bool TryGetSymbol(string name, out KernelSymbol symbol)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (ByName.TryGetValue(name, out int i))
        {
            symbol = _symbols[i];
            return true;
        }
        symbol = default;
        return false;
    }

    /// <summary>The address of the first symbol with this name.</summary>
    /// <exception cref="KeyNotFoundException">No symbol has this name; the message names it.</exception>
    public ulong GetAddress(string name)
    {
        if (TryGetAddress(name, out ulong address))
            return address;
        throw new KeyNotFoundException($"Kernel symbol '{name}' is not in kallsyms ({_symbols.Length} symbols).");
    }

    /// <summary>
    /// Finds the symbol at or below <paramref name="address"/> (the first one in kallsyms order among aliases).
    /// Symbols form two groups, kernel-half addresses and small absolute ones (per-CPU offsets); the highest
    /// symbol of each group is its end marker (<c>_end</c>, <c>__per_cpu_end</c>) and contains only its own
    /// address. So module, direct-map and user addresses do not resolve, and the groups never describe each other.
    /// </summary>
    public bool TryFindContaining(ulong address, out KernelSymbol symbol, out ulong offset)
    {
        var index = ByAddress;
        ulong[] addresses = index.Addresses;
        int lo = 0, hi = addresses.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (addresses[mid] <= address) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        if (found < 0 || IsKernelHalf(addresses[found]) != IsKernelHalf(address)
            || (addresses[found] != address
                && (found == addresses.Length - 1 || IsKernelHalf(addresses[found + 1]) != IsKernelHalf(address))))
        {
            symbol = default;
            offset = 0;
            return false;
        }
        ulong start = addresses[found];
        while (found > 0 && addresses[found - 1] == start)
            found--;
        symbol = _symbols[index.Order[found]];
        offset = address - start;
        return true;
    }

    private static bool IsKernelHalf(ulong address) => address >= KernelHalfStart;

    /// <summary><c>name+0x1a</c>, just <c>name</c> at offset 0, or <c>0x…</c> when no symbol contains the address.</summary>
    public string Describe(ulong address)
    {
        if (!TryFindContaining(address, out var symbol, out ulong offset))
            return $"0x{address:x}";
        return offset == 0 ? symbol.Name : $"{symbol.Name}+0x{offset:x}";
    }

    /// <summary>
    /// Symbols whose name matches, in kallsyms order. A pattern with <c>*</c> or <c>?</c> is a glob matched
    /// against the whole name; any other pattern is an ordinal substring.
    /// </summary>
    public IEnumerable<KernelSymbol> Match(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        bool glob = pattern.AsSpan().IndexOfAny('*', '?') >= 0;
        return MatchIterator(pattern, glob);
    }

    private IEnumerable<KernelSymbol> MatchIterator(string pattern, bool glob)
    {
        foreach (var s in _symbols)
        {
            if (glob ? GlobMatch(pattern, s.Name) : s.Name.Contains(pattern, StringComparison.Ordinal))
                yield return s;
        }
    }

    /// <summary>Glob with <c>*</c> (any run) and <c>?</c> (one character); linear backtracking, no recursion.</summary>
    internal static bool GlobMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, resume = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                resume = t;
            }
            else if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                p++;
                t++;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++resume;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
            p++;
        return p == pattern.Length;
    }

    private Dictionary<string, int> ByName =>
        _byName ?? Interlocked.CompareExchange(ref _byName, BuildNameIndex(), null) ?? _byName!;

    private AddressIndex ByAddress =>
        _byAddress ?? Interlocked.CompareExchange(ref _byAddress, BuildAddressIndex(), null) ?? _byAddress!;

    private Dictionary<string, int> BuildNameIndex()
    {
        var map = new Dictionary<string, int>(_symbols.Length, StringComparer.Ordinal);
        for (int i = 0; i < _symbols.Length; i++)
            map.TryAdd(_symbols[i].Name, i);
        return map;
    }

    private AddressIndex BuildAddressIndex()
    {
        int n = _symbols.Length;
        var addresses = new ulong[n];
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            addresses[i] = _symbols[i].Address;
            order[i] = i;
        }
        // kallsyms order is address order already (apart from rare exceptions), so check before sorting.
        bool sorted = true;
        for (int i = 1; i < n && sorted; i++)
            sorted = addresses[i - 1] <= addresses[i];
        if (!sorted)
        {
            // Sort by (address, kallsyms index): a stable order, so aliases keep their kallsyms order.
            var keys = new (ulong Address, int Index)[n];
            for (int i = 0; i < n; i++)
                keys[i] = (addresses[i], i);
            Array.Sort(keys);
            for (int i = 0; i < n; i++)
            {
                addresses[i] = keys[i].Address;
                order[i] = keys[i].Index;
            }
        }
        return new AddressIndex(addresses, order);
    }

    private sealed record AddressIndex(ulong[] Addresses, int[] Order);
}
