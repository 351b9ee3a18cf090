using Periscope.Tests.Shared;
using Periscope.UnitTests.Support;

namespace Periscope.UnitTests.Cli;

public class CliErrorTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void Missing_target_is_a_usage_error()
    {
        var (code, _, err) = Run("ps");
        Assert.Equal(2, code);
        Assert.Contains("--dump FILE or --qemu RAMFILE", err);
    }

    [Fact]
    public void Missing_file_is_one_line_naming_it()
    {
        var (code, _, err) = Run("ps", "--dump", "/nonexistent/guest.core");
        Assert.Equal(2, code);
        Assert.Equal("periscope: /nonexistent/guest.core: no such file", err.Trim());
    }

    [Fact]
    public void Memory_without_linux_says_so()
    {
        using var f = new TempFile(new byte[2 << 20]);
        var (code, _, err) = Run("info", "--dump", f.Path);
        Assert.Equal(2, code);
        Assert.StartsWith("periscope: no Linux kernel found:", err.Trim());
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void Truncated_core_names_the_offset()
    {
        var core = new ElfCoreBuilder().Load(0, new byte[0x4000]).Build();
        using var f = new TempFile(core[..^16]);
        var (code, _, err) = Run("ps", "--dump", f.Path);
        Assert.Equal(2, code);
        Assert.Contains($"periscope: {f.Path}: at offset 0x", err);
    }

    [Fact]
    public void Help_lists_the_commands()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        foreach (var c in new[] { "info", "ps", "threads", "modules", "maps", "symbols", "bench" }) Assert.Contains(c, output);
    }
}
