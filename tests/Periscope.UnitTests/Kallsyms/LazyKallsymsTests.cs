using Periscope.Linux.Kallsyms;
using Periscope.Memory;

namespace Periscope.UnitTests.Kallsyms;

/// <summary>
/// The decoder keeps names compressed and expands them on demand: lookups by name (binary search over
/// seqs_of_names, or a hash index without it) must give exactly what the eager table gave — the first symbol in
/// kallsyms order with that name — while expanding only the names they touch.
/// </summary>
public sealed class LazyKallsymsTests
{
    public static TheoryData<KallsymsTableOrder, bool, KallsymsAddressMode> Layouts => new()
    {
        { KallsymsTableOrder.Pre64, true, KallsymsAddressMode.AbsolutePercpu },
        { KallsymsTableOrder.Pre64, false, KallsymsAddressMode.AbsolutePercpu },
        { KallsymsTableOrder.Post64, true, KallsymsAddressMode.Relative },
        { KallsymsTableOrder.Post64, false, KallsymsAddressMode.PlaceRelative },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void EveryNameIsFoundAtItsFirstKallsymsOccurrence(KallsymsTableOrder order, bool seqs, KallsymsAddressMode mode)
    {
        var symbols = KallsymsTestSymbols.Generate(5_000, seed: 21,
            percpu: mode is KallsymsAddressMode.AbsolutePercpu or KallsymsAddressMode.Absolute);
        var built = new KallsymsTableBuilder { Order = order, SeqsOfNames = seqs, AddressMode = mode, Seed = 21 }.Build(symbols);
        var table = Decode(built);
        Assert.Equal(seqs, table.Location.HasSeqsOfNames);

        var first = new Dictionary<string, KernelSymbol>(StringComparer.Ordinal);
        foreach (var s in symbols) first.TryAdd(s.Name, s);
        Assert.True(first.Count < symbols.Count, "the test data must repeat some names");
        foreach (var (name, expected) in first)
        {
            Assert.True(table.Symbols.TryGetSymbol(name, out var found), $"'{name}' not found");
            Assert.Equal(expected, found);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("_tex")]          // a prefix of a name
    [InlineData("_textx")]        // a name plus one byte
    [InlineData("zzzz_not_there")]
    [InlineData("\u0100text")]    // not Latin-1: no kernel name has it
    public void AbsentNamesAreNotFound(string name)
    {
        var built = new KallsymsTableBuilder().Build(KallsymsTestSymbols.Generate(3_000, seed: 4));
        var table = Decode(built).Symbols;
        Assert.False(table.TryGetAddress(name, out _));
    }

    [Fact]
    public void AttachStyleLookupsExpandOnlyTheNamesTheyTouch()
    {
        var symbols = KallsymsTestSymbols.Generate(20_000, seed: 8);
        var table = Decode(new KallsymsTableBuilder { Seed = 8, ImageSize = 8 << 20, TableOffset = 0x300000 }.Build(symbols)).Symbols;
        Assert.Equal(0, table.MaterialisedNameCount);

        foreach (string name in new[] { "_text", "fixed_percpu_data", symbols[12_345].Name, "no_such_symbol" })
            table.TryGetAddress(name, out _);
        table.TryFindContaining(symbols[15_000].Address + 1, out _, out _);
        Assert.InRange(table.MaterialisedNameCount, 1, 4);

        Assert.Equal(symbols.Count, table.All.Count(s => s.Name.Length > 0)); // listing expands every name once
        Assert.Equal(symbols.Count, table.MaterialisedNameCount);
    }

    [Fact]
    public void AScrambledNameOrderStillFindsEveryName()
    {
        // seqs_of_names stays a valid permutation, but its order is wrong: a binary search misses, the hash index answers.
        var symbols = KallsymsTestSymbols.Generate(4_000, seed: 12);
        var built = new KallsymsTableBuilder { Seed = 12 }.Build(symbols);
        int seqs = built.SeqsOfNames;
        Assert.True(seqs >= 0);
        var image = built.Image;
        for (int i = 0, j = symbols.Count - 1; i < j; i++, j--)
            for (int b = 0; b < 3; b++)
                (image[seqs + 3 * i + b], image[seqs + 3 * j + b]) = (image[seqs + 3 * j + b], image[seqs + 3 * i + b]);

        var table = Decode(built);
        Assert.True(table.Location.HasSeqsOfNames);
        var first = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var s in symbols) first.TryAdd(s.Name, s.Address);
        foreach (var (name, address) in first)
            Assert.Equal(address, table.Symbols.GetAddress(name));
    }

    [Fact]
    public void NextAddressComesFromTheAddressIndexWithoutExpandingNames()
    {
        var symbols = KallsymsTestSymbols.Generate(3_000, seed: 6);
        var table = Decode(new KallsymsTableBuilder { Seed = 6 }.Build(symbols)).Symbols;
        ulong text = symbols.First(s => s.Name == "_text").Address;
        ulong expected = symbols.Where(s => s.Address > text).Min(s => s.Address);
        Assert.True(table.TryGetNextAddress(text, out ulong next));
        Assert.Equal(expected, next);
        Assert.False(table.TryGetNextAddress(symbols.Max(s => s.Address), out _));
        Assert.Equal(0, table.MaterialisedNameCount);
    }

    [Fact]
    public void DigitRunsWithoutTheFinalNulAreSkippedBeforeTheRealTable()
    {
        // The anchor search keys on "0\0" … "9" and checks the NUL after "9" itself: runs ending in anything else
        // (and one cut off by the end of the image) are passed over without a candidate.
        var built = new KallsymsTableBuilder { Decoys = false, Seed = 9 }.Build(KallsymsTestSymbols.Generate(3_000, seed: 9));
        byte[] run = "0\01\02\03\04\05\06\07\08\09"u8.ToArray();
        for (int at = 0x1000; at < 0x1000 + 64 * 32; at += 32)
        {
            run.CopyTo(built.Image, at);
            built.Image[at + run.Length] = (byte)'x';
        }
        var result = Decode(built);
        Assert.Equal(built.Va(built.TokenTable), result.Location.TokenTableVa);

        var tail = new byte[64];
        run.CopyTo(tail, tail.Length - run.Length);
        var diagnostics = new List<string>();
        Assert.Null(KallsymsDecoder.Decode(tail, 0xffffffff81000000, IntrospectionLimits.Default, diagnostics));
        Assert.Contains(diagnostics, d => d.Contains("anchor", StringComparison.Ordinal));
    }

    private static KallsymsResult Decode(KallsymsImage built)
    {
        var diagnostics = new List<string>();
        var result = KallsymsDecoder.Decode(built.Image, built.ImageVa, IntrospectionLimits.Default, diagnostics);
        Assert.True(result is not null, string.Join("\n", diagnostics));
        return result;
    }
}
