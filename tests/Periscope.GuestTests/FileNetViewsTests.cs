using System.Globalization;
using System.Text.Json;
using Periscope.Linux;
using Periscope.Linux.Files;
using Periscope.Linux.Model;
using Periscope.Linux.Network;
using Periscope.Linux.Tasks.Views;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>A two-vCPU guest of its own for the cross-views (psxview, lsof): per-CPU idle tasks and run queues, and
/// /bin/netfiles (guest/start.d/51-filenet.sh) holding known files, pipes and sockets.</summary>
public sealed class FileNetGuest() : GuestFixture("max", cpus: 2)
{
    private FileNetTruth? _views;

    /// <summary>The sections guest/truth.d/filenet.sh printed (read here, so that GroundTruth stays shared and small).</summary>
    public FileNetTruth Views => _views ??= FileNetTruth.Parse(ReadDataLog());

    private string ReadDataLog()
    {
        using var fs = new FileStream(Guest.DataLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(fs).ReadToEnd();
    }
}

/// <summary>guest/truth.d/filenet.sh's sections: "@@BEGIN fds PID" (fd, link, pos, flags per line) and "@@BEGIN net-NAME".</summary>
public sealed class FileNetTruth
{
    public Dictionary<int, List<FdLine>> Fds { get; } = [];
    public Dictionary<string, List<string>> Net { get; } = [];

    public sealed record FdLine(int Fd, string Link, long Pos, string Flags);

    public static FileNetTruth Parse(string text)
    {
        var truth = new FileNetTruth();
        List<FdLine>? fds = null;
        List<string>? net = null;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                if (parts[0] == "@@DONE") break;
                fds = null;
                net = null;
                if (parts.Length == 3 && parts[1] == "fds") truth.Fds[int.Parse(parts[2], CultureInfo.InvariantCulture)] = fds = [];
                else if (parts.Length == 2 && parts[1].StartsWith("net-", StringComparison.Ordinal)) truth.Net[parts[1][4..]] = net = [];
                continue;
            }
            if (line.Length == 0) continue;
            if (fds is not null)
            {
                var f = line.Split('\t');
                if (f.Length == 4 && int.TryParse(f[0], CultureInfo.InvariantCulture, out int fd) && long.TryParse(f[2], CultureInfo.InvariantCulture, out long pos))
                    fds.Add(new FdLine(fd, f[1], pos, f[3]));
            }
            net?.Add(line);
        }
        return truth;
    }
}

/// <summary>
/// psxview and lsof against the guest's own view: every task /proc lists is seen by the task list and the pid IDR,
/// every process by its parent's children list, each CPU has one idle task; open files equal /proc/PID/fd and fdinfo.
/// </summary>
public sealed class FileNetViewsTests(FileNetGuest guest, ITestOutputHelper output) : IClassFixture<FileNetGuest>
{
    private LinuxKernel Kernel => guest.Dump.Kernel;

    [Fact]
    public void Psxview_sees_every_task_of_proc_through_the_task_list_pid_hash_and_thread_groups()
    {
        var report = new TaskViews(Kernel).Read();
        Assert.Empty(report.Gaps);
        Assert.Empty(report.Unavailable);
        Assert.Empty(report.Hidden);
        var byPid = report.Rows.Where(r => r.Facts is { Pid: > 0 }).ToDictionary(r => r.Facts!.Pid);
        // Every task /proc listed when the guest printed its view (threads too), still alive at the dump (the dump
        // comes later; /init's "sleep 7" loop replaces a process now and then).
        int compared = 0;
        foreach (var (pid, stat) in guest.Truth.Processes)
            foreach (var s in stat.Threads.Prepend(stat.Leader).DistinctBy(s => s.Pid))
            {
                if (!byPid.TryGetValue(s.Pid, out var row)) continue;
                compared++;
                var expected = TaskViewSet.TaskList | TaskViewSet.PidHash | TaskViewSet.ThreadGroup;
                Assert.True((row.Seen & expected) == expected, $"pid {s.Pid} ({s.Comm}) is seen by {row.Seen}, expected at least {expected}");
                // Only thread-group leaders are on their parent's children list (copy_process links CLONE_THREAD children nowhere).
                bool leader = s.Pid == pid;
                Assert.True(((row.Seen & TaskViewSet.Children) != 0) == leader, $"pid {s.Pid} (leader: {leader}) children view: {row.Seen}");
                Assert.Equal(TaskViewVerdict.Listed, row.Verdict);
            }
        Assert.True(compared >= guest.Truth.Processes.Count - 2, $"only {compared} of {guest.Truth.Processes.Count} /proc tasks compared");
        // Two CPUs: two idle tasks (pid 0, CPU 1's on no task list), each CPU's current task seen.
        var idle = report.Rows.Where(r => (r.Seen & TaskViewSet.CpuIdle) != 0).ToList();
        Assert.Equal(2, idle.Count);
        Assert.All(idle, r => Assert.Equal(0, r.Facts!.Pid));
        Assert.Single(idle, r => r.Verdict == TaskViewVerdict.IdleTask);
        Assert.Single(idle, r => r.Task == Kernel.InitTask && r.Verdict == TaskViewVerdict.Listed);
        Assert.InRange(report.Rows.Count(r => (r.Seen & TaskViewSet.CpuCurrent) != 0), 1, 2);
        output.WriteLine($"{report.Rows.Count} tasks, {compared} compared with /proc");
    }

    /// <summary>Without BTF (offsets inferred, the same dump): every view is read, and each task is seen by exactly the
    /// views the BTF run sees it by, with the same verdict.</summary>
    [Fact]
    public void Psxview_without_btf_sees_every_task_through_the_same_views_as_with_btf()
    {
        var withBtf = new TaskViews(Kernel).Read();
        using var noBtf = Periscope.Targets.Target.OpenDump(guest.DumpPath, new Periscope.Targets.TargetOptions { NoBtf = true });
        Assert.Null(noBtf.Kernel.Btf);
        var inferred = new TaskViews(noBtf.Kernel).Read();
        Assert.Empty(inferred.Unavailable);
        Assert.Empty(inferred.Gaps);
        Assert.Equal(withBtf.Available, inferred.Available);
        Assert.Equal(TaskViewRules.Columns.Aggregate(TaskViewSet.None, (all, c) => all | c.View), inferred.Available);
        Assert.Equal(withBtf.Rows.Select(r => (r.Task, r.Facts?.Pid, r.Seen, r.Verdict)), inferred.Rows.Select(r => (r.Task, r.Facts?.Pid, r.Seen, r.Verdict)));
        Assert.Equal(2, inferred.Rows.Count(r => (r.Seen & TaskViewSet.CpuIdle) != 0));
    }

    [Fact]
    public void Psxview_cli_live_and_dump_exit_0_with_every_view_and_no_hidden_task()
    {
        var (code, json, err) = CliRun.Run("psxview", "--dump", guest.DumpPath, "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(["taskList", "pidHash", "runQueue", "children", "threadGroup", "cpuCurrent", "cpuIdle"],
            doc.RootElement.GetProperty("views").EnumerateArray().Select(v => v.GetString()!).ToArray());
        Assert.DoesNotContain(doc.RootElement.GetProperty("tasks").EnumerateArray(), t => t.GetProperty("verdict").GetString() == "Hidden");

        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        var (liveCode, table, liveErr) = CliRun.Run("psxview", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause");
        Assert.True(liveCode == 0, liveErr);
        var line = Assert.Single(table.Split('\n'), l => l.StartsWith($"{netfiles} ", StringComparison.Ordinal));
        Assert.Matches(@"netfiles\s+x\s+x\s+-\s+x\s+x\s+-\s+-\s+ok", line);
    }

    [Fact]
    public void Lsof_equals_proc_fd_links_and_fdinfo_pos_and_flags()
    {
        var files = new OpenFiles(Kernel);
        Assert.Null(files.Unavailable);
        var tasks = Kernel.Tasks.ToDictionary(t => t.Pid);
        int compared = 0;
        foreach (var (pid, expected) in guest.Views.Fds)
        {
            // pid 1 printed the view itself, with its output redirected; a process gone by the dump has nothing to compare.
            if (pid == 1 || !tasks.TryGetValue(pid, out var task)) continue;
            var read = files.Read(task);
            Assert.Null(read.Gap);
            var ours = read.Files.Select(f => $"{f.Fd}\t{f.Path}\t{f.Position}\t0{Convert.ToString(f.Flags, 8)}").ToList();
            var theirs = expected.OrderBy(f => f.Fd).Select(f => $"{f.Fd}\t{f.Link}\t{f.Pos}\t{f.Flags}").ToList();
            Assert.Equal(theirs, ours);
            compared++;
        }
        Assert.True(compared >= 8, $"only {compared} processes compared");

        // netfiles' own descriptors, by kind: a file at 4242, a pipe pair, an eventfd, 9 sockets (1 netlink).
        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        var mine = files.Read(tasks[netfiles]).Files;
        Assert.Contains(mine, f => f.Path == "/bin/busybox" && f.Position == 4242 && f.Kind == OpenFileKind.Regular && f.Access == 'r');
        Assert.Equal(2, mine.Count(f => f.Kind == OpenFileKind.Pipe));
        Assert.Single(mine, f => f.Path == "anon_inode:[eventfd]" && (f.Flags & OpenFiles.O_CLOEXEC) != 0);
        Assert.Equal(10, mine.Count(f => f.Kind == OpenFileKind.Socket && f.Path.StartsWith("socket:[", StringComparison.Ordinal)));
    }

    [Fact]
    public void Lsof_cli_one_process_live_as_json()
    {
        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        var (code, json, err) = CliRun.Run("lsof", netfiles.ToString(CultureInfo.InvariantCulture), "--qemu", guest.Guest.RamFilePath, "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(json);
        var links = doc.RootElement.EnumerateArray().Select(f => $"{f.GetProperty("fd").GetInt32()}\t{f.GetProperty("path").GetString()}").ToList();
        Assert.Equal(guest.Views.Fds[netfiles].OrderBy(f => f.Fd).Select(f => $"{f.Fd}\t{f.Link}"), links);
    }

    /// <summary>"kind local remote st inode" of every /proc/net/tcp, tcp6, udp, udp6 row (header skipped).</summary>
    private List<string> ProcNetInet()
    {
        var rows = new List<string>();
        foreach (var kind in new[] { "tcp", "tcp6", "udp", "udp6" })
            foreach (var line in guest.Views.Net[kind].Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                rows.Add($"{kind} {f[1]} {f[2]} {f[3]} {f[9]} uid {f[7]}"); // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            }
        return rows;
    }

    [Fact]
    public void Sockets_kernel_tables_equal_proc_net_and_every_one_has_its_owner()
    {
        var report = new Sockets(Kernel).Read();
        Assert.Empty(report.Unavailable);
        Assert.Empty(report.Gaps);
        Assert.DoesNotContain(report.Sockets, s => s.IsFinding);
        var ours = report.Sockets.Where(s => s.Kind is SocketKind.Tcp or SocketKind.Tcp6 or SocketKind.Udp or SocketKind.Udp6)
            .Select(s => $"{s.Kind.ToString().ToLowerInvariant()} {s.Local} {s.Remote} {s.State:X2} {s.Inode} uid {s.Uid}").Order().ToList();
        Assert.Equal(ProcNetInet().Order(), ours);
        // netfiles: tcp listener + established pair, tcp6 listener, udp, udp6; uidsocks (uid 4242): tcp listener, udp.
        Assert.Equal(8, ours.Count);
        Assert.Equal(2, ours.Count(r => r.EndsWith(" uid 4242", StringComparison.Ordinal)));

        // /proc/net/unix: Flags Type St Inode Path.
        var unix = guest.Views.Net["unix"].Skip(1).Select(line =>
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return $"{int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture):x} {int.Parse(f[4], NumberStyles.HexNumber, CultureInfo.InvariantCulture)} {int.Parse(f[5], NumberStyles.HexNumber, CultureInfo.InvariantCulture)} {f[6]} {(f.Length > 7 ? f[7] : "")}".TrimEnd();
        }).Order().ToList();
        var ourUnix = report.Sockets.Where(s => s.Kind == SocketKind.Unix)
            .Select(s => $"{(s.Listening ? Sockets.SoAcceptCon : 0):x} {s.Type} {s.SocketState} {s.Inode} {s.Local}".TrimEnd()).Order().ToList();
        Assert.Equal(unix, ourUnix);

        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        int uidsocks = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "uidsocks").Key;
        Assert.All(report.Sockets, s => Assert.Equal([s.Uid == 4242 ? uidsocks : netfiles], s.Owners));
        Assert.All(report.Sockets.Where(s => s.Kind != SocketKind.Netlink), s => Assert.Equal(SocketViews.FileTable | SocketViews.KernelTable, s.Seen));
        // netlink through the file table: protocol, port id and inode as /proc/net/netlink prints them (Eth, Pid, Inode).
        var netlink = guest.Views.Net["netlink"].Skip(1).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(f => $"{f[1]} {f[2]} {f[9]}").ToHashSet();
        var ourNetlink = Assert.Single(report.Sockets, s => s.Kind == SocketKind.Netlink);
        Assert.Contains($"{ourNetlink.Protocol} {ourNetlink.PortId} {ourNetlink.Inode}", netlink);
        // ... and, bound (port id non-zero), through nl_table as well: the second view.
        Assert.NotEqual(0u, ourNetlink.PortId);
        Assert.Equal(SocketViews.FileTable | SocketViews.KernelTable, ourNetlink.Seen);
    }

    [Fact]
    public void Sockets_cli_live_json_lists_the_tcp_listener_with_its_owner()
    {
        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        var (code, json, err) = CliRun.Run("sockets", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(json);
        var listeners = doc.RootElement.EnumerateArray().Where(s => s.GetProperty("kind").GetString() == "Tcp" && s.GetProperty("state").GetInt32() == 10).ToList();
        var listener = Assert.Single(listeners, s => s.GetProperty("local").GetString() == "0100007F:1B59"); // 127.0.0.1:7001
        Assert.Equal(netfiles, Assert.Single(listener.GetProperty("pids").EnumerateArray()).GetInt32());
        Assert.True(listener.GetProperty("inKernelTable").GetBoolean());
        Assert.Equal(0u, listener.GetProperty("uid").GetUInt32());
        // /bin/uidsocks' listener on 127.0.0.1:7005 belongs to uid 4242.
        Assert.Equal(4242u, Assert.Single(listeners, s => s.GetProperty("local").GetString() == "0100007F:1B5D").GetProperty("uid").GetUInt32());
    }

    /// <summary>The text table's UID column: sk_uid from BTF, and inferred without it (uidsocks runs as uid 4242).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sockets_cli_text_shows_each_sockets_owner_uid(bool noBtf)
    {
        string[] args = noBtf ? ["sockets", "--dump", guest.DumpPath, "--no-btf", "--no-offsets-cache"] : ["sockets", "--dump", guest.DumpPath];
        var (code, text, err) = CliRun.Run(args);
        output.WriteLine(text + err);
        Assert.True(code == 0, err);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int uidColumn = Array.IndexOf(header, "UID"), localColumn = Array.IndexOf(header, "LOCAL");
        Assert.True(uidColumn > 0 && localColumn >= 0, lines[0]);
        // The columns up to UID are never empty (FINDING is, on a clean row).
        var rows = lines.Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length > uidColumn).ToList();
        Assert.Equal("4242", Assert.Single(rows, f => f[0] == "tcp" && f[1] == "0A" && f[localColumn] == "0100007F:1B5D")[uidColumn]); // listening on 127.0.0.1:7005
        Assert.Equal("0", Assert.Single(rows, f => f[0] == "tcp" && f[1] == "0A" && f[localColumn] == "0100007F:1B59")[uidColumn]); // netfiles (root) listening on 7001
    }

    [Fact]
    public void Dump_process_writes_a_core_gdb_loads_with_the_known_variable_and_registers()
    {
        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        string core = Path.Combine(guest.Guest.WorkDirectory, "netfiles.core");
        var (code, text, err) = CliRun.Run("dump", "process", netfiles.ToString(CultureInfo.InvariantCulture), "--out", core, "--dump", guest.DumpPath);
        output.WriteLine(text + err);
        Assert.True(code == 0, err);
        string exe = Path.Combine(GuestImage.Directory(), "rootfs", "bin", "netfiles");
        var psi = new System.Diagnostics.ProcessStartInfo("gdb", ["-batch", "-nx", "-ex", "print/x *(unsigned long *)&known_value", "-ex", "info threads", "-ex", "print/x $rip", "-ex", "print/x $fs_base", exe, core])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var gdb = System.Diagnostics.Process.Start(psi)!;
        string said = gdb.StandardOutput.ReadToEnd() + gdb.StandardError.ReadToEnd();
        gdb.WaitForExit();
        output.WriteLine(said);
        Assert.Contains("$1 = 0x5045524953434f50", said); // "PERISCOP", netfiles.c's known_value, read from the core
        Assert.Contains("LWP " + netfiles, said);
        // The thread sleeps in pause(): its saved rip is in the program's text, fs_base (TLS) set by the static libc.
        var rip = System.Text.RegularExpressions.Regex.Match(said, @"\$2 = 0x([0-9a-f]+)");
        Assert.True(rip.Success, said);
        var text0 = Kernel.GetVmas(Kernel.Tasks.Single(t => t.Pid == netfiles)).First(v => v.IsExecutable && v.Path.EndsWith("/netfiles", StringComparison.Ordinal));
        Assert.InRange(ulong.Parse(rip.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), text0.Start, text0.End - 1);
        Assert.Matches(@"\$3 = 0x[1-9a-f][0-9a-f]+", said);
    }
}

