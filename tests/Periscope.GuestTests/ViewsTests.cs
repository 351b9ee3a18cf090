using System.Globalization;
using System.Text.Json;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Tests.Shared;

namespace Periscope.GuestTests;

/// <summary>One guest for the views of issue 13 part A (its start.d/50-views.sh starts a process in new namespaces and
/// a docker-named cgroup; truth.d/dmesg.sh and views.sh print the guest's own view).</summary>
public sealed class ViewsGuest : GuestFixture
{
    public ViewsGuest() : base("qemu64") => Sections = ViewsTruth.Parse(File.ReadAllText(Guest.DataLogPath));

    /// <summary>(section, pid) → lines, for the sections the views' truth scripts print.</summary>
    public Dictionary<(string Name, int Pid), List<string>> Sections { get; }
}

internal static class ViewsTruth
{
    /// <summary>/proc/PID/mountinfo lines as `mounts` prints them: ours stop after the super block's ro/rw (the rest
    /// comes from each file system's show_options()).</summary>
    public static List<string> MountInfoAsShown(IEnumerable<string> lines) => lines.Where(l => l.Length > 0).Select(l =>
    {
        int dash = l.IndexOf(" - ", StringComparison.Ordinal);
        var right = l[(dash + 3)..].Split(' ');
        return $"{l[..dash]} - {right[0]} {right[1]} {right[2].Split(',')[0]}";
    }).ToList();

    public static Dictionary<(string, int), List<string>> Parse(string text)
    {
        var sections = new Dictionary<(string, int), List<string>>();
        List<string>? current = null;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("@@DONE", StringComparison.Ordinal)) break;
            if (line.StartsWith("@@BEGIN ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                int pid = parts.Length > 2 && int.TryParse(parts[2], CultureInfo.InvariantCulture, out int p) ? p : 0;
                current = sections[(parts[1], pid)] = [];
                continue;
            }
            current?.Add(line);
        }
        return sections;
    }
}

/// <summary>
/// struct/read, dmesg, ps --full, namespaces and mounts compared with the guest's own view printed on ttyS1: the
/// typed object API on init_task, the printk ring buffer against busybox `dmesg -r`, each process's cmdline, environ,
/// start time, Uid/Gid/Cap lines, ns links and cgroup against /proc, mounts against /proc/PID/mountinfo.
/// </summary>
public sealed class ViewsTests(ViewsGuest guest) : IClassFixture<ViewsGuest>
{
    private LinuxKernel Kernel => guest.Dump.Kernel;

    private IEnumerable<(int Pid, List<string> Lines)> Section(string name) =>
        guest.Sections.Where(s => s.Key.Name == name).Select(s => (s.Key.Pid, s.Value));

    [Fact]
    public void Struct_task_struct_at_init_task_shows_swapper_0_and_pid_0()
    {
        var (code, output, error) = CliRun.Run("struct", "task_struct", "init_task", "--depth", "1", "--json", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("struct task_struct", doc.RootElement.GetProperty("type").GetString());
        var members = doc.RootElement.GetProperty("members").EnumerateArray()
            .Where(m => m.TryGetProperty("name", out _)).ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.Equal("swapper/0", members["comm"].GetProperty("value").GetString());
        Assert.Equal("0", members["pid"].GetProperty("value").GetString());
        Assert.Equal("0x0", members["mm"].GetProperty("value").GetString());

        // The library API reads the same, and a pointer member goes through the pointer: init_task.real_parent->comm.
        var init = Kernel.Object("task_struct", Kernel.Symbols.GetAddress("init_task"));
        Assert.Equal("swapper/0", init["comm"].ReadString());
        Assert.Equal("swapper/0", init["real_parent"]["comm"].ReadString());
        var first = init["tasks"].ListEntries("task_struct", "tasks").First();
        Assert.Equal(1, first["pid"].ReadInt64());

        var (textCode, text, _) = CliRun.Run("struct", "task_struct", "init_task", "--depth", "1", "--dump", guest.DumpPath);
        Assert.Equal(0, textCode);
        Assert.Contains("\n  .comm = (char[16]) \"swapper/0\"\n", text);
    }

    [Fact]
    public void Read_shows_the_bytes_of_init_task_comm_virtual_and_physical()
    {
        ulong comm = Kernel.Object("task_struct", Kernel.Symbols.GetAddress("init_task"))["comm"].Address;
        var (code, output, error) = CliRun.Run("read", $"0x{comm:x}", "16", "--json", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.StartsWith(Convert.ToHexStringLower("swapper/0\0"u8), doc.RootElement.GetProperty("hex").GetString());
        Assert.True(Kernel.KernelSpace.TryTranslate(comm, out ulong pa));
        var (physCode, phys, _) = CliRun.Run("read", $"0x{pa:x}", "16", "--phys", "--dump", guest.DumpPath);
        Assert.Equal(0, physCode);
        Assert.Contains("|swapper/0.", phys);
    }

    [Fact]
    public void Dmesg_equals_the_guests_own_dmesg_for_every_line_it_printed()
    {
        var truth = guest.Sections[("dmesg", 0)];
        Assert.True(truth.Count > 50, $"the guest printed only {truth.Count} dmesg lines");
        var ours = new PrintkLog(Kernel).Read().SelectMany(r => r.SyslogLines()).ToList();
        // The guest printed its log after boot; the dump was taken later, so ours may go on (never start later: the
        // ring is far from full). Every line the guest printed must be ours, in order, byte for byte.
        int at = ours.IndexOf(truth[0]);
        Assert.True(at == 0, $"our log does not start with the guest's first line '{truth[0]}' (found at {at}); ours starts '{ours.FirstOrDefault()}'");
        Assert.True(ours.Count >= truth.Count, $"ours has {ours.Count} lines, the guest printed {truth.Count}");
        for (int i = 0; i < truth.Count; i++) Assert.Equal(truth[i], ours[i]);

        var (code, raw, error) = CliRun.Run("dmesg", "-r", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        // The table escapes controls (a tab in "rcu: \tRCU restricting ...") so guest text cannot drive the terminal.
        Assert.Equal(ours.Select(Periscope.Cli.Output.TerminalText.Escape), raw.TrimEnd('\n').Split('\n'));
    }

    /// <summary>pid → (key → value) from the views-proc sections (cmdline, environ hex; stat; Uid:, CapEff:, ...; ns NAME; cgroup).</summary>
    private Dictionary<int, Dictionary<string, string>> ProcTruth() =>
        Section("views-proc").ToDictionary(s => s.Pid, s => s.Lines.Select(l =>
        {
            int split = l.IndexOfAny([' ', '\t']);
            string key = split < 0 ? l : l[..split];
            string value = split < 0 ? "" : l[(split + 1)..].Trim();
            if (key == "ns") { int sp = value.IndexOf(' '); key = "ns " + value[..sp]; value = value[(sp + 1)..]; }
            return (key, value);
        }).GroupBy(kv => kv.key).ToDictionary(g => g.Key, g => g.First().value));

    [Fact]
    public void Ps_full_details_equal_proc_cmdline_environ_stat_status_ns_and_cgroup()
    {
        var truth = ProcTruth();
        var reader = new ProcessDetailsReader(Kernel);
        int compared = 0;
        bool sawMarked = false;
        foreach (var task in Kernel.Tasks.Where(t => t.Pid != 0))
        {
            if (!truth.TryGetValue(task.Pid, out var proc) || !proc.ContainsKey("stat")) continue; // started after the guest printed
            var d = reader.Read(task, withEnvironment: true);
            AssertEqualsProc(d, proc);
            var stat = proc["stat"];
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            Assert.Equal(ulong.Parse(fields[19], CultureInfo.InvariantCulture), d.StartTicks); // field 22: starttime
            Assert.Equal(proc["cgroup"], $"0::{d.CgroupPath}");
            if (d.Environment is { } env && env.Strings().Contains("VIEWS_MARK=periscope-env-42"))
            {
                sawMarked = true;
                Assert.Equal(["sleep", "100003"], d.CommandLine!.Strings());
                Assert.Equal("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", d.ContainerId);
                var init = reader.Read(Kernel.Tasks.Single(t => t.Pid == 1), false);
                foreach (var type in new[] { NamespaceType.Uts, NamespaceType.Mnt, NamespaceType.Net, NamespaceType.Ipc })
                    Assert.NotEqual(init.Namespaces.Single(n => n.Type == type).Inode, d.Namespaces.Single(n => n.Type == type).Inode);
            }
            compared++;
        }
        Assert.True(compared > 40, $"only {compared} processes compared");
        Assert.True(sawMarked, "the process start.d/50-views.sh starts was not found");

        var (code, output, error) = CliRun.Run("ps", "--full", "--comm", "sleep", "-o", "pid,container,cmdline", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        Assert.Contains(output.Split('\n'), l => l.EndsWith("0123456789ab  sleep 100003", StringComparison.Ordinal));
        // Every name as /proc/PID/stat showed it (6.10+ rescuers: "kworker/R-rcu_gp", which the comm cuts).
        ProcComparisons.NamesAndCgroupsMatch(guest.Sections, Kernel);
    }

    /// <summary>cmdline and environ (hex), the Uid/Gid/Cap* lines and every ns link of one process as its /proc shows them.</summary>
    internal static void AssertEqualsProc(ProcessDetails d, Dictionary<string, string> proc)
    {
        int pid = d.Task.Pid;
        Assert.True(d.Problems.Count == 0, string.Join("\n", d.Problems));
        string Hex(ProcessMemoryText? t)
        {
            if (t is null) return "";
            Assert.True(t.IsComplete, $"pid {pid}: not resident in a full dump?");
            return Convert.ToHexStringLower(t.Bytes);
        }
        Assert.True(proc["cmdline"] == Hex(d.CommandLine), $"pid {pid} cmdline");
        Assert.True(proc["environ"] == Hex(d.Environment), $"pid {pid} environ");
        var c = d.Credentials!;
        Assert.Equal($"{c.Uid}\t{c.Euid}\t{c.Suid}\t{c.Fsuid}", proc["Uid:"]);
        Assert.Equal($"{c.Gid}\t{c.Egid}\t{c.Sgid}\t{c.Fsgid}", proc["Gid:"]);
        Assert.Equal($"{c.CapInheritable:x16}", proc["CapInh:"]);
        Assert.Equal($"{c.CapPermitted:x16}", proc["CapPrm:"]);
        Assert.Equal($"{c.CapEffective:x16}", proc["CapEff:"]);
        Assert.Equal($"{c.CapBounding:x16}", proc["CapBnd:"]);
        Assert.Equal($"{c.CapAmbient:x16}", proc["CapAmb:"]);
        var nsTruth = proc.Where(kv => kv.Key.StartsWith("ns ", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[3..], kv => kv.Value);
        Assert.Equal(nsTruth.OrderBy(kv => kv.Key), d.Namespaces.ToDictionary(n => n.ProcName, n => n.ToString()).OrderBy(kv => kv.Key));
    }

    /// <summary>Whether /proc/PID/stat (taken before the dump) names the same process: its name starts with the task's
    /// comm. A workqueue worker's name goes on with the work it last ran ("kworker/0:1-events"), which changes between
    /// the guest's listing and the dump and which 6.12+ kernels show for more of their workers.</summary>
    private static bool IsListedAs(string stat, LinuxTask task) => stat.Contains($"({task.Comm}", StringComparison.Ordinal);

    /// <summary>ps --full without BTF (cmdline, environ, credential ids, capability sets and the cgroup path inferred):
    /// every process's details equal its /proc, its start times and cgroup those the BTF run reads (start times inferred
    /// by timeline's rules when asked); every name (kworkers' "-workqueue", long kernel-thread names) is the BTF run's.</summary>
    [Fact]
    public void Ps_full_without_BTF_equals_proc_cmdline_environ_status_ns_cgroup_and_names()
    {
        using var target = Periscope.Targets.Target.OpenDump(guest.DumpPath, new Periscope.Targets.TargetOptions { NoBtf = true });
        var reader = new ProcessDetailsReader(target.Kernel);
        Assert.True(reader.Unavailable.Count == 0, string.Join("; ", reader.Unavailable) + " | inferred: "
            + string.Join(", ", target.Kernel.Inference!.Members.Where(m => m.Struct is "task_struct" or "css_set" or "cgroup" or "kernfs_node" && m.Member is not "parent")
                .Where(m => m.Struct != "task_struct" || m.Member == "cgroups").Select(m => $"{m.Name} {m.Offset?.ToString("x") ?? "-"} {m.Decision} [{string.Join(" ", m.Candidates.Select(c => c.ToString("x")))}] {m.Rule}")));
        using var withBtf = Periscope.Targets.Target.OpenDump(guest.DumpPath);
        var btfReader = new ProcessDetailsReader(withBtf.Kernel);
        var btfTasks = withBtf.Kernel.Tasks.ToDictionary(t => t.Address);
        var truth = ProcTruth();
        int compared = 0;
        bool sawMarked = false;
        foreach (var task in target.Kernel.Tasks.Where(t => t.Pid != 0))
        {
            if (!truth.TryGetValue(task.Pid, out var proc) || !proc.TryGetValue("stat", out var stat) || !IsListedAs(stat, task)) continue;
            var d = reader.Read(task, withEnvironment: true);
            AssertEqualsProc(d, proc);
            var b = btfReader.Read(btfTasks[task.Address], withEnvironment: false);
            Assert.NotNull(d.StartTimeNs);
            Assert.Equal((b.StartTimeNs, b.StartBootTimeNs), (d.StartTimeNs, d.StartBootTimeNs));
            Assert.Equal(b.CgroupPath, d.CgroupPath);
            Assert.Equal(proc["cgroup"], $"0::{d.CgroupPath}");
            sawMarked |= d.Environment is { } env && env.Strings().Contains("VIEWS_MARK=periscope-env-42") && d.CommandLine!.Strings().SequenceEqual(["sleep", "100003"]);
            compared++;
        }
        Assert.True(compared > 40, $"only {compared} processes compared");
        Assert.True(sawMarked, "the process start.d/50-views.sh starts was not found");
        Assert.Equal(withBtf.Kernel.Tasks.Select(t => (t.Pid, t.Name)), target.Kernel.Tasks.Select(t => (t.Pid, t.Name)));
        ProcComparisons.NamesAndCgroupsMatch(guest.Sections, target.Kernel);
    }

    [Fact]
    public void Namespaces_group_processes_as_their_ns_links_do()
    {
        var truth = ProcTruth();
        var (code, output, error) = CliRun.Run("namespaces", "--json", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var ours = doc.RootElement.EnumerateArray().ToDictionary(
            n => $"{n.GetProperty("type").GetString()}:[{n.GetProperty("inode").GetUInt64()}]",
            n => n.GetProperty("pids").EnumerateArray().Select(p => p.GetInt32()).ToHashSet());
        var live = Kernel.Tasks.Select(t => t.Pid).ToHashSet();
        int checkedLinks = 0;
        foreach (var (pid, proc) in truth.Where(t => live.Contains(t.Key)))
            foreach (var (key, link) in proc.Where(kv => kv.Key.StartsWith("ns ", StringComparison.Ordinal) && !kv.Key.EndsWith("_for_children", StringComparison.Ordinal)))
            {
                Assert.True(ours.TryGetValue(link, out var pids) && pids.Contains(pid), $"pid {pid} {key} {link} not listed with it");
                checkedLinks++;
            }
        Assert.True(checkedLinks > 300, $"only {checkedLinks} links checked");
        // The unshared sleep is alone in its net namespace.
        int marked = truth.Single(t => t.Value.TryGetValue("cmdline", out var h) && h == Convert.ToHexStringLower("sleep\0100003\0"u8)).Key;
        Assert.Equal([marked], ours[truth[marked]["ns net"]]);
    }

    /// <summary>namespaces without BTF (--no-btf: nsproxy, its slots, every ns.inum and cred.user_ns inferred from the
    /// initial namespaces): the same table as with BTF, and every process's links those of its /proc/PID/ns.</summary>
    [Fact]
    public void Namespaces_without_BTF_equal_the_BTF_run_and_every_process_ns_links()
    {
        var (code, withBtf, error) = CliRun.Run("namespaces", "--json", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        var (noBtfCode, noBtf, noBtfError) = CliRun.Run("namespaces", "--json", "--no-btf", "--no-offsets-cache", "--dump", guest.DumpPath);
        Assert.True(noBtfCode == 0, noBtfError);
        Assert.Equal(withBtf, noBtf);

        using var target = Periscope.Targets.Target.OpenDump(guest.DumpPath, new Periscope.Targets.TargetOptions { NoBtf = true });
        Assert.Null(target.Kernel.Btf);
        var reader = new NamespaceReader(target.Kernel);
        Assert.Null(reader.Unavailable);
        var truth = ProcTruth();
        int compared = 0;
        foreach (var task in target.Kernel.Tasks.Where(t => t.Pid != 0))
        {
            // A pid the guest listed and still the same process (the truth script's own short-lived helpers come and go).
            if (!truth.TryGetValue(task.Pid, out var proc) || !proc.TryGetValue("stat", out var stat) || !IsListedAs(stat, task)) continue;
            var nsTruth = proc.Where(kv => kv.Key.StartsWith("ns ", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[3..], kv => kv.Value);
            Assert.Equal(nsTruth.OrderBy(kv => kv.Key), reader.Read(task.Address).ToDictionary(n => n.ProcName, n => n.ToString()).OrderBy(kv => kv.Key));
            compared++;
        }
        Assert.True(compared > 40, $"only {compared} processes compared");
    }

    [Fact]
    public void Mounts_equal_proc_mountinfo_for_init_and_the_unshared_process()
    {
        var sections = Section("views-mountinfo").ToList();
        Assert.Equal(2, sections.Count);
        foreach (var (pid, lines) in sections)
        {
            var expected = ViewsTruth.MountInfoAsShown(lines);
            // With BTF (the shared flag where the kernel keeps it) and without (shared where the peer group id is set).
            foreach (string[] btf in new[] { Array.Empty<string>(), ["--no-btf", "--no-offsets-cache"] })
            {
                var (code, output, error) = CliRun.Run(["mounts", pid.ToString(CultureInfo.InvariantCulture), "--dump", guest.DumpPath, .. btf]);
                Assert.True(code == 0, error);
                Assert.Equal(expected, output.TrimEnd('\n').Split('\n'));
            }
            Assert.True(expected.Count >= 4);
        }
        // start.d/50-views.sh made /mnt/pshared shared in init's namespace: "shared:N" is compared above.
        Assert.Contains(ViewsTruth.MountInfoAsShown(sections.Single(s => s.Pid == 1).Lines), l => l.Contains(" /mnt/pshared ", StringComparison.Ordinal) && l.Contains(" shared:", StringComparison.Ordinal));
    }

    [Fact]
    public void Timeline_starts_at_boot_lists_every_process_start_and_is_sorted()
    {
        var (code, output, error) = CliRun.Run("timeline", "--json", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var events = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal("Boot", events[0].GetProperty("kind").GetString());
        var times = events.Select(e => e.GetProperty("monotonicNs").GetUInt64()).ToList();
        Assert.Equal(times.Order(), times);
        var reader = new ProcessDetailsReader(Kernel);
        var starts = events.Where(e => e.GetProperty("kind").GetString() == "ProcessStart")
            .ToDictionary(e => e.GetProperty("pid").GetInt32(), e => e.GetProperty("monotonicNs").GetUInt64());
        foreach (var t in Kernel.Tasks.Where(t => t.Pid != 0))
            Assert.Equal(reader.Read(t, false).StartTimeNs, starts[t.Pid]);
        // QEMU's RTC follows the host clock: the guest booted minutes ago, not in another year.
        var boot = DateTimeOffset.Parse(events[0].GetProperty("wall").GetString()!, CultureInfo.InvariantCulture);
        Assert.InRange(boot, DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow);
        Assert.Equal("Snapshot", events[^1].GetProperty("kind").GetString());
    }

    /// <summary>Without BTF, start_time and the timekeeper are inferred (tk_core found by ktime_get's code when kallsyms
    /// lacks it): the same events, times and wall-clock times as with BTF.</summary>
    [Fact]
    public void Timeline_without_btf_equals_the_btf_run()
    {
        var withBtf = new TimelineReader(Kernel).Read(withKernelLog: false);
        Assert.Contains(withBtf, e => e.Kind == TimelineEventKind.ProcessStart);
        Assert.NotNull(withBtf[0].Wall);
        foreach (bool noDataSymbols in new[] { false, true })
        {
            using var t = Periscope.Targets.Target.OpenDump(guest.DumpPath, new Periscope.Targets.TargetOptions { NoBtf = true, NoDataSymbols = noDataSymbols });
            var inferred = new TimelineReader(t.Kernel).Read(withKernelLog: false);
            Assert.False(t.Kernel.IsIncomplete, string.Join("; ", t.Kernel.IncompleteReasons));
            // Kernel threads' names ("kworker/0:1-events", long names) are inferred too: the same descriptions.
            Assert.Equal(withBtf.Select(e => (e.MonotonicNs, e.Wall, e.Kind, e.Pid, e.Description)), inferred.Select(e => (e.MonotonicNs, e.Wall, e.Kind, e.Pid, e.Description)));
        }
        var (code, _, error) = CliRun.Run("timeline", "--json", "--no-btf", "--no-offsets-cache", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
    }

    [Fact]
    public void Live_guest_struct_dmesg_and_ps_full_work_through_the_ram_file()
    {
        string[] live = ["--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause"];
        var (code, output, error) = CliRun.Run(["struct", "task_struct", "init_task", "--depth", "1", .. live]);
        Assert.True(code == 0, error);
        Assert.Contains(".comm = (char[16]) \"swapper/0\"", output);
        (code, output, error) = CliRun.Run(["dmesg", "--json", .. live]);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.StartsWith("Linux version ", doc.RootElement[0].GetProperty("text").GetString());
        (code, output, error) = CliRun.Run(["ps", "--pid", "1", "-o", "pid,cmdline", .. live]);
        Assert.True(code == 0, error);
        Assert.Contains("1    /bin/busybox sh /init", output);
    }
}
