using Periscope.Cli;
using Periscope.Tests.Shared;
using Periscope.UnitTests.Support;

namespace Periscope.UnitTests.Cli;

/// <summary>Usage errors: exit 2, one line naming the mistake plus a hint, never the whole help text.</summary>
public class CliUsageTests
{
    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Theory]
    [InlineData("ps --bogus --dump x", "periscope ps")]
    [InlineData("maps 1 2 --dump x", "periscope maps")]               // one pid at most (none: every process)
    [InlineData("maps notanumber --dump x", "periscope maps")]
    [InlineData("baseline create --dump x", "periscope baseline create")]   // --db is required
    [InlineData("frobnicate", "periscope")]
    [InlineData("", "periscope")]
    [InlineData("ps --raw-layout Sideways --dump x", "periscope ps")]
    public void Parse_errors_are_one_line_and_a_hint(string args, string command)
    {
        var (code, output, err) = CliRun.Run(args.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(2, code);
        Assert.Equal("", output);
        var lines = Lines(err);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("periscope: ", lines[0]);
        Assert.Equal($"see '{command} --help'", lines[1]);
        Assert.DoesNotContain("Usage:", err);
    }

    [Theory]
    [InlineData("ps")]
    [InlineData("ps --dump a.core --qemu /dev/shm/ram")]
    public void Neither_or_both_targets_is_one_line(string args)
    {
        var (code, _, err) = CliRun.Run(args.Split(' '));
        Assert.Equal(2, code);
        Assert.Equal("periscope: say which guest to read: --dump FILE or --qemu RAMFILE [--qmp SOCKET]", Assert.Single(Lines(err)));
    }

    [Fact]
    public void Pause_without_qmp_on_a_live_guest_is_an_error_not_ignored()
    {
        using var ram = new TempFile(new byte[2 << 20]);
        var (code, output, err) = CliRun.Run("ps", "--qemu", ram.Path, "--pause");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal("periscope: --pause needs --qmp SOCKET: a live guest is paused through QMP", Assert.Single(Lines(err)));
    }

    [Fact]
    public void Unreachable_qmp_is_one_line()
    {
        using var ram = new TempFile(new byte[2 << 20]);
        var (code, _, err) = CliRun.Run("ps", "--qemu", ram.Path, "--qmp", "/nonexistent/qmp.sock", "--pause");
        Assert.Equal(2, code);
        Assert.StartsWith("periscope: /nonexistent/qmp.sock: cannot connect to QMP:", Assert.Single(Lines(err)));
    }

    [Theory]
    [InlineData("ps")]
    [InlineData("bench --iterations 1")]
    public void Pause_on_a_dump_keeps_its_warning(string command)
    {
        using var dump = new TempFile(new byte[2 << 20]);
        var (code, _, err) = CliRun.Run([.. command.Split(' '), "--dump", dump.Path, "--pause"]);
        Assert.Equal(2, code);   // no kernel in zeros; the warning comes first
        var lines = Lines(err);
        Assert.Equal("periscope: --pause ignored: a dump does not change", lines[0]);
        Assert.StartsWith("periscope: no Linux kernel found:", lines[1]);
    }

    [Fact]
    public void Every_command_accepts_json()
    {
        foreach (var command in new[] { "info", "ps", "threads", "modules", "maps 1", "symbols", "check", "bench", "demo" })
        {
            var (code, _, err) = CliRun.Run([.. command.Split(' '), "--json", "--help"]);
            Assert.True(code == 0, $"{command}: {err}");
        }
    }

    [Fact]
    public void Error_text_from_a_file_name_is_escaped_and_stays_one_line()
    {
        var (code, _, err) = CliRun.Run("ps", "--dump", "/nonexistent/\u001b[2J\nfake line\u0007");
        Assert.Equal(2, code);
        Assert.Equal("periscope: /nonexistent/\\x1b[2J\\x0afake line\\x07: no such file", Assert.Single(Lines(err)));
    }
}

/// <summary>Expected failures are one line with exit 2; anything else is one "internal error" line with exit 70.</summary>
public class CliInternalErrorTests
{
    /// <summary>A writer that fails the way a bug would: with an exception no handler expects.</summary>
    private sealed class BrokenWriter : StringWriter
    {
        public override void Write(char value) => throw new ArgumentOutOfRangeException(nameof(value), "simulated bug\u001b[2J");
        public override void Write(string? value) => throw new ArgumentOutOfRangeException(nameof(value), "simulated bug\u001b[2J");
        public override void Write(ReadOnlySpan<char> buffer) => throw new ArgumentOutOfRangeException(nameof(buffer), "simulated bug\u001b[2J");
        public override void Write(char[] buffer, int index, int count) => throw new ArgumentOutOfRangeException(nameof(buffer), "simulated bug\u001b[2J");
    }

    [Fact]
    public void An_unexpected_exception_is_one_line_and_exit_70()
    {
        var error = new StringWriter();
        int code = CliApp.Run(["--help"], new BrokenWriter(), error);
        Assert.Equal(70, code);
        string line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("periscope: internal error: System.ArgumentOutOfRangeException: simulated bug\\x1b[2J", line);
        Assert.EndsWith("(please report)", line);
    }

    [Fact]
    public void Bad_data_exceptions_are_not_expected_failures()
    {
        Assert.False(CliErrors.IsExpected(Thrown(() => checked((int)(long.MaxValue - Environment.ProcessId)))));
        Assert.False(CliErrors.IsExpected(Thrown(() => new byte[4].AsSpan(8).Length)));
        Assert.False(CliErrors.IsExpected(Thrown(() => new Dictionary<string, int>()["missing"])));
        Assert.False(CliErrors.IsExpected(Thrown(() => Array.Empty<int>().Single())));
        Assert.False(CliErrors.IsExpected(Thrown(() => Enum.Parse<DayOfWeek>("Caturday"))));
    }

    [Fact]
    public void Periscope_own_not_found_errors_are_expected()
    {
        var symbols = new Periscope.Linux.Kallsyms.KernelSymbols([]);
        var e = Thrown(() => symbols.GetAddress("init_task"));
        Assert.IsType<KeyNotFoundException>(e);
        Assert.True(CliErrors.IsExpected(e));
        Assert.True(CliErrors.IsExpected(new CliUsageException("x")));
        Assert.True(CliErrors.IsExpected(new FileNotFoundException("x")));
    }

    private static Exception Thrown<T>(Func<T> f)
    {
        try { f(); }
        catch (Exception e) { return e; }
        throw new Xunit.Sdk.XunitException("nothing was thrown");
    }
}
