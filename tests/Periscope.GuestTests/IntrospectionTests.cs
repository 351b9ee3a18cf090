using Periscope.Memory;
using Periscope.Targets;
using Periscope.Linux.Model;
using Periscope.X86;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// Periscope's view of a real guest compared with the guest's own view (its /proc, printed on ttyS1), from a dump and
/// live. Processes may start or end between the guest's listing and the read: only short-lived helpers of the
/// guest's own scripts (cat, the 7-second sleep of the shell loop, subshells) may be missing on either side.
/// </summary>
public abstract class IntrospectionTests<TGuest>(TGuest guest, ITestOutputHelper output) where TGuest : GuestFixture
{
    // Short-lived helpers of the guest's shell loops; "exe" is a busybox applet caught while busybox re-executes itself
    // through /proc/self/exe (its comm until the applet's own exec).
    private static readonly HashSet<string> Transient = ["cat", "sleep", "sh", "init", "exe"];

    /// <summary>A transient helper, or a workqueue worker: the kernel starts and retires kworkers as load asks (seen on
    /// 6.12: kworker/0:2 appeared between the guest's listing and the dump).</summary>
    private static bool MayComeAndGo(string comm) => Transient.Contains(comm) || comm.StartsWith("kworker/", StringComparison.Ordinal);

    protected abstract PagingMode ExpectedPaging { get; }

    [Fact]
    public void Paging_mode_and_KASLR_base_match_the_guest()
    {
        var k = guest.Dump.Kernel;
        output.WriteLine($"boot {guest.BootSeconds:0.0} s, dump {guest.DumpSeconds:0.0} s");
        foreach (var f in k.Log.Facts) output.WriteLine($"{f.Name}: {f.Value} ({f.How})");
        Assert.Equal(ExpectedPaging, k.Layout.Mode);
        ulong text = guest.Truth.Symbols.First(s => s.Name == "_text").Address;
        Assert.Equal(text, k.Layout.TextVa);
        Assert.Equal(guest.Truth.Banner, k.Banner);
        Assert.Empty(k.Log.Warnings);
        // The dump's vCPU note agrees with the layout found without it.
        Assert.Equal(ExpectedPaging, PagingModes.FromCr4(guest.Dump.Cpus[0].Cr4!.Value));
    }

    [Fact]
    public void Every_kallsyms_line_is_identical()
    {
        var ours = guest.Dump.Kernel.Symbols.All;
        var truth = guest.Truth.Symbols;
        Assert.True(truth.Count > 50_000, $"ground truth holds only {truth.Count} symbols");
        Assert.Equal(truth.Count, ours.Count);
        for (int i = 0; i < truth.Count; i++)
        {
            var (address, type, name) = truth[i];
            if (ours[i].Address != address || ours[i].Type != type || ours[i].Name != name)
                Assert.Fail($"symbol {i}: guest says {address:x16} {type} {name}, Periscope says {ours[i].Address:x16} {ours[i].Type} {ours[i].Name}");
        }
    }

    [Fact]
    public void Every_module_kallsyms_line_is_identical()
    {
        // /proc/kallsyms after the core symbols: each live module's symbols, "ADDRESS TYPE NAME\t[MODULE]", type letter
        // upper-case for the module's own exports. Lines of pseudo-modules ([bpf], [__builtin__ftrace]) are not modules.
        var modules = guest.Truth.Modules.Select(m => m.Name).ToHashSet();
        var truth = guest.Truth.ModuleSymbolLines.Where(l => modules.Contains(l[(l.LastIndexOf('[') + 1)..^1])).ToList();
        var ours = ModuleSymbols.Read(guest.Dump.Kernel).Select(s => s.ToString()).ToList();
        Assert.True(modules.Count > 0 && truth.Count > 50, $"ground truth holds only {truth.Count} module symbol lines of {modules.Count} modules");
        Assert.DoesNotContain(guest.Dump.Kernel.Diagnostics.Items, d => d.Area == "module symbols");
        Assert.Contains(truth, l => l[17] is >= 'A' and <= 'Z'); // the exported-symbol rule is exercised
        for (int i = 0; i < Math.Min(truth.Count, ours.Count); i++)
            if (truth[i] != ours[i])
                Assert.Fail($"module symbol line {i}: guest says '{truth[i]}', Periscope says '{ours[i]}'");
        Assert.Equal(truth.Count, ours.Count);

        // --module: one module's lines, in the same order.
        string one = truth[0][(truth[0].LastIndexOf('[') + 1)..^1];
        Assert.Equal(truth.Where(l => l.EndsWith($"[{one}]", StringComparison.Ordinal)),
            ModuleSymbols.Read(guest.Dump.Kernel, one).Select(s => s.ToString()));
    }

    [Fact]
    public void Module_symbol_caps_stop_the_listing_with_a_diagnostic()
    {
        // The per-module and total caps from IntrospectionLimits: a module above the cap is skipped, the total stops
        // the listing, each with a line stating the number found and the limit, and the result is marked incomplete.
        int largest = guest.Truth.ModuleSymbolLines.GroupBy(l => l[(l.LastIndexOf('[') + 1)..^1]).Max(g => g.Count());
        using (var capped = Target.OpenDump(guest.DumpPath, new TargetOptions { Limits = IntrospectionLimits.Default with { MaxModuleSymbols = 8 } }))
        {
            var symbols = ModuleSymbols.Read(capped.Kernel);
            Assert.True(symbols.Count < largest, $"{symbols.Count} symbols read with a cap of 8 per module");
            Assert.Contains(capped.Kernel.Diagnostics.Items, d => d.Area == "module symbols"
                && d.Message.Contains("num_symtab", StringComparison.Ordinal) && d.Message.Contains("exceeds MaxModuleSymbols = 8", StringComparison.Ordinal));
            Assert.True(capped.Kernel.IsIncomplete);
        }
        using (var capped = Target.OpenDump(guest.DumpPath, new TargetOptions { Limits = IntrospectionLimits.Default with { MaxModuleSymbolsTotal = 1 } }))
        {
            Assert.Empty(ModuleSymbols.Read(capped.Kernel));
            Assert.Contains(capped.Kernel.Diagnostics.Items, d => d.Message.Contains("exceed MaxModuleSymbolsTotal = 1", StringComparison.Ordinal));
            Assert.True(capped.Kernel.IsIncomplete);
        }
    }

    [Fact]
    public void Every_task_and_thread_matches_proc()
    {
        var ours = guest.Dump.Kernel.Tasks.Where(t => t.Pid != 0).ToDictionary(t => t.Pid);
        var truth = guest.Truth.Processes;
        var missing = truth.Keys.Where(p => !ours.ContainsKey(p)).ToList();
        var extra = ours.Keys.Where(p => !truth.ContainsKey(p)).ToList();
        foreach (int p in missing) output.WriteLine($"pid {p} ({truth[p].Leader.Comm}) ended before the dump");
        foreach (int p in extra) output.WriteLine($"pid {p} ({ours[p].Comm}) started after the guest's listing");
        Assert.All(missing, p => Assert.True(MayComeAndGo(truth[p].Leader.Comm), $"pid {p} ({truth[p].Leader.Comm}) missing"));
        Assert.All(extra, p => Assert.True(MayComeAndGo(ours[p].Comm), $"pid {p} ({ours[p].Comm}) not in the guest's listing"));
        Assert.True(truth.Count - missing.Count > 40, "too few processes in common");

        foreach (var (pid, stat) in truth)
        {
            if (!ours.TryGetValue(pid, out var task)) continue;
            Assert.True(SameComm(stat.Leader.Comm, task.Comm), $"pid {pid}: /proc comm '{stat.Leader.Comm}', Periscope '{task.Comm}'");
            Assert.Equal(stat.Leader.ParentPid, task.ParentPid);
            Assert.Equal(pid, task.Tgid);
            var threadIds = stat.Threads.Select(t => t.Pid).Order().ToList();
            Assert.Equal(threadIds, task.Threads.Select(t => t.Tid).Order().ToList());
        }
    }

    /// <summary>task->comm holds 15 characters; /proc shows full kthread names and "-workqueue" suffixes of kworkers.</summary>
    private static bool SameComm(string proc, string ours) =>
        proc == ours || (proc.StartsWith(ours, StringComparison.Ordinal) && (ours.Length == 15 || proc[ours.Length] == '-'));

    [Fact]
    public void Workload_processes_are_recognised()
    {
        var tasks = guest.Dump.Kernel.Tasks;
        var threaded = Assert.Single(tasks, t => t.Comm == "workload" && t.ThreadCount == 4);
        Assert.Equal("/bin/workload", threaded.ExePath);
        var renamed = Assert.Single(tasks, t => t.Comm == "renamed-proc");
        Assert.Equal("/bin/workload", renamed.ExePath);
        var zombie = Assert.Single(tasks, t => t.State == 'Z');
        Assert.False(zombie.IsKernelThread);
        Assert.Equal(0UL, zombie.Mm);
        Assert.Equal('Z', guest.Truth.Processes[zombie.Pid].Leader.State);
        var init = Assert.Single(tasks, t => t.Pid == 1);
        Assert.Equal("/bin/busybox", init.ExePath);
        Assert.Equal(0u, init.Uid);
        Assert.Contains(tasks, t => t.Comm == "kthreadd" && t.IsKernelThread);
    }

    [Fact]
    public void Process_forked_by_a_secondary_thread_has_the_forkers_tgid_as_parent()
    {
        var k = guest.Dump.Kernel;
        var forker = Assert.Single(k.Tasks, t => t.Comm == "thread-forker");
        var child = Assert.Single(k.Tasks, t => t.Comm == "thread-child");
        // The case under test: the child's real_parent is the forker's second thread, not its leader.
        Assert.True(k.Reader.TryPointer(child.Address + (ulong)k.Offsets.Task.RealParent, out ulong realParent));
        var thread = Assert.Single(forker.Threads, th => th.Address == realParent);
        Assert.NotEqual(forker.Pid, thread.Tid);
        // /proc/<child>/stat says PPid is the forker's tgid; so must Periscope.
        Assert.Equal(forker.Pid, guest.Truth.Processes[child.Pid].Leader.ParentPid);
        Assert.Equal(forker.Pid, child.ParentPid);
    }

    [Fact]
    public void Clean_guest_gives_a_complete_model_and_confirms_the_kernel_macros()
    {
        var k = guest.Dump.Kernel;
        foreach (var t in k.Tasks) k.GetVmas(t);
        Assert.NotEmpty(k.Modules);
        Assert.False(k.IsIncomplete, string.Join("\n", k.IncompleteReasons));
        Assert.True(k.Symbols.TryGetAddress("task_state_array", out _), "the state-letter check needs task_state_array");
        Assert.Empty(KernelMacros.Confirm(k.Symbols, k.Reader, k.ModuleArea, k.Offsets));
        Assert.Empty(KernelMacros.ConfirmKthreadFlag(k.Tasks, t => t.ExitState != 0));
        Assert.Equal(new VirtualRange(0xffffffffc0000000, 0xffffffffff000000), k.ModuleArea);
        Assert.All(guest.Truth.Modules, m => Assert.True(k.ModuleArea.Contains(m.Base, m.Size), $"{m.Name} at 0x{m.Base:x}"));
        // Enum values read from this kernel's BTF agree with what its /proc shows (modules are Live, maps matched above).
        Assert.Equal(8, k.Offsets.ListHeadPrev);
        Assert.Equal(0, k.Offsets.Module.StateLive);
        Assert.Equal(ModuleState.Live, Assert.Single(k.Modules, m => m.Name == guest.Truth.Modules[0].Name).State);
        Assert.Equal(0, k.Offsets.Pid!.PidTypePid);
    }

    [Fact]
    public void Task_read_ahead_reaches_every_listed_task_through_the_pid_IDR_within_its_page_cap()
    {
        var k = guest.Dump.Kernel;
        // The dump was just written, so it is in the page cache: every wave runs anyway, to see what each would cover.
        var prefetch = TaskPrefetch.Create(k.Physical, k.Reader, k.Symbols, k.Btf, k.Offsets, k.Limits, stopWhenResident: false);
        Assert.NotNull(prefetch);
        prefetch.Run();
        output.WriteLine($"tasks found {prefetch.TasksFound.Count}; pages per wave covered {string.Join(", ", prefetch.PagesCovered)}, asked {string.Join(", ", prefetch.PagesAsked)}");
        // Every listed task and thread has a pid in init_pid_ns's IDR, except init_task (pid 0 has no struct pid).
        var found = prefetch.TasksFound.ToHashSet();
        var missed = k.Tasks.SelectMany(t => t.Threads).Where(th => th.Address != k.InitTask && !found.Contains(th.Address)).Select(th => th.Tid).ToList();
        Assert.Empty(missed);
        // Four waves: struct pids, task_structs, creds and mms, exe files; each covers pages.
        Assert.Equal(4, prefetch.PagesCovered.Count);
        Assert.All(prefetch.PagesCovered, n => Assert.True(n > 0));

        var capped = TaskPrefetch.Create(k.Physical, k.Reader, k.Symbols, k.Btf, k.Offsets, k.Limits with { MaxTaskPrefetchPages = 5 }, stopWhenResident: false)!;
        capped.Run();
        Assert.Equal(5, capped.PagesCovered.Sum());
        // Reading ahead used none of the command's work budget and changed nothing the model reads.
        Assert.False(k.Budget.AnyExhausted);
    }

    [Fact]
    public void Modules_match_proc_modules()
        => ProcComparisons.ModulesMatch(guest.Truth, guest.Dump.Kernel);

    [Fact]
    public void Every_user_process_maps_match_proc_maps()
    {
        ProcComparisons.MapsMatch(guest.Truth, guest.Dump.Kernel);
        Assert.Empty(guest.Dump.Kernel.Diagnostics.Items);
    }

    [Fact]
    public void Anonymous_executable_mapping_is_visible()
    {
        var k = guest.Dump.Kernel;
        var mapper = k.Tasks.Single(t => guest.Truth.Maps.TryGetValue(t.Pid, out var m) && m.Any(x => x.Perms == "r--p" && x.Path == "/bin/busybox" && x.Offset == 0x1000 && x.End - x.Start == 0x2000));
        var vmas = k.GetVmas(mapper);
        Assert.Contains(vmas, v => v.Permissions == "rwxp" && v.Path == "" && v.End - v.Start == 0x1000);
        // Its code can be read through the process's own page tables: the page is filled with RET (0xc3).
        var anon = vmas.First(v => v.Permissions == "rwxp" && v.Path == "");
        var space = k.GetAddressSpace(mapper)!;
        var bytes = new byte[16];
        Assert.Equal(16, space.Read(anon.Start, bytes));
        Assert.All(bytes, b => Assert.Equal(0xc3, b));
    }

    [Fact]
    public void Live_guest_read_through_its_RAM_file_matches_under_pause()
    {
        using var live = guest.AttachLive();
        Assert.True(live.Cpus.Count >= 1);
        Assert.NotEqual(0UL, live.Cpus[0].Cr3 ?? 0);
        using (live.Pause())
        {
            Assert.Equal("paused", guest.Guest.Qmp.QueryStatus());
            var k = live.Kernel;
            Assert.Equal(guest.Dump.Kernel.Layout.TextVa, k.Layout.TextVa);
            Assert.Equal(guest.Truth.Modules.Select(m => (m.Name, m.Base)), k.Modules.Select(m => (m.Name, m.Base)));
            var pids = k.Tasks.Select(t => t.Pid).ToHashSet();
            foreach (var (pid, stat) in guest.Truth.Processes)
                Assert.True(pids.Contains(pid) || MayComeAndGo(stat.Leader.Comm), $"live: pid {pid} ({stat.Leader.Comm}) missing");
            var threaded = k.Tasks.Single(t => t.Comm == "workload" && t.ThreadCount == 4);
            Assert.Equal(guest.Truth.Maps[threaded.Pid].Count, k.GetVmas(threaded).Count);
        }
        Assert.Equal("running", guest.Guest.Qmp.QueryStatus());
    }
}

[CollectionDefinition("5-level guest")]
public sealed class FiveLevelCollection : ICollectionFixture<FiveLevelGuest>;

[CollectionDefinition("4-level guest")]
public sealed class FourLevelCollection : ICollectionFixture<FourLevelGuest>;

[Collection("5-level guest")]
public sealed class FiveLevelGuestTests(FiveLevelGuest guest, ITestOutputHelper output) : IntrospectionTests<FiveLevelGuest>(guest, output)
{
    protected override PagingMode ExpectedPaging => PagingMode.FiveLevel;
}

[Collection("4-level guest")]
public sealed class FourLevelGuestTests(FourLevelGuest guest, ITestOutputHelper output) : IntrospectionTests<FourLevelGuest>(guest, output)
{
    protected override PagingMode ExpectedPaging => PagingMode.FourLevel;
}
