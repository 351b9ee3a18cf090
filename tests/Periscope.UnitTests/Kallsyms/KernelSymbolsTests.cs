using Periscope.Linux.Kallsyms;

namespace Periscope.UnitTests.Kallsyms;

public sealed class KernelSymbolsTests
{
    private static readonly KernelSymbols Table = new(
    [
        new(0x0, 'A', "fixed_percpu_data"),
        new(0x0, 'A', "__per_cpu_start"),
        new(0x2000, 'A', "cpu_number"),
        new(0x3000, 'A', "__per_cpu_end"),
        new(0xffffffff81000000, 'T', "_text"),
        new(0xffffffff81000000, 'T', "_stext"),
        new(0xffffffff81000040, 't', "do_one_initcall"),
        new(0xffffffff81000100, 'T', "__x64_sys_read"),
        new(0xffffffff81000180, 'T', "__x64_sys_write"),
        new(0xffffffff81000200, 't', "cleanup"),
        new(0xffffffff81000300, 't', "cleanup"),
        new(0xffffffff81000400, 'D', "init_task"),
        new(0xffffffff81002000, 'B', "_end"),
    ]);

    [Fact]
    public void IndexesInKallsymsOrder()
    {
        Assert.Equal(13, Table.Count);
        Assert.Equal("_text", Table[4].Name);
        Assert.Equal(Table.Count, Table.All.Count);
        Assert.Equal("ffffffff81000040 t do_one_initcall", Table[6].ToString());
        Assert.Throws<ArgumentOutOfRangeException>(() => Table[13]);
        Assert.Throws<ArgumentOutOfRangeException>(() => Table[-1]);
    }

    [Fact]
    public void NameLookupsReturnTheFirstMatch()
    {
        Assert.True(Table.TryGetAddress("cleanup", out ulong cleanup));
        Assert.Equal(0xffffffff81000200UL, cleanup);
        Assert.Equal(0xffffffff81000400UL, Table.GetAddress("init_task"));
        Assert.False(Table.TryGetAddress("no_such_symbol", out _));
        var e = Assert.Throws<KeyNotFoundException>(() => Table.GetAddress("no_such_symbol"));
        Assert.Contains("no_such_symbol", e.Message, StringComparison.Ordinal);
        Assert.True(Table.TryGetSymbol("init_task", out var task));
        Assert.Equal('D', task.Type);
    }

    [Theory]
    [InlineData(0xffffffff81000000UL, "_text", 0x0)]          // first alias in kallsyms order
    [InlineData(0xffffffff8100003fUL, "_text", 0x3f)]
    [InlineData(0xffffffff81000040UL, "do_one_initcall", 0x0)]
    [InlineData(0xffffffff8100011aUL, "__x64_sys_read", 0x1a)]
    [InlineData(0xffffffff81000350UL, "cleanup", 0x50)]        // the second "cleanup"
    [InlineData(0xffffffff81001fffUL, "init_task", 0x1bff)]
    [InlineData(0xffffffff81002000UL, "_end", 0x0)]
    [InlineData(0x2010UL, "cpu_number", 0x10)]                // per-CPU offsets resolve among per-CPU symbols
    public void FindsTheContainingSymbol(ulong address, string name, ulong offset)
    {
        Assert.True(Table.TryFindContaining(address, out var symbol, out ulong actualOffset));
        Assert.Equal(name, symbol.Name);
        Assert.Equal(offset, actualOffset);
        Assert.Equal(symbol.Address + offset, address);
    }

    [Theory]
    [InlineData(0xffffffff81002001UL)] // past _end (module space, direct map, …)
    [InlineData(0xffffffffc0001000UL)]
    [InlineData(0xffffffff80ffffffUL)] // in the kernel half but below the lowest kernel symbol
    [InlineData(0x00007fff12345678UL)] // user address: never described by a per-CPU symbol
    public void AddressesOutsideTheTableAreNotContained(ulong address)
    {
        Assert.False(Table.TryFindContaining(address, out _, out _));
        Assert.Equal($"0x{address:x}", Table.Describe(address));
    }

    [Fact]
    public void AddressesBelowTheFirstSymbolAreNotContained()
    {
        var table = new KernelSymbols([new(0xffffffff81000000, 'T', "_text"), new(0xffffffff81000100, 'T', "_etext")]);
        Assert.False(table.TryFindContaining(0xffffffff80000000, out _, out _));
        Assert.False(new KernelSymbols([]).TryFindContaining(0xffffffff80000000, out _, out _));
        Assert.Equal("0xffffffff80000000", new KernelSymbols([]).Describe(0xffffffff80000000));
    }

    [Fact]
    public void DescribesAddresses()
    {
        Assert.Equal("__x64_sys_read+0x1a", Table.Describe(0xffffffff8100011a));
        Assert.Equal("__x64_sys_write", Table.Describe(0xffffffff81000180));
        Assert.Equal("0xffffffffc0001000", Table.Describe(0xffffffffc0001000));
    }

    [Fact]
    public void UnsortedTablesStillResolveByAddress()
    {
        var table = new KernelSymbols(
        [
            new(0xffffffff81000300, 't', "c"),
            new(0xffffffff81000100, 't', "a"),
            new(0xffffffff81000200, 't', "b"),
            new(0xffffffff81000100, 't', "a_alias"),
            new(0xffffffff81000400, 'B', "_end"),
        ]);
        Assert.Equal("a+0x10", table.Describe(0xffffffff81000110));
        Assert.Equal("b+0x1", table.Describe(0xffffffff81000201));
        Assert.Equal("c+0xff", table.Describe(0xffffffff810003ff));
    }

    [Theory]
    [InlineData("sys_", new[] { "__x64_sys_read", "__x64_sys_write" })]
    [InlineData("__x64_sys_*", new[] { "__x64_sys_read", "__x64_sys_write" })]
    [InlineData("*_sys_re?d", new[] { "__x64_sys_read" })]
    [InlineData("cleanup", new[] { "cleanup", "cleanup" })]
    [InlineData("text", new[] { "_text", "_stext" })]         // substring
    [InlineData("_text*", new[] { "_text" })]                 // glob matches whole names
    [InlineData("*", null)]
    [InlineData("nothing*", new string[0])]
    [InlineData("?", new string[0])]
    public void MatchesSubstringsAndGlobs(string pattern, string[]? expected)
    {
        var names = Table.Match(pattern).Select(s => s.Name).ToArray();
        Assert.Equal(expected ?? Table.All.Select(s => s.Name).ToArray(), names);
    }

    [Theory]
    [InlineData("a*b*c", "axxbyyc", true)]
    [InlineData("a*b*c", "axxbyy", false)]
    [InlineData("**", "", true)]
    [InlineData("?", "", false)]
    [InlineData("*a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", false)]
    [InlineData("*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false)]
    public void GlobIsLinearAndCorrect(string pattern, string text, bool matches) =>
        Assert.Equal(matches, new KernelSymbols([new(0, 'A', text)]).Match(pattern).Any());
}
