namespace Periscope.Linux.Kallsyms;

/// <summary>
/// The kernel's symbol table in kallsyms order (the order of the core part of <c>/proc/kallsyms</c>),
/// with lookups by name and by address. Immutable and thread-safe. A table the decoder builds keeps the names
/// compressed and expands one only when it is asked for (by index, by a name lookup's comparisons, or when listing);
/// lookup indexes are built on first use.
/// </summary>
public sealed class KernelSymbols
{
    /// <summary>Addresses at or above this value are kernel-half addresses (the 57-bit canonical split, which also
    /// covers 48-bit kernels). Symbols below it are per-CPU offsets or other small absolute values.</summary>
    internal const ulong KernelHalfStart = 0xff00_0000_0000_0000;

    private readonly ulong[] _addresses;
    private readonly KernelSymbol[]? _symbols;
    private readonly KallsymsNameIndex? _names;
    private readonly string?[]? _nameCache;
    private readonly SymbolList _all;
    private Dictionary<string, int>? _byName;
    private AddressIndex? _byAddress;

    /// <summary>Creates a table from symbols in kallsyms order.</summary>
    /// <exception cref="ArgumentNullException">A symbol has a null name.</exception>
    public KernelSymbols(IEnumerable<KernelSymbol> symbols)
    {
        ArgumentNullException.ThrowIfNull(symbols);
        _symbols = symbols.ToArray();
        _addresses = new ulong[_symbols.Length];
        for (int i = 0; i < _symbols.Length; i++)
        {
            if (_symbols[i].Name is null)
                throw new ArgumentNullException(nameof(symbols), "A kernel symbol has a null name.");
            _addresses[i] = _symbols[i].Address;
        }
        _all = new SymbolList(this);
    }

    /// <summary>A decoded table: addresses in kallsyms order and the compressed names (same count, checked by the decoder).</summary>
    internal KernelSymbols(ulong[] addresses, KallsymsNameIndex names)
    {
        _addresses = addresses;
        _names = names;
        _nameCache = new string?[addresses.Length];
        _all = new SymbolList(this);
    }

    public int Count => _addresses.Length;

    public KernelSymbol this[int i] => (uint)i < (uint)_addresses.Length
        ? Get(i)
        : throw new ArgumentOutOfRangeException(nameof(i), i, $"Symbol index must be in [0, {_addresses.Length}).");

    private KernelSymbol Get(int i) =>
        _symbols is { } s ? s[i] : new KernelSymbol(_addresses[i], _names!.Type(i), NameAt(i));

    /// <summary>Symbol <paramref name="i"/>'s name, expanded once and kept (a benign race may expand it twice).</summary>
    private string NameAt(int i) => _symbols is { } s ? s[i].Name : (_nameCache![i] ??= _names!.Name(i));

    /// <summary>How many names are held as strings: all of them for a table built from a list, and for a table the
    /// decoder built only those asked for so far (attaching and listing processes expand a few dozen).</summary>
    public int MaterialisedNameCount
    {
        get
        {
            if (_nameCache is not { } cache) return _addresses.Length;
            int n = 0;
            foreach (string? name in cache) if (name is not null) n++;
            return n;
        }
    }

    /// <summary>All symbols in kallsyms order (names are expanded as they are read).</summary>
    public IReadOnlyList<KernelSymbol> All => _all;

    /// <summary>The lowest symbol address above <paramref name="address"/> (the end of the symbol that starts
    /// there, for tables), from the address index; no names are expanded.</summary>
    public bool TryGetNextAddress(ulong address, out ulong next)
    {
        ulong[] addresses = ByAddress.Addresses;
        int lo = 0, hi = addresses.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (addresses[mid] <= address) lo = mid + 1;
            else hi = mid;
        }
        next = lo < addresses.Length ? addresses[lo] : 0;
        return lo < addresses.Length;
    }

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
        int i = IndexOf(name);
        symbol = i >= 0 ? Get(i) : default;
        return i >= 0;
    }

    private int IndexOf(string name)
    {
        if (_names is not { } names)
            return ByName.TryGetValue(name, out int i) ? i : -1;
        // Names are bytes shown as Latin-1; a character above U+00FF names no symbol.
        if (name.AsSpan().ContainsAnyExceptInRange('\0', '\u00ff'))
            return -1;
        Span<byte> bytes = name.Length <= 256 ? stackalloc byte[name.Length] : new byte[name.Length];
        for (int k = 0; k < name.Length; k++)
            bytes[k] = (byte)name[k];
        int found = names.FindBySortedNames(bytes);
        if (found >= 0 || (names.HasNameOrder && names.NameOrderLooksSorted)) return found;
        return names.FindByHash(bytes);
    }

    /// <summary>The address of the first symbol with this name.</summary>
    /// <exception cref="KeyNotFoundException">No symbol has this name; the message names it.</exception>
    public ulong GetAddress(string name)
    {
        if (TryGetAddress(name, out ulong address))
            return address;
        throw new KeyNotFoundException($"Kernel symbol '{name}' is not in kallsyms ({_addresses.Length} symbols).");
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
        symbol = Get(index.Order[found]);
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
        for (int i = 0; i < _addresses.Length; i++)
        {
            string name = NameAt(i);
            if (glob ? GlobMatch(pattern, name) : name.Contains(pattern, StringComparison.Ordinal))
                yield return Get(i);
        }
    }

    /// <summary>Whether <paramref name="name"/> matches <paramref name="pattern"/> the way <see cref="Match"/> matches:
    /// a glob over the whole name when the pattern has <c>*</c> or <c>?</c>, an ordinal substring otherwise.</summary>
    public static bool NameMatches(string pattern, string name)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(name);
        return pattern.AsSpan().IndexOfAny('*', '?') >= 0 ? GlobMatch(pattern, name) : name.Contains(pattern, StringComparison.Ordinal);
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
        var symbols = _symbols!;
        var map = new Dictionary<string, int>(symbols.Length, StringComparer.Ordinal);
        for (int i = 0; i < symbols.Length; i++)
            map.TryAdd(symbols[i].Name, i);
        return map;
    }

    private AddressIndex BuildAddressIndex()
    {
        int n = _addresses.Length;
        var addresses = (ulong[])_addresses.Clone();
        var order = new int[n];
        for (int i = 0; i < n; i++)
            order[i] = i;
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

    /// <summary>The table as a read-only list; indexing expands one name.</summary>
    private sealed class SymbolList(KernelSymbols owner) : IReadOnlyList<KernelSymbol>
    {
        public KernelSymbol this[int index] => owner[index];

        public int Count => owner.Count;

        public IEnumerator<KernelSymbol> GetEnumerator()
        {
            for (int i = 0; i < owner.Count; i++)
                yield return owner.Get(i);
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
