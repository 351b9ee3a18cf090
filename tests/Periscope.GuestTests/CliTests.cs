using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Periscope.Cli.Output;
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
    public void Maps_without_a_pid_lists_every_user_process_as_proc_maps_does()
    {
        var (code, output, _) = Run("maps", "--dump", guest.DumpPath);
        Assert.Equal(0, code);
        // Sections: "pid N (comm):" then that process's lines.
        var sections = new Dictionary<int, List<string>>();
        List<string>? current = null;
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var header = System.Text.RegularExpressions.Regex.Match(line, @"^pid (\d+) \(.*\):$");
            if (header.Success) sections[int.Parse(header.Groups[1].Value)] = current = [];
            else
            {
                Assert.NotNull(current); // no line before the first header
                current.Add(line);
            }
        }
        var users = guest.Dump.Kernel.Tasks.Where(t => t.Mm != 0 && !t.IsKernelThread).Select(t => t.Pid).Order().ToList();
        Assert.Equal(users, sections.Keys.Order());
        // Ground truth: the guest's own /proc/PID/maps of a process that lives on (the threaded workload).
        var threaded = guest.Dump.Kernel.Tasks.Single(t => t.Comm == "workload" && t.ThreadCount == 4);
        string raw = File.ReadAllText(guest.Guest.DataLogPath).Replace("\r", "");
        int at = raw.IndexOf($"@@BEGIN maps {threaded.Pid}\n", StringComparison.Ordinal);
        string section = raw[(raw.IndexOf('\n', at) + 1)..raw.IndexOf("@@", at + 5, StringComparison.Ordinal)];
        Assert.Equal(section.Split('\n', StringSplitOptions.RemoveEmptyEntries), sections[threaded.Pid]);
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
    public void Symbols_prints_proc_kallsyms_core_and_module_lines()
    {
        var (code, output, _) = Run("symbols", "--dump", guest.DumpPath);
        Assert.Equal(0, code);
        string raw = File.ReadAllText(guest.Guest.DataLogPath).Replace("\r", "");
        int at = raw.IndexOf("@@BEGIN kallsyms\n", StringComparison.Ordinal);
        string section = raw[(raw.IndexOf('\n', at) + 1)..raw.IndexOf("@@", at + 5, StringComparison.Ordinal)];
        // Lines of pseudo-modules ([bpf], [__builtin__ftrace]) are not module symbols.
        var modules = guest.Truth.Modules.Select(m => $"[{m.Name}]").ToHashSet();
        var expected = section.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.Contains('\t') || modules.Contains(l[(l.IndexOf('\t') + 1)..])).ToList();
        var ours = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(expected.Count(l => l.Contains('\t')) > 50, "too few module symbol lines in the guest's view");
        Assert.Equal(expected.Count, ours.Length);
        for (int i = 0; i < expected.Count; i++)
            if (expected[i] != ours[i]) Assert.Fail($"line {i}: guest '{expected[i]}', periscope '{ours[i]}'");

        string one = guest.Truth.Modules[0].Name;
        (code, output, _) = Run("symbols", "--module", one, "--dump", guest.DumpPath);
        Assert.Equal(0, code);
        Assert.Equal(expected.Where(l => l.EndsWith($"\t[{one}]", StringComparison.Ordinal)), output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
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

    /// <summary>
    /// guest/init runs /bin/esc ESC[2J BEL (a link to workload) renamed to ESC]0;t BEL ESC[2J: a comm, an exe path and
    /// a file mapping that would retitle and clear the operator's terminal if printed raw.
    /// </summary>
    [Fact]
    public void Escape_sequences_in_comm_and_file_names_never_reach_the_terminal()
    {
        const string Comm = "\u001b]0;t\u0007\u001b[2J", Exe = "/bin/esc\u001b[2J\u0007";
        const string EscapedComm = @"\x1b]0;t\x07\x1b[2J", EscapedExe = @"/bin/esc\x1b[2J\x07";
        // The guest's own view: its /proc shows the raw names.
        int pid = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == Comm).Key;
        Assert.Contains(guest.Truth.Maps[pid], m => m.Path == Exe);

        var (code, output, error) = Run("ps", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        AssertNoRawControls(output + error);
        string row = Assert.Single(output.Split('\n'), l => l.StartsWith($"{pid} ", StringComparison.Ordinal));
        Assert.Contains($" {EscapedComm} ", row);
        Assert.EndsWith(EscapedExe, row);

        (code, output, error) = Run("threads", pid.ToString(), "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        AssertNoRawControls(output + error);
        Assert.Contains(EscapedComm, output);

        // maps: the guest's own lines, each escaped, and nothing else.
        (code, output, error) = Run("maps", pid.ToString(), "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        AssertNoRawControls(output + error);
        Assert.Contains(output.Split('\n'), l => l.EndsWith(" " + EscapedExe, StringComparison.Ordinal));
        Assert.Equal(MapsSection(pid).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(TerminalText.Escape),
            output.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        // JSON carries the real names (the serializer escapes them as JSON).
        (code, output, _) = Run("ps", "--dump", guest.DumpPath, "--json");
        Assert.Equal(0, code);
        AssertNoRawControls(output);
        using var doc = JsonDocument.Parse(output);
        var task = doc.RootElement.EnumerateArray().Single(t => t.GetProperty("pid").GetInt32() == pid);
        Assert.Equal(Comm, task.GetProperty("comm").GetString());
        Assert.Equal(Exe, task.GetProperty("exe").GetString());
    }

    private static void AssertNoRawControls(string text)
    {
        Assert.DoesNotContain('\u001b', text);
        Assert.DoesNotContain('\u0007', text);
    }

    private string MapsSection(int pid)
    {
        string raw = File.ReadAllText(guest.Guest.DataLogPath).Replace("\r", "");
        int at = raw.IndexOf($"@@BEGIN maps {pid}\n", StringComparison.Ordinal);
        return raw[(raw.IndexOf('\n', at) + 1)..raw.IndexOf("@@", at + 5, StringComparison.Ordinal)];
    }

    [Fact]
    public void Unknown_pid_is_a_one_line_error()
    {
        var (code, _, error) = Run("maps", "999999", "--dump", guest.DumpPath);
        Assert.Equal(2, code);
        Assert.Equal("periscope: no process with pid 999999", error.Trim());
    }
}

/// <summary>`periscope demo --keep` as a user runs it: a child process with its own QEMU, ended by SIGTERM.</summary>
public sealed class DemoCommandTests
{
    [Fact]
    public async Task Demo_keep_stops_QEMU_and_removes_its_RAM_file_on_SIGTERM()
    {
        var psi = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "periscope"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "demo", "--keep", "--image", GuestImage.Directory() }) psi.ArgumentList.Add(a);
        using var demo = Process.Start(psi)!;
        demo.OutputDataReceived += (_, _) => { };
        demo.BeginOutputReadLine();
        try
        {
            // stderr says where the RAM file is and, once the guest is kept, QEMU's pid.
            var ready = Task.Run(() =>
            {
                string? ram = null;
                while (demo.StandardError.ReadLine() is { } line)
                {
                    if (Regex.Match(line, @"reading it from outside: RAM (\S+), QMP") is { Success: true } r) ram = r.Groups[1].Value;
                    if (Regex.Match(line, @"guest kept running \(QEMU pid (\d+)\)") is { Success: true } k) return (Ram: ram, Qemu: int.Parse(k.Groups[1].Value));
                }
                return (Ram: ram, Qemu: 0);
            });
            var (ramFile, qemuPid) = await ready.WaitAsync(TimeSpan.FromMinutes(5));
            Assert.True(qemuPid > 0 && ramFile is not null, "demo exited before keeping its guest");
            Assert.True(File.Exists(ramFile));
            Assert.True(IsQemu(qemuPid));

            using (var kill = Process.Start("kill", ["-TERM", demo.Id.ToString()])) kill.WaitForExit();
            await demo.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(0, demo.ExitCode);
            Assert.False(IsQemu(qemuPid), $"QEMU (pid {qemuPid}) still runs");
            Assert.False(File.Exists(ramFile), $"{ramFile} was left behind");
        }
        finally
        {
            if (!demo.HasExited) demo.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Alive and QEMU: a zombie has an empty cmdline, a reused pid another name.</summary>
    private static bool IsQemu(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Contains("qemu-system", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }
}
