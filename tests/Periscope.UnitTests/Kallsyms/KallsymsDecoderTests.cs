using System.Diagnostics;
using Periscope.Linux.Kallsyms;
using Periscope.Memory;
using Xunit.Abstractions;

namespace Periscope.UnitTests.Kallsyms;

public sealed class KallsymsDecoderTests(ITestOutputHelper output)
{
    public static TheoryData<KallsymsTableOrder, bool, KallsymsAddressMode, int> Layouts => new()
    {
        { KallsymsTableOrder.Pre64, true, KallsymsAddressMode.AbsolutePercpu, 20_000 }, // Debian 6.1 (seqs backported)
        { KallsymsTableOrder.Pre64, false, KallsymsAddressMode.AbsolutePercpu, 5_000 }, // mainline 6.1
        { KallsymsTableOrder.Post64, true, KallsymsAddressMode.AbsolutePercpu, 12_000 },
        { KallsymsTableOrder.Pre64, true, KallsymsAddressMode.Relative, 3_000 },
        { KallsymsTableOrder.Post64, true, KallsymsAddressMode.Relative, 7_000 },
        { KallsymsTableOrder.Post64, false, KallsymsAddressMode.Relative, 4_000 },
        { KallsymsTableOrder.Pre64, false, KallsymsAddressMode.Absolute, 4_000 },
        { KallsymsTableOrder.Post64, true, KallsymsAddressMode.Absolute, 4_500 },
        { KallsymsTableOrder.Post64, true, KallsymsAddressMode.PlaceRelative, 6_000 }, // Linux 7.0+: no relative_base
        { KallsymsTableOrder.Post64, false, KallsymsAddressMode.PlaceRelative, 3_000 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void RoundTripsEveryLayout(KallsymsTableOrder order, bool seqs, KallsymsAddressMode mode, int count)
    {
        var symbols = KallsymsTestSymbols.Generate(count, seed: count,
            percpu: mode is KallsymsAddressMode.AbsolutePercpu or KallsymsAddressMode.Absolute);
        var built = new KallsymsTableBuilder { Order = order, SeqsOfNames = seqs, AddressMode = mode, Seed = count }
            .Build(symbols);
        Assert.True(built.BigSymbolCount >= 1, "the test data must contain a 2-byte-length name");

        var diagnostics = new List<string>();
        var result = KallsymsDecoder.Decode(built.Image, built.ImageVa, IntrospectionLimits.Default, diagnostics);

        Assert.True(result is not null, string.Join("\n", diagnostics));
        Assert.Empty(diagnostics);
        AssertSameSymbols(symbols, result.Symbols);

        var at = result.Location;
        Assert.Equal(built.Va(built.TokenTable), at.TokenTableVa);
        Assert.Equal(built.Va(built.TokenIndex), at.TokenIndexVa);
        Assert.Equal(built.Va(built.Markers), at.MarkersVa);
        Assert.Equal(built.Va(built.Names), at.NamesVa);
        Assert.Equal(built.Va(built.NumSyms), at.NumSymsVa);
        Assert.Equal(built.Va(built.Offsets), at.OffsetsVa);
        Assert.Equal(built.Va(built.RelativeBaseOffset), at.RelativeBaseVa);
        Assert.Equal(built.RelativeBase, at.RelativeBase);
        Assert.Equal(count, at.SymbolCount);
        Assert.Equal(seqs, at.HasSeqsOfNames);
        Assert.Equal(built.Va(built.SeqsOfNames), at.SeqsOfNamesVa);
        Assert.Equal(order, at.TableOrder);
        Assert.Equal(mode switch
        {
            KallsymsAddressMode.AbsolutePercpu => KallsymsAddressEncoding.RelativeAbsolutePercpu,
            KallsymsAddressMode.Relative => KallsymsAddressEncoding.Relative,
            KallsymsAddressMode.PlaceRelative => KallsymsAddressEncoding.PlaceRelative,
            _ => KallsymsAddressEncoding.Absolute,
        }, at.AddressEncoding);
        if (mode is KallsymsAddressMode.AbsolutePercpu or KallsymsAddressMode.Relative)
            Assert.Equal(symbols.First(s => s.Name == "_text").Address, at.RelativeBase);
    }

    [Fact]
    public void DecodedTableAnswersLookups()
    {
        var symbols = KallsymsTestSymbols.Generate(6_000, seed: 3);
        var built = new KallsymsTableBuilder().Build(symbols);
        var result = Decode(built.Image, built.ImageVa, out _);
        Assert.NotNull(result);
        var table = result.Symbols;

        Assert.Equal(0UL, table.GetAddress("fixed_percpu_data"));
        Assert.Equal(0xffffffff8dc00000UL, table.GetAddress("_text"));
        Assert.True(table.TryGetAddress("cleanup_module_state", out ulong first));
        Assert.Equal(symbols.First(s => s.Name == "cleanup_module_state").Address, first);
        Assert.Equal("_text", table.Describe(0xffffffff8dc00000)); // first alias in kallsyms order
        var big = symbols.Single(s => s.Name.Length > 300);
        Assert.Equal(big.Address, table.GetAddress(big.Name));
    }

    [Theory]
    [InlineData(0xffffffff8dc00000UL)] // 4-level and 5-level text mapping
    [InlineData(0xff11223344000000UL)] // a 57-bit kernel-half address: no 0xffff8… assumption
    public void AcceptsAnyKernelHalfRelativeBase(ulong textBase)
    {
        var symbols = KallsymsTestSymbols.Generate(3_500, seed: 11, textBase: textBase);
        var built = new KallsymsTableBuilder { ImageVa = textBase, Order = KallsymsTableOrder.Post64 }.Build(symbols);
        var result = Decode(built.Image, built.ImageVa, out var diagnostics);
        Assert.True(result is not null, string.Join("\n", diagnostics));
        Assert.Equal(textBase, result.Location.RelativeBase);
        AssertSameSymbols(symbols, result.Symbols);
    }

    [Fact]
    public void FindsTablesAtTheVeryStartAndEndOfTheImage()
    {
        var symbols = KallsymsTestSymbols.Generate(3_000, seed: 5);
        var probe = new KallsymsTableBuilder { Decoys = false, TableOffset = 0, ImageSize = 1 << 20 }.Build(symbols);
        int tableBytes = probe.TokenIndex + 512;
        var atStart = new KallsymsTableBuilder { Decoys = false, TableOffset = 0, ImageSize = tableBytes }.Build(symbols);
        var result = Decode(atStart.Image, atStart.ImageVa, out var diagnostics);
        Assert.True(result is not null, string.Join("\n", diagnostics));
        AssertSameSymbols(symbols, result.Symbols);
    }

    [Fact]
    public void DecodesNinetyFourThousandSymbols()
    {
        var symbols = KallsymsTestSymbols.Generate(94_266, seed: 94);
        var built = new KallsymsTableBuilder { ImageSize = 8 << 20, TableOffset = 0x400000, Seed = 94 }.Build(symbols);
        KallsymsResult? result = null;
        var times = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            var sw = Stopwatch.StartNew();
            result = Decode(built.Image, built.ImageVa, out _);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        Assert.NotNull(result);
        AssertSameSymbols(symbols, result.Symbols);
        output.WriteLine($"decode of {symbols.Count} symbols in an 8 MiB image: {string.Join(", ", times.Select(t => $"{t:F1}"))} ms");
    }

    // ---- malformed input: null plus a diagnostic, never an exception ----

    [Fact]
    public void EmptyAndAllZeroImagesGiveNull()
    {
        Assert.Null(Decode([], 0xffffffff81000000, out var d1));
        Assert.Contains(d1, m => m.Contains("anchor", StringComparison.Ordinal));
        Assert.Null(Decode(new byte[1 << 20], 0xffffffff81000000, out var d2));
        Assert.Contains(d2, m => m.Contains("anchor", StringComparison.Ordinal));
    }

    [Fact]
    public void RandomBytesWithOnlyDecoysGiveNull()
    {
        var built = Small();
        Array.Clear(built.Image, built.TokenTable, 16); // destroy token 0 and the start of token 1: no valid table remains
        built.Image.AsSpan(built.TokenTable, 16).Fill(0xff);
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("validated", StringComparison.Ordinal));
        Assert.True(diagnostics.Count >= 3); // each rejected decoy is explained
    }

    [Theory]
    [InlineData("names")]
    [InlineData("markers")]
    [InlineData("token_table")]
    [InlineData("token_index")]
    public void TruncatedTablesGiveNull(string where)
    {
        var built = Small(KallsymsTableOrder.Pre64);
        int cut = where switch
        {
            "names" => built.Names + (built.Markers - built.Names) / 2,
            "markers" => built.Markers + 8,
            "token_table" => built.TokenTable + 300,
            _ => built.TokenIndex + 256,
        };
        Assert.Null(Decode(built.Image.AsSpan(0, cut), built.ImageVa, out var diagnostics));
        Assert.NotEmpty(diagnostics);
    }

    [Fact]
    public void TruncatedOffsetsIn64LayoutGiveNull()
    {
        var built = Small(KallsymsTableOrder.Post64);
        Assert.Null(Decode(built.Image.AsSpan(0, built.Offsets + 100), built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("address table", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(7)]
    public void CorruptedMarkersGiveNull(int marker)
    {
        var built = Small();
        built.WriteU32(built.Markers + 4 * marker, built.ReadU32(built.Markers + 4 * marker) + 12);
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("markers", StringComparison.Ordinal));
    }

    [Fact]
    public void MarkerContradictingTheNamesGivesNull()
    {
        // A marker past the ones the locator samples: only the full decode can notice.
        var built = Small();
        int last = built.MarkerCount - 2;
        built.WriteU32(built.Markers + 4 * last, built.ReadU32(built.Markers + 4 * last) - 1);
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains($"kallsyms_markers[{last}]", StringComparison.Ordinal)
                                          || m.Contains("markers", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0x7fffffffu)]
    [InlineData(0xffffffffu)]
    [InlineData(0u)]
    [InlineData(1u)]
    public void AbsurdNumSymsGivesNull(uint value)
    {
        var built = Small();
        built.WriteU32(built.NumSyms, value);
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("num_syms", StringComparison.Ordinal));
    }

    [Fact]
    public void SymbolCountAboveTheLimitGivesNull()
    {
        var built = Small();
        var diagnostics = new List<string>();
        var limits = IntrospectionLimits.Default with { MaxKallsymsSymbols = 3_000 };
        Assert.Null(KallsymsDecoder.Decode(built.Image, built.ImageVa, limits, diagnostics));
        diagnostics.ForEach(output.WriteLine);
        Assert.Contains(diagnostics, m => m.Contains("MaxKallsymsSymbols = 3000", StringComparison.Ordinal)
                                          && m.Contains("4000", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(255)]
    public void InconsistentTokenIndexGivesNull(int entry)
    {
        var built = Small();
        built.WriteU16(built.TokenIndex + 2 * entry, (ushort)(built.ReadU16(built.TokenIndex + 2 * entry) + 1));
        // idx[0] must be 0; idx[1] … idx[255] are tied to the token lengths by the equation for k = 1…254.
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("token_index", StringComparison.Ordinal));
    }

    [Fact]
    public void OffsetsOutOfOrderGiveNull()
    {
        var built = Small();
        new Random(1).NextBytes(built.Image.AsSpan(built.Offsets, 4 * 2_000));
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("out of order", StringComparison.Ordinal));
    }

    [Fact]
    public void NonKernelRelativeBaseGivesNull()
    {
        var built = Small();
        built.WriteU32(built.RelativeBaseOffset + 4, 0x0000_7fff); // 0x00007fff_xxxxxxxx: a user address
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.Contains(diagnostics, m => m.Contains("not a kernel address", StringComparison.Ordinal));
    }

    [Fact]
    public void BadBigSymbolLengthGivesNull()
    {
        var built = Small();
        // The first name's length byte claims a 2-byte length whose second byte also has bit 7 set.
        built.Image[built.Names] = 0x85;
        built.Image[built.Names + 1] = 0x81;
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        Assert.NotEmpty(diagnostics);
    }

    [Fact]
    public void RandomCorruptionNeverThrows()
    {
        var pristine = Small(seed: 21);
        var random = new Random(2024);
        int decoded = 0;
        for (int round = 0; round < 300; round++)
        {
            byte[] image = (byte[])pristine.Image.Clone();
            int start = pristine.Offsets;
            int end = pristine.TokenIndex + 512;
            int edits = random.Next(1, 6);
            for (int e = 0; e < edits; e++)
            {
                int at = random.Next(start, end);
                image[at] = random.Next(3) switch { 0 => 0, 1 => 0xff, _ => (byte)random.Next(256) };
            }
            int length = random.Next(4) == 0 ? random.Next(start, image.Length) : image.Length;
            var diagnostics = new List<string>();
            var result = KallsymsDecoder.Decode(image.AsSpan(0, length), pristine.ImageVa, IntrospectionLimits.Default, diagnostics);
            if (result is null)
                Assert.NotEmpty(diagnostics);
            else
                decoded++;
        }
        Assert.InRange(decoded, 1, 299); // some edits are harmless (e.g. in seqs), some are fatal
    }

    [Fact]
    public void ThousandsOfDigitPatternsAreBounded()
    {
        byte[] digits = DigitsPattern();
        var image = new byte[1 << 20];
        for (int at = 0; at + digits.Length <= image.Length; at += digits.Length)
            digits.CopyTo(image, at);
        var sw = Stopwatch.StartNew();
        Assert.Null(Decode(image, 0xffffffff81000000, out var diagnostics));
        output.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms; {string.Join(" | ", diagnostics.TakeLast(3))}");
        Assert.Contains(diagnostics, m => m.Contains("stopped after 4096", StringComparison.Ordinal));
        Assert.True(diagnostics.Count <= 20);
    }

    [Fact]
    public void ManyCopiesOfATokenTableWithoutNamesAreBounded()
    {
        var built = Small();
        int length = built.TokenIndex + 512 - built.TokenTable;
        var image = new byte[4 << 20];
        new Random(3).NextBytes(image);
        for (int copy = 0; copy < 40; copy++)
            built.Image.AsSpan(built.TokenTable, length).CopyTo(image.AsSpan(0x10000 + copy * 0x10000));
        var sw = Stopwatch.StartNew();
        Assert.Null(Decode(image, 0xffffffff81000000, out var diagnostics));
        output.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms; {string.Join(" | ", diagnostics.TakeLast(3))}");
        Assert.Contains(diagnostics, m => m.Contains("stopped after 8 valid-looking token tables", StringComparison.Ordinal));
    }

    [Fact]
    public void NamesFullOfNumSymsLookalikesAreBounded()
    {
        var built = Small();
        for (int at = built.Names - 0x8000; at + 4 <= built.Markers; at += 4)
            built.WriteU32(at, 4_000);
        var sw = Stopwatch.StartNew();
        Assert.Null(Decode(built.Image, built.ImageVa, out var diagnostics));
        output.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms; {string.Join(" | ", diagnostics.TakeLast(3))}");
        Assert.NotEmpty(diagnostics);
    }

    [Fact]
    public void CallerMistakesThrow()
    {
        Assert.Throws<ArgumentNullException>(() => KallsymsDecoder.Decode([1], 0, null!, []));
        Assert.Throws<ArgumentNullException>(() => KallsymsDecoder.Decode([1], 0, IntrospectionLimits.Default, null!));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            KallsymsDecoder.Decode(new byte[16], ulong.MaxValue - 4, IntrospectionLimits.Default, []));
    }

    // ---- helpers ----

    private static byte[] DigitsPattern() =>
        "0\u00001\u00002\u00003\u00004\u00005\u00006\u00007\u00008\u00009\u0000"u8.ToArray();

    private static KallsymsImage Small(KallsymsTableOrder order = KallsymsTableOrder.Pre64, int seed = 17) =>
        new KallsymsTableBuilder { Order = order, Seed = seed, ImageSize = 2 << 20, TableOffset = 0x100000 }
            .Build(KallsymsTestSymbols.Generate(4_000, seed));

    private static KallsymsResult? Decode(ReadOnlySpan<byte> image, ulong imageVa, out List<string> diagnostics)
    {
        diagnostics = [];
        return KallsymsDecoder.Decode(image, imageVa, IntrospectionLimits.Default, diagnostics);
    }

    private static void AssertSameSymbols(IReadOnlyList<KernelSymbol> expected, KernelSymbols actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            if (expected[i] != actual[i])
                Assert.Fail($"symbol {i}: expected {expected[i]}, decoded {actual[i]}");
        }
    }
}
