using System.Buffers;
using System.Runtime.CompilerServices;

namespace Periscope.Linux.Kallsyms;

/// <summary>
/// The kallsyms names kept compressed, as the kernel keeps them, and expanded one at a time on demand: attaching no
/// longer materialises ~100,000 strings to look up the dozen symbols discovery needs. Built once from a validated
/// table (every entry's length, expansion size and marker checked), so no method here can fail or read out of range.
/// </summary>
/// <remarks>
/// Lookups by name use <c>kallsyms_seqs_of_names</c> when the kernel has it (names sorted as scripts/kallsyms.c sorts
/// them: bytes after the type letter, unsigned, then address, then kallsyms order) — the same binary search
/// <c>kallsyms_lookup_name</c> does. A hit is always confirmed by an exact comparison, so a corrupted order can never
/// return a wrong symbol. A miss is believed when the order is sorted at a sample of adjacent pairs
/// (<see cref="NameOrderLooksSorted"/>); otherwise it is re-checked through a hash index of all names (built once,
/// without allocating strings), so a scrambled order costs time, not answers.
/// </remarks>
internal sealed class KallsymsNameIndex
{
    private readonly byte[] _names;
    private readonly int[] _entryStart;
    private readonly ushort[] _entryLength;
    private readonly byte[] _tokenBytes;
    private readonly int[] _tokenStarts;
    private readonly int[]? _byName;
    private HashIndex? _byHash;

    /// <param name="names">The compressed entries' token bytes (headers included; entries are located by the arrays).</param>
    /// <param name="entryStart">For each symbol, where its token bytes start in <paramref name="names"/>.</param>
    /// <param name="entryLength">For each symbol, how many token bytes it has (≥ 1, validated to expand within limits).</param>
    /// <param name="byName">kallsyms_seqs_of_names as symbol indexes (a validated permutation), or null.</param>
    public KallsymsNameIndex(byte[] names, int[] entryStart, ushort[] entryLength, KallsymsTokenTable tokens, int[]? byName)
    {
        _names = names;
        _entryStart = entryStart;
        _entryLength = entryLength;
        _tokenBytes = tokens.Bytes;
        _tokenStarts = tokens.Starts;
        _byName = byName;
    }

    public int Count => _entryStart.Length;

    public bool HasNameOrder => _byName is not null;

    private ReadOnlySpan<byte> Tokens(int i) => _names.AsSpan(_entryStart[i], _entryLength[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadOnlySpan<byte> Expansion(byte token)
    {
        int start = _tokenStarts[token];
        return _tokenBytes.AsSpan(start, _tokenStarts[token + 1] - start);
    }

    /// <summary>The nm-style type letter: the first expanded byte.</summary>
    public char Type(int i)
    {
        foreach (byte t in Tokens(i))
        {
            var e = Expansion(t);
            if (!e.IsEmpty) return (char)e[0];
        }
        return '?'; // unreachable for a validated table: every entry expands to at least its type letter
    }

    /// <summary>Bytes of the expansion including the type letter.</summary>
    private int ExpandedLength(int i)
    {
        int size = 0;
        foreach (byte t in Tokens(i))
            size += _tokenStarts[t + 1] - _tokenStarts[t];
        return size;
    }

    /// <summary>The name (without the type letter), Latin-1 as /proc/kallsyms prints its bytes.</summary>
    public string Name(int i)
    {
        int length = ExpandedLength(i) - 1;
        if (length <= 0) return "";
        return string.Create(length, (this, i), static (chars, state) =>
        {
            var (self, index) = state;
            int skip = 1, at = 0;
            foreach (byte t in self.Tokens(index))
            {
                var e = self.Expansion(t);
                if (skip > 0 && !e.IsEmpty) { e = e[1..]; skip = 0; }
                foreach (byte b in e) chars[at++] = (char)b;
            }
        });
    }

    /// <summary>Ordinal (unsigned byte, strcmp) comparison of symbol <paramref name="i"/>'s name with <paramref name="name"/>.</summary>
    public int CompareName(int i, ReadOnlySpan<byte> name)
    {
        bool skip = true;
        int at = 0;
        foreach (byte t in Tokens(i))
        {
            var e = Expansion(t);
            if (skip && !e.IsEmpty) { e = e[1..]; skip = false; }
            int common = Math.Min(e.Length, name.Length - at);
            int c = e[..common].SequenceCompareTo(name.Slice(at, common));
            if (c != 0) return c;
            if (common < e.Length) return 1; // the symbol's name is longer
            at += common;
        }
        return at == name.Length ? 0 : -1;
    }

    /// <summary>FNV-1a over the name's bytes (without the type letter): the hash index key, computed without a string.</summary>
    public ulong HashName(int i)
    {
        ulong h = 0xcbf29ce484222325;
        bool skip = true;
        foreach (byte t in Tokens(i))
        {
            var e = Expansion(t);
            if (skip && !e.IsEmpty) { e = e[1..]; skip = false; }
            foreach (byte b in e) h = (h ^ b) * 0x100000001b3;
        }
        return h;
    }

    public static ulong Hash(ReadOnlySpan<byte> name)
    {
        ulong h = 0xcbf29ce484222325;
        foreach (byte b in name) h = (h ^ b) * 0x100000001b3;
        return h;
    }

    /// <summary>The first symbol in kallsyms order named <paramref name="name"/>, by binary search over
    /// seqs_of_names; -1 when absent or when the kernel has no name order.</summary>
    public int FindBySortedNames(ReadOnlySpan<byte> name)
    {
        if (_byName is not { } order) return -1;
        int lo = 0, hi = order.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (CompareName(order[mid], name) < 0) lo = mid + 1;
            else hi = mid;
        }
        int best = -1;
        for (int p = lo; p < order.Length && CompareName(order[p], name) == 0; p++)
            if (best < 0 || order[p] < best) best = order[p];
        return best;
    }

    /// <summary>Adjacent pairs of seqs_of_names checked before a miss of the binary search is believed.</summary>
    private const int SampledPairs = 1_024;

    private int _orderState; // 0 not checked yet, 1 sorted at every sampled pair, -1 not sorted

    /// <summary>
    /// Whether seqs_of_names is in name order at 1,024 evenly spaced adjacent pairs (checked once, on the first miss).
    /// When it is, a binary-search miss is an answer (the kernel's own kallsyms_lookup_name trusts this order fully);
    /// when it is not, misses go to the hash index. Names Periscope looks up and the kernel does not have
    /// (VMCOREINFO's swapper_pg_dir on x86-64, optional variables) so cost no index of every name.
    /// </summary>
    public bool NameOrderLooksSorted
    {
        get
        {
            if (_orderState == 0) _orderState = SampleOrder() ? 1 : -1;
            return _orderState > 0;
        }
    }

    private bool SampleOrder()
    {
        if (_byName is not { } order) return false;
        int pairs = Math.Min(SampledPairs, order.Length - 1);
        for (int k = 0; k < pairs; k++)
        {
            int p = (int)((long)k * (order.Length - 1) / pairs);
            int a = order[p], b = order[p + 1];
            byte[] name = ArrayPool<byte>.Shared.Rent(Math.Max(1, ExpandedLength(a)));
            try
            {
                int length = ExpandName(a, name);
                if (CompareName(b, name.AsSpan(0, length)) < 0) return false;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(name);
            }
        }
        return true;
    }

    /// <summary>Writes symbol <paramref name="i"/>'s name (without the type letter) into <paramref name="into"/>,
    /// which holds at least <see cref="ExpandedLength"/> bytes; returns its length.</summary>
    private int ExpandName(int i, Span<byte> into)
    {
        bool skip = true;
        int at = 0;
        foreach (byte t in Tokens(i))
        {
            var e = Expansion(t);
            if (skip && !e.IsEmpty) { e = e[1..]; skip = false; }
            e.CopyTo(into[at..]);
            at += e.Length;
        }
        return at;
    }

    /// <summary>The first symbol in kallsyms order named <paramref name="name"/>, through a hash index of all names
    /// (built on first use, O(n) expansions, no strings); -1 when absent.</summary>
    public int FindByHash(ReadOnlySpan<byte> name)
    {
        var index = _byHash ?? Interlocked.CompareExchange(ref _byHash, BuildHashIndex(), null) ?? _byHash!;
        ulong h = Hash(name);
        ulong[] hashes = index.Hashes;
        int lo = 0, hi = hashes.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (hashes[mid] < h) lo = mid + 1;
            else hi = mid;
        }
        int best = -1;
        for (int p = lo; p < hashes.Length && hashes[p] == h; p++)
        {
            int candidate = index.Order[p];
            if ((best < 0 || candidate < best) && CompareName(candidate, name) == 0) best = candidate;
        }
        return best;
    }

    private HashIndex BuildHashIndex()
    {
        int n = Count;
        var hashes = new ulong[n];
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            hashes[i] = HashName(i);
            order[i] = i;
        }
        Array.Sort(hashes, order);
        return new HashIndex(hashes, order);
    }

    private sealed record HashIndex(ulong[] Hashes, int[] Order);
}
