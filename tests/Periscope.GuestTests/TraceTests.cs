using System.Diagnostics;
using System.Globalization;
using Periscope.Events;
using Periscope.Events.Ring;
using Periscope.Events.Syscalls;
using Periscope.Qemu;
using Periscope.Targets;
using Periscope.TraceRing;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>The QEMU trace plugin built from today's sources: scripts/build-trace-plugin publishes it, or finds it in its
/// cache keyed by the plugin's sources (a plugin of an older ring layout is never reused).</summary>
public static class TracePluginImage
{
    private static readonly Lazy<string> Built = new(Build);

    public static string Path() => Built.Value;

    private static string Build()
    {
        string root = GuestImage.RepoRoot();
        var psi = new ProcessStartInfo("bash", [System.IO.Path.Combine(root, "scripts", "build-trace-plugin")]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        string so = output.Split('\n')[^1].Trim();
        if (p.ExitCode != 0 || !File.Exists(so)) throw new InvalidOperationException($"scripts/build-trace-plugin failed with exit code {p.ExitCode}: {output}");
        return so;
    }
}

/// <summary>One guest started with the trace plugin for a whole test class, attached live through its RAM file.</summary>
public class TraceGuest : IDisposable
{
    public TraceGuest()
    {
        string image = GuestImage.Directory();
        Guest = QemuGuest.Start(new QemuGuestOptions
        {
            Kernel = System.IO.Path.Combine(image, "vmlinuz"),
            Initrd = System.IO.Path.Combine(image, "initrd.gz"),
            Cpu = "qemu64",
            Plugin = TracePluginImage.Path(),
        });
        try
        {
            Guest.WaitForDataMarker("@@DONE", TimeSpan.FromSeconds(300));
            Live = Target.AttachLive(Guest.RamFilePath, null);
        }
        catch
        {
            Guest.Dispose();
            throw;
        }
    }

    public QemuGuest Guest { get; }
    public Target Live { get; }

    public (int ExitCode, string Output) Run(string command) => Guest.RunCommand(command, TimeSpan.FromSeconds(120));

    public void Dispose()
    {
        Live.Dispose();
        Guest.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// Live syscall events against the guest's own account: guest/programs/sysseq makes a known sequence of calls and
/// prints what it called with and got back, on the command port; the trace must show exactly those.
/// </summary>
public sealed class TraceTests(TraceGuest guest, ITestOutputHelper log) : IClassFixture<TraceGuest>
{
    /// <summary>Runs <paramref name="command"/> in the guest while a tracer collects the events it accepts.</summary>
    private (string Output, List<SyscallEvent> Events, TraceTotals Totals, Periscope.Events.Tasks.TaskResolver Tasks) TraceWhile(string command, Func<string?, bool>? calls = null, Func<Periscope.Events.Tasks.TracedTask, bool>? filter = null)
        => TraceWhile(command, calls, filter, live: null);

    /// <param name="live">Called with each event as the reader delivers it, while the guest runs: what it reads from
    /// guest memory (argv, exe) is read as `trace exec` reads it, not after the processes have gone.</param>
    private (string Output, List<SyscallEvent> Events, TraceTotals Totals, Periscope.Events.Tasks.TaskResolver Tasks) TraceWhile(string command, Func<string?, bool>? calls, Func<Periscope.Events.Tasks.TracedTask, bool>? filter, Func<Periscope.Events.Tasks.TaskResolver, Action<SyscallEvent>>? live)
    {
        using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
        Assert.Equal(PluginState.Armed, ring.State);
        var tracer = new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits);
        if (calls is not null) tracer.Calls = calls;
        if (filter is not null) tracer.Filter = filter;
        var events = new List<SyscallEvent>();
        bool stop = false;
        var observe = live?.Invoke(tracer.Tasks);
        var reader = new Thread(() => tracer.Run(e => { lock (events) { events.Add(e); observe?.Invoke(e); } }, () => Volatile.Read(ref stop), CancellationToken.None));
        reader.Start();
        var (code, output) = guest.Run(command);
        Assert.True(code == 0, $"{command}: exit {code}: {output}");
        // Every record of the command was written before its output came back (the plugin writes in the vCPU thread,
        // at the instruction): wait until the reader has handed out all of them, however slow the machine.
        var written = ring.WriteIndices();
        var waited = Stopwatch.StartNew();
        while (!ring.HasRead(written))
        {
            Assert.True(reader.IsAlive, "the reader stopped before it read the command's records");
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(300), "the reader did not read the command's records within 300 s");
            Thread.Sleep(10);
        }
        Volatile.Write(ref stop, true);
        reader.Join();
        tracer.DrainOnce(e => { events.Add(e); observe?.Invoke(e); });
        foreach (var e in tracer.Unfinished) { events.Add(e); observe?.Invoke(e); }
        log.WriteLine($"{events.Count} events; {tracer.Totals}");
        return (output, events, tracer.Totals, tracer.Tasks);
    }

    internal static string[] Lines(string output) => output.Replace("\r", "").Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void Plugin_found_the_syscall_entry_by_its_code()
    {
        using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
        Assert.Equal(PluginState.Armed, ring.State);
        // The plugin reports where it recognised the entry (swapgs). Kernels built with IBT (6.12, 7.x) open the
        // function with endbr64 (f3 0f 1e fa), four bytes before it.
        ulong symbol = guest.Live.Kernel.Symbols.GetAddress("entry_SYSCALL_64");
        if (ring.EntryAddress != symbol)
        {
            Assert.Equal(symbol + 4, ring.EntryAddress);
            var endbr = new byte[4];
            Assert.Equal(4, guest.Live.Kernel.KernelSpace.Read(symbol, endbr));
            Assert.Equal(new byte[] { 0xf3, 0x0f, 0x1e, 0xfa }, endbr);
        }
        Assert.InRange(ring.EntryProbe, ring.EntryAddress + 1, ring.EntryAddress + 0x200);
        Assert.InRange(ring.ExitProbe, ring.EntryProbe + 1, ring.EntryAddress + 0x280);
        // 6.1 decides between SYSRET and IRET in the entry code: one exit probe. From 6.2 do_syscall_64 returns the
        // choice and a conditional branch leads to the shared IRET return, which gets a probe of its own.
        if (Periscope.Linux.LinuxKernel.ReleaseVersion(guest.Live.Kernel.Release) < new Version(6, 2)) Assert.Equal(0UL, ring.ReturnPath);
        else
        {
            Assert.NotEqual(0UL, ring.ReturnPath);
            Assert.InRange(ring.ReturnProbe, ring.ReturnPath, ring.ReturnPath + 0x80);   // the plugin looks that far (ExitWindow)
        }
        Assert.StartsWith("x64_sys_call", new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits).Names.Source);   // 6.9+, and 6.1.192 (backported)
        Assert.Equal(guest.Guest.ProcessId, ring.QemuProcessId);
    }

    [Fact]
    public void Known_syscall_sequence_has_exact_counts_names_paths_and_return_values()
    {
        var (output, events, totals, _) = TraceWhile("/bin/sysseq calls", filter: t => t.Comm == "sysseq");
        var lines = Lines(output);
        Assert.Contains("DONE", lines);
        int pid = int.Parse(lines.Single(l => l.StartsWith("PID ")).Split(' ')[1], CultureInfo.InvariantCulture);
        Assert.Equal(0UL, totals.Ring.Dropped);
        Assert.Equal(0UL, totals.Ring.Gaps);

        // The window between the two marker calls, getpgid(4242) and getpgid(4343), in the order the program made them.
        var mine = events.Where(e => e.Task?.Tgid == pid).OrderBy(e => e.Seq).ToList();
        int start = mine.FindIndex(e => e.Name == "getpgid" && e.Raw.A0 == 4242);
        int end = mine.FindIndex(e => e.Name == "getpgid" && e.Raw.A0 == 4343);
        Assert.True(start >= 0 && end > start, $"markers not seen in {mine.Count} events of pid {pid}");
        var window = mine.Skip(start + 1).Take(end - start - 1).ToList();

        var expectedCounts = lines.Where(l => l.StartsWith("COUNT ")).Select(l => l.Split(' ')).ToDictionary(p => p[1], p => int.Parse(p[2], CultureInfo.InvariantCulture));
        var tracedCounts = window.GroupBy(e => e.DisplayName).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(expectedCounts.OrderBy(kv => kv.Key), tracedCounts.OrderBy(kv => kv.Key));

        // Call by call: the name, the decoded path (or the fd) and the return value the program itself got.
        var calls = lines.Where(l => l.StartsWith("CALL ")).Select(l => l.Split(' ')).ToList();
        Assert.Equal(calls.Count, window.Count);
        for (int i = 0; i < calls.Count; i++)
        {
            var (name, arg, ret) = (calls[i][1], calls[i][2], long.Parse(calls[i][3], CultureInfo.InvariantCulture));
            var e = window[i];
            Assert.Equal(name, e.Name);
            Assert.Equal(ret, e.Return);
            Assert.Equal(pid, e.Task!.Tgid);
            switch (name)
            {
                case "openat" or "newfstatat":
                    Assert.Equal(arg, e.Arguments[1].Path);
                    break;
                case "read" or "close":
                    Assert.Equal(arg, e.Arguments[0].Text);
                    break;
                case "connect":
                    Assert.Equal($"{{sa_family=AF_UNIX, sun_path=\"{arg}\"}}", e.Arguments[1].Text);
                    break;
            }
        }
        Assert.Equal("-1 ENOENT", window[0].ReturnText);
    }

    [Fact]
    public void Exec_with_known_argv_appears_with_path_argv_pid_and_parent_also_when_forked_from_a_thread()
    {
        ProcessTracker? tracker = null;
        var processEvents = new List<ProcessEvent>();
        var (output, _, _, _) = TraceWhile("/bin/sysseq exec", ProcessTracker.Wants, filter: null, live: tasks =>
        {
            tracker = new ProcessTracker(1000, tasks);
            return e => { if (tracker.Observe(e) is { } pe) processEvents.Add(pe); };
        });
        var lines = Lines(output);
        int parent = int.Parse(lines.Single(l => l.StartsWith("PARENT ")).Split(' ')[1], CultureInfo.InvariantCulture);
        var children = lines.Where(l => l.StartsWith("CHILD ")).Select(l => l.Split(' ')).ToDictionary(p => p[2], p => int.Parse(p[1], CultureInfo.InvariantCulture));
        var execed = lines.Where(l => l.StartsWith("EXECED ")).Select(l => l.Split(' ')).ToDictionary(p => int.Parse(p[1], CultureInfo.InvariantCulture), p => int.Parse(p[2], CultureInfo.InvariantCulture));
        Assert.Equal(2, children.Count);

        foreach (var (tag, pid) in children)
        {
            var exec = Assert.Single(processEvents, p => p.Kind == ProcessEventKind.Exec && p.Pid == pid);
            Assert.Equal("/bin/sysseq", exec.Path);
            Assert.Equal(["sysseq", "child", tag, "alpha beta"], exec.Argv);
            Assert.Equal(parent, exec.ParentPid);
            Assert.Equal(execed[pid], exec.ParentPid);   // what the child itself saw as getppid()
            Assert.Equal(0u, exec.Uid);
            Assert.Equal("sysseq", exec.Comm);
            var fork = Assert.Single(processEvents, p => p.Kind == ProcessEventKind.Fork && p.Pid == pid);
            Assert.Equal(parent, fork.ParentPid);
            var exit = Assert.Single(processEvents, p => p.Kind == ProcessEventKind.Exit && p.Pid == pid);
            Assert.Equal(7, exit.ExitCode);
        }
        Assert.DoesNotContain(tracker!.Tree.Keys, k => children.ContainsValue(k));   // exited children left the tree
    }

    [Fact]
    public void A_code_page_changed_in_a_running_process_is_caught_at_its_next_syscall()
    {
        // The program's entry point (_start, static non-PIE) ran at exec, so its page is resident.
        string sysseq = Path.Combine(GuestImage.Directory(), "rootfs", "bin", "sysseq");
        ulong entry = BitConverter.ToUInt64(File.ReadAllBytes(sysseq), 0x18);
        string db = Path.Combine(guest.Guest.WorkDirectory, $"trace-{Guid.NewGuid():n}.db");
        using var store = Periscope.Integrity.Baselines.BaselineStore.Open(db);
        using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
        var tracer = new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits);
        using var measurer = new Periscope.Events.Measurement.ExecCodeMeasurer(guest.Live.Kernel, store, guest.Live.Limits);
        var tracker = new ProcessTracker(1000, tracer.Tasks);
        var findings = new List<Periscope.Events.Measurement.CodePageFinding>();
        int execs = 0;
        bool stop = false;
        var reader = new Thread(() => tracer.Run(e =>
        {
            var p = ProcessTracker.Wants(e.Name) ? tracker.Observe(e) : null;
            var found = p is { Kind: ProcessEventKind.Exec } && e.ExitTask is { } started && started.Comm == "sysseq"
                ? measurer.OnExec(started, e.Timestamp) : measurer.OnSyscall(e);
            if (p is { Kind: ProcessEventKind.Exec, Comm: "sysseq" }) Interlocked.Increment(ref execs);
            lock (findings) findings.AddRange(found);
        }, () => Volatile.Read(ref stop), CancellationToken.None));
        reader.Start();
        int pid = 0;
        try
        {
            var (code, started) = guest.Run("/bin/sysseq tick > /dev/null 2>&1 & echo $!");
            Assert.Equal(0, code);
            pid = int.Parse(started.Trim(), CultureInfo.InvariantCulture);
            WaitFor(() => Volatile.Read(ref execs) > 0 && measurer.Counts.Measured > 0, "the exec to be measured");
            Assert.Empty(findings);
            var (mapsCode, maps) = guest.Run($"grep ' r-xp ' /proc/{pid}/maps");
            Assert.Equal(0, mapsCode);
            var text = maps.Trim().Split('\n')[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var range = text[0].Split('-');
            ulong start = ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong fileOffset = ulong.Parse(text[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var (tamperCode, tamper) = guest.Run($"(grep -q '^periscope_tamper ' /proc/modules || insmod /lib/modules/periscope_tamper.ko) && echo usercode {pid} 0x{entry:x} > /proc/periscope_tamper && cat /proc/periscope_tamper");
            Assert.True(tamperCode == 0, tamper);
            Assert.Contains($"usercode {pid} addr=0x{entry:x}", tamper);
            WaitFor(() => { lock (findings) return findings.Count > 0; }, "the changed page to be found");
            var finding = Assert.Single(findings);
            Assert.Equal(pid, finding.Pid);
            Assert.Equal("/bin/sysseq", finding.File);
            Assert.Equal(entry & ~0xfffUL, finding.VirtualAddress);
            Assert.Equal(fileOffset + ((entry & ~0xfffUL) - start), finding.FileOffset);
            log.WriteLine($"{finding.File}+0x{finding.FileOffset:x}; {measurer.Counts}");
        }
        finally
        {
            Volatile.Write(ref stop, true);
            reader.Join();
            if (pid > 0) guest.Run($"echo restore > /proc/periscope_tamper; kill {pid}");
        }
    }

    [Fact]
    public void A_code_page_that_becomes_resident_after_exec_is_measured_when_it_does()
    {
        // sysseq late: late_code sits alone in a 64 KiB window of its own, so nothing maps it before it runs; the
        // program runs it only once /tmp/late.go exists, which this test creates after the exec was measured.
        string db = Path.Combine(guest.Guest.WorkDirectory, $"trace-{Guid.NewGuid():n}.db");
        using var store = Periscope.Integrity.Baselines.BaselineStore.Open(db);
        using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
        var tracer = new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits);
        using var measurer = new Periscope.Events.Measurement.ExecCodeMeasurer(guest.Live.Kernel, store, guest.Live.Limits);
        var tracker = new ProcessTracker(1000, tracer.Tasks);
        var findings = new List<Periscope.Events.Measurement.CodePageFinding>();
        var measuredExecs = new HashSet<int>();
        var gate = new object();
        bool stop = false;
        var reader = new Thread(() => tracer.Run(e =>
        {
            lock (gate)
            {
                var p = ProcessTracker.Wants(e.Name) ? tracker.Observe(e) : null;
                bool exec = p is { Kind: ProcessEventKind.Exec } && e.ExitTask is { Comm: "sysseq" };
                findings.AddRange(exec ? measurer.OnExec(e.ExitTask!, e.Timestamp) : measurer.OnSyscall(e));
                if (exec) measuredExecs.Add(e.ExitTask!.Tgid);
            }
        }, () => Volatile.Read(ref stop), CancellationToken.None));
        reader.Start();
        int pid = 0;
        try
        {
            var (code, started) = guest.Run("rm -f /tmp/late.go; /bin/sysseq late > /tmp/late.out 2>&1 & echo $!");
            Assert.Equal(0, code);
            pid = int.Parse(started.Trim(), CultureInfo.InvariantCulture);
            WaitFor(() => { lock (gate) return measuredExecs.Contains(pid); }, "the exec to be measured");
            string late = "";
            WaitFor(() => (late = guest.Run("cat /tmp/late.out").Output).Contains("LATE "), "the program to print its late page");
            ulong page = ulong.Parse(Lines(late).First(l => l.StartsWith("LATE ")).Split(' ')[1][2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            lock (gate) Assert.DoesNotContain(page, measurer.CaughtUpPages(pid));
            var before = measurer.Counts;
            Assert.True(before.Skipped > 0, $"nothing was skipped at exec: {before}");

            Assert.Equal(0, guest.Run("touch /tmp/late.go").ExitCode);
            WaitFor(() => guest.Run("cat /tmp/late.out").Output.Contains("TOUCHED 18"), "the program to run its late page");
            WaitFor(() => { lock (gate) return measurer.CaughtUpPages(pid).Contains(page); }, "the late page to be measured at a later syscall");
            lock (gate)
            {
                log.WriteLine($"late page 0x{page:x}; {measurer.Counts}");
                Assert.True(measurer.Counts.CaughtUp > before.CaughtUp);
                Assert.Empty(findings);
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            reader.Join();
            if (pid > 0) guest.Run($"kill {pid}; rm -f /tmp/late.go /tmp/late.out");
        }
    }

    [Fact]
    public void A_stalled_consumer_never_blocks_the_guest_which_keeps_making_progress_while_events_are_dropped()
    {
        using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
        var tracer = new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits);
        // Never read: the ring fills, then every event is dropped; the program's rounds must go on all the same.
        var (code, started) = guest.Run("rm -f /tmp/progress; /bin/sysseq progress 20000 > /dev/null 2>&1 & echo $!");
        Assert.Equal(0, code);
        int pid = int.Parse(started.Trim(), CultureInfo.InvariantCulture);
        try
        {
            WaitFor(() => tracer.Totals.Ring.Dropped > 0, "the ring to be full");
            int Progress() => guest.Run("cat /tmp/progress 2>/dev/null").Output.Trim() is var t && t.StartsWith("PROGRESS ") ? int.Parse(t[9..], CultureInfo.InvariantCulture) : 0;
            int first = 0;
            WaitFor(() => (first = Progress()) > 0, "a first round");
            ulong droppedAtFirst = tracer.Totals.Ring.Dropped;
            WaitFor(() => Progress() >= first + 3, "three more rounds while nobody reads");
            var totals = tracer.Totals;
            log.WriteLine($"rounds {first} -> {Progress()}; {totals}");
            Assert.True(totals.Ring.Dropped >= droppedAtFirst + 3 * 20000, $"dropped {droppedAtFirst} then {totals.Ring.Dropped}");
            Assert.Equal(0UL, totals.Ring.Delivered);
        }
        finally
        {
            guest.Run($"kill {pid}");
        }
    }

    internal static void WaitFor(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(180)) Assert.Fail($"timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }

    [Fact]
    public void A_consumer_that_stops_reading_sees_drops_as_gaps_and_the_guest_runs_on()
    {
        using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
        var tracer = new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits);
        ulong calls = ring.Capacity * 2;
        // Not reading while the guest makes twice the ring's capacity in syscalls: the guest must finish anyway.
        var (code, output) = guest.Run($"/bin/sysseq loop {calls}");
        Assert.Equal(0, code);
        Assert.StartsWith($"LOOP {calls} ", output.Trim());
        var full = tracer.Totals;
        Assert.True(full.Ring.Dropped >= calls, $"dropped {full.Ring.Dropped}, expected at least {calls} of {2 * calls} events");
        // Reading again: the records kept are delivered, and the first one after the loss shows the gap.
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            tracer.DrainOnce(_ => { });
            if (tracer.Totals.Ring.Gaps > 0) break;
            Thread.Sleep(10);
        }
        tracer.DrainOnce(_ => { });
        var after = tracer.Totals;
        log.WriteLine(after.ToString());
        Assert.True(after.Ring.Gaps > 0, "no gap seen after the loss");
        Assert.Equal(after.Ring.Dropped, after.Ring.Gaps);
        // The guest runs on while we read the counters: at most what it made since the last drain is still in flight.
        Assert.InRange((long)after.Ring.Produced - (long)(after.Ring.Delivered + after.Ring.Dropped), 0, (long)ring.Capacity);
    }
}
