using System.Text.Json;
using Periscope.Tests.Shared;

namespace Periscope.GuestTests;

/// <summary>The periscope command as a user runs it, against the real guest's dump and the live guest.</summary>
[Collection("5-level guest")]
public sealed class CliTests(FiveLevelGuest guest)
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void Ps_prints_a_table_with_exe_paths()
    {
        var (code, output, error) = Run("ps", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("PID", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("1 ") && l.EndsWith("/bin/busybox"));
        Assert.Contains(lines, l => l.Contains("renamed-proc"));
        Assert.Equal(guest.Dump.Kernel.Tasks.Count + 1, lines.Length);
    }

    [Fact]
    public void Ps_json_carries_every_task()
    {
        var (code, output, _) = Run("ps", "--dump", guest.DumpPath, "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var tasks = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(guest.Dump.Kernel.Tasks.Count, tasks.Count);
        var workload = tasks.Single(t => t.GetProperty("comm").GetString() == "workload" && t.GetProperty("threads").GetInt32() == 4);
        Assert.Equal("/bin/workload", workload.GetProperty("exe").GetString());
        Assert.StartsWith("0x", workload.GetProperty("task").GetString());
    }

    [Fact]
    public void Maps_output_is_byte_identical_to_proc_maps()
    {
        var threaded = guest.Dump.Kernel.Tasks.Single(t => t.Comm == "workload" && t.ThreadCount == 4);
        var (code, output, _) = Run("maps", threaded.Pid.ToString(), "--dump", guest.DumpPath);
        Assert.Equal(0, code);
        string raw = File.ReadAllText(guest.Guest.DataLogPath).Replace("\r", "");
        int at = raw.IndexOf($"@@BEGIN maps {threaded.Pid}\n", StringComparison.Ordinal);
        string section = raw[(raw.IndexOf('\n', at) + 1)..raw.IndexOf("@@", at + 5, StringComparison.Ordinal)];
        Assert.Equal(section, output);
    }

    [Fact]
    public void Symbols_with_a_pattern_and_info_json()
    {
        var (code, output, _) = Run("symbols", "init_task", "--dump", guest.DumpPath);
        Assert.Equal(0, code);
        ulong expected = guest.Truth.Symbols.First(s => s.Name == "init_task").Address;
        Assert.Contains($"{expected:x16} D init_task", output);

        (code, output, _) = Run("info", "--dump", guest.DumpPath, "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(5, doc.RootElement.GetProperty("pagingLevels").GetInt32());
        Assert.Equal(guest.Truth.Banner, doc.RootElement.GetProperty("banner").GetString());
        Assert.True(doc.RootElement.GetProperty("timingsMs").EnumerateObject().Any());
    }

    [Fact]
    public void Modules_and_threads_commands()
    {
        var (code, output, _) = Run("modules", "--dump", guest.DumpPath);
        Assert.Equal(0, code);
        var rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(4))).ToList();
        Assert.Equal(guest.Truth.Modules.Select(m => $"{m.Name} 0x{m.Base:x} {m.Size} {m.State}"), rows);
        var threaded = guest.Dump.Kernel.Tasks.Single(t => t.Comm == "workload" && t.ThreadCount == 4);
        (code, output, _) = Run("threads", threaded.Pid.ToString(), "--dump", guest.DumpPath, "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(4, doc.RootElement.GetArrayLength());
    }

    [Fact]
    public void Live_ps_through_the_RAM_file_and_QMP_with_pause()
    {
        var (code, output, error) = Run("ps", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.Contains(doc.RootElement.EnumerateArray(), t => t.GetProperty("comm").GetString() == "renamed-proc");
        Assert.Equal("running", guest.Guest.Qmp.QueryStatus());
    }

    [Fact]
    public void Unknown_pid_is_a_one_line_error()
    {
        var (code, _, error) = Run("maps", "999999", "--dump", guest.DumpPath);
        Assert.Equal(2, code);
        Assert.Equal("periscope: no process with pid 999999", error.Trim());
    }
}
