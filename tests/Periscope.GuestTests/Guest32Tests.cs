using System.Diagnostics;
using System.Globalization;
using System.Text;
using Periscope.Linux.Discovery;
using Periscope.Linux.Model;
using Periscope.Linux.Tasks.Views;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.Qemu;
using Periscope.Targets;
using Periscope.X86;
using static Periscope.Tests.Shared.CliRun;

namespace Periscope.GuestTests;

/// <summary>
/// A booted i386 guest (guest/build-i386.sh: Debian's 686-pae or 686 kernel, i386 busybox and the 32-bit workload) and
/// one QMP dump of it. The guest's own view comes from its ttyS1 like the 64-bit guest's, parsed here for the parts
/// 32-bit tests compare with (banner and kallsyms lines of 8 hex digits).
/// </summary>
public abstract class Guest32Fixture : IDisposable
{
    protected Guest32Fixture(string flavour, string qemuBinary, int cpus = 1)
    {
        string image = ImageDirectory(flavour);
        Guest = QemuGuest.Start(new QemuGuestOptions
        {
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            QemuBinary = qemuBinary,
            Cpus = cpus,
            // no_timer_check: on a loaded host TCG can miss the IO-APIC timer check and the 686 kernel panics at boot.
            Append = "console=ttyS0 panic=-1 no_timer_check",
        });
        try
        {
            Guest.WaitForDataMarker("@@DONE", GuestImage.BootTimeout(300));
            string text;
            using (var fs = new FileStream(Guest.DataLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
                text = new StreamReader(fs).ReadToEnd();
            ParseTruth(text);
            FileNet = FileNetTruth.Parse(text);
            // Processes, threads, modules and maps as the 64-bit guest's parser reads them (its kallsyms parser expects 16
            // hex digits: that section is parsed above).
            Truth = GroundTruth.Parse(string.Join('\n', WithoutSection(text, "kallsyms")));
            DumpPath = Path.Combine(Guest.WorkDirectory, "guest.core");
            Guest.Qmp.DumpGuestMemory(DumpPath);
        }
        catch
        {
            Guest.Dispose();
            throw;
        }
    }

    public QemuGuest Guest { get; }
    public string DumpPath { get; } = "";
    public string Banner { get; private set; } = "";
    public Dictionary<string, ulong> Symbols { get; } = [];
    /// <summary>The core (non-module) lines of the guest's /proc/kallsyms, in its order.</summary>
    public List<(ulong Address, char Type, string Name)> KallsymsLines { get; } = [];
    /// <summary>The guest's own `dmesg -r` lines (truth.d/dmesg.sh), in its order.</summary>
    public List<string> DmesgLines { get; } = [];
    /// <summary>The module lines of the guest's /proc/kallsyms ("d080c230 t name\t[module]"), in its order.</summary>
    public List<string> ModuleKallsymsLines { get; } = [];
    /// <summary>/proc/PID/fd and fdinfo of every process (guest/truth.d/filenet.sh).</summary>
    public FileNetTruth FileNet { get; private set; } = new();
    /// <summary>/proc/net/NAME lines (truth.d/filenet.sh's "@@BEGIN net-NAME" sections), header first.</summary>
    public Dictionary<string, List<string>> Net { get; } = [];
    /// <summary>The guest's /proc view but kallsyms: processes with their threads, modules, every process's maps.</summary>
    public GroundTruth Truth { get; private set; } = new();
    /// <summary>The dump opened once for the model tests (offsets inferred: Debian's 686 kernels have no BTF; no cache).</summary>
    public Target Dump => _dump ??= Target.OpenDump(DumpPath);
    private Target? _dump;

    private static IEnumerable<string> WithoutSection(string text, string name)
    {
        bool skip = false;
        foreach (var raw in text.Split('\n'))
        {
            if (raw.StartsWith("@@", StringComparison.Ordinal)) skip = raw.TrimEnd('\r') == $"@@BEGIN {name}";
            if (!skip) yield return raw;
        }
    }
    public abstract PagingMode ExpectedMode { get; }

    /// <summary>Attaches to the running guest (its RAM file, QMP for registers and pausing).</summary>
    public Target AttachLive(TargetOptions? options = null) => Target.AttachLive(Guest.RamFilePath, QmpVmControl.Connect(Guest.ToolQmpSocketPath), options);

    private static string ImageDirectory(string flavour)
    {
        // Always asked of the script: it returns its cached image at once when the kernel package, guest/ and tamper/ are
        // unchanged, and rebuilds it when they are not (a stale image would lack, say, the tamper module).
        string root = GuestImage.RepoRoot();
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "guest", "build-i386.sh")]) { RedirectStandardOutput = true };
        psi.Environment["FLAVOUR"] = flavour;
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"guest/build-i386.sh ({flavour}) failed with exit code {p.ExitCode}");
        return output.Split('\n')[^1];
    }

    private void ParseTruth(string text)
    {
        string section = "";
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                if (line == "@@DONE") break;
                section = line.Split(' ')[1];
                continue;
            }
            if (section == "banner" && line.Length > 0) Banner = line;
            else if (section == "dmesg" && line.Length > 0) DmesgLines.Add(line);
            else if (section.StartsWith("net-", StringComparison.Ordinal) && line.Length > 0)
            {
                if (!Net.TryGetValue(section[4..], out var lines)) Net[section[4..]] = lines = [];
                lines.Add(line);
            }
            else if (section == "kallsyms" && line.Contains('\t')) ModuleKallsymsLines.Add(line);
            else if (section == "kallsyms")
            {
                var f = line.Split(' ');
                if (f.Length != 3) continue;
                ulong address = ulong.Parse(f[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                Symbols.TryAdd(f[2], address);
                KallsymsLines.Add((address, f[1][0], f[2]));
            }
        }
    }

    public void Dispose()
    {
        _dump?.Dispose();
        Guest.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Debian's 686-pae kernel under qemu-system-x86_64 (-cpu max): PAE paging, NX.</summary>
public sealed class PaeGuest() : Guest32Fixture("686-pae", "qemu-system-x86_64")
{
    public override PagingMode ExpectedMode => PagingMode.Pae32;
}

/// <summary>Debian's 686 kernel under qemu-system-i386: 2-level paging with 4 MiB pages, no NX.</summary>
public sealed class NonPaeGuest() : Guest32Fixture("686", "qemu-system-i386")
{
    public override PagingMode ExpectedMode => PagingMode.Legacy32;
}

public abstract class Guest32Tests<TGuest>(TGuest guest) where TGuest : Guest32Fixture
{
    /// <summary>The layout must be the guest's own: _text from its /proc/kallsyms, PAGE_OFFSET 0xC0000000 (Debian's
    /// CONFIG_PAGE_OFFSET), and the guest's /proc/version line must be readable through the found page directory in the
    /// kernel image (Debian's 686 kernels have no KALLSYMS_ALL, so linux_banner has no kallsyms line to aim at).</summary>
    private void AssertLayoutMatchesGuest(IPhysicalMemory memory, KernelLayout layout)
    {
        Assert.Equal(guest.ExpectedMode, layout.Mode);
        Assert.Equal(guest.Symbols["_text"], layout.TextVa);
        Assert.Equal(PagingModes.DefaultI386PageOffset, layout.PageOffsetBase);
        Assert.Equal(layout.TextVa - layout.PageOffsetBase!.Value, layout.TextPa);
        var space = new AddressSpace(memory, layout.KernelPgd, layout.Mode);
        byte[] banner = Encoding.ASCII.GetBytes(guest.Banner);
        var chunk = new byte[1 << 20];
        bool found = false;
        for (ulong va = layout.TextVa; va < layout.TextVa + (48UL << 20) && !found; va += (ulong)chunk.Length - (ulong)banner.Length)
        {
            int n = space.Read(va, chunk);
            found = chunk.AsSpan(0, n).IndexOf(banner) >= 0;
        }
        Assert.True(found, $"the guest's banner '{guest.Banner}' is not in the 48 MiB from _text read through page directory 0x{layout.KernelPgd:x}");
    }

    [Fact]
    public void Dump_is_an_i386_core_with_vcpu_state()
    {
        using var h = File.OpenHandle(guest.DumpPath);
        var core = ElfCoreReader.Read(guest.DumpPath, h, IntrospectionLimits.Default);
        Assert.Equal(ElfMachine.I386, core.Machine);
        var cpu = Assert.Single(core.Cpus);
        Assert.True(cpu.Cr3 <= uint.MaxValue);
        Assert.Equal(guest.ExpectedMode == PagingMode.Pae32, (cpu.Cr4!.Value & 0x20) != 0);
        Assert.InRange(cpu.Rip, PagingModes.DefaultI386PageOffset, uint.MaxValue); // the guest idles in its kernel
    }

    [Theory]
    [InlineData(DiscoveryMethods.Cr3)]
    [InlineData(DiscoveryMethods.VmcoreInfo)]
    public void Dump_discovery_finds_the_guests_kernel(DiscoveryMethods method)
    {
        using var image = MemoryImage.Open(guest.DumpPath);
        var inputs = new DiscoveryInputs { Cpus = image.Cpus, VmcoreInfo = image.VmcoreInfo, Methods = method };
        var layout = KernelLocator.Locate(image, inputs, IntrospectionLimits.Default, new DiscoveryLog());
        Assert.Equal(method == DiscoveryMethods.Cr3 ? DiscoveryMethod.Cr3 : DiscoveryMethod.VmcoreInfo, layout.FoundBy);
        AssertLayoutMatchesGuest(image, layout);
    }

    [Fact]
    public void Live_discovery_from_QMP_registers_finds_the_guests_kernel()
    {
        using var live = Target.AttachLive(guest.Guest.RamFilePath, QmpVmControl.Connect(guest.Guest.ToolQmpSocketPath));
        Assert.Null(live.ControlWarning);
        Assert.NotEmpty(live.Cpus);
        var inputs = new DiscoveryInputs { Cpus = live.Cpus, Methods = DiscoveryMethods.Cr3 };
        var layout = KernelLocator.Locate(live.Memory, inputs, IntrospectionLimits.Default, new DiscoveryLog());
        AssertLayoutMatchesGuest(live.Memory, layout);
    }

    [Fact]
    public void Every_kallsyms_line_of_the_dump_is_identical()
    {
        using var image = MemoryImage.Open(guest.DumpPath);
        var layout = KernelLocator.Locate(image, new DiscoveryInputs { Cpus = image.Cpus, VmcoreInfo = image.VmcoreInfo }, IntrospectionLimits.Default, new DiscoveryLog());
        var diagnostics = new List<string>();
        var kallsyms = Kernel32Locator.DecodeKallsyms(image, layout, IntrospectionLimits.Default, diagnostics);
        Assert.True(kallsyms is not null, string.Join("; ", diagnostics));
        var ours = kallsyms.Symbols.All;
        var truth = guest.KallsymsLines;
        Assert.True(truth.Count > 30_000, $"ground truth holds only {truth.Count} symbols");
        Assert.Equal(truth.Count, ours.Count);
        for (int i = 0; i < truth.Count; i++)
        {
            var (address, type, name) = truth[i];
            if (ours[i].Address != address || ours[i].Type != type || ours[i].Name != name)
                Assert.Fail($"symbol {i}: guest says {address:x8} {type} {name}, Periscope says {ours[i].Address:x8} {ours[i].Type} {ours[i].Name}");
        }
    }

    /// <summary>Every /proc/kallsyms line the guest prints, core and module ones ("\t[module]"), in its order, with
    /// 8-digit addresses; the module lines need the whole model (module list, module.kallsyms, exports) on inferred offsets.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Symbols_prints_every_kallsyms_line_with_module_symbols_from_dump_and_live(bool live)
    {
        string[] target = live ? ["--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath] : ["--dump", guest.DumpPath];
        var (code, output, error) = Run(["symbols", .. target]);
        Assert.True(code == 0, $"exit {code}: {error}");
        var modules = guest.Truth.Modules.Select(m => m.Name).ToHashSet();
        var moduleLines = guest.ModuleKallsymsLines.Where(l => modules.Contains(l[(l.LastIndexOf('[') + 1)..^1])).ToList();
        Assert.True(modules.Count >= 4 && moduleLines.Count > 20, $"ground truth holds {moduleLines.Count} module symbol lines of {modules.Count} modules");
        Assert.Contains(moduleLines, l => l[9] is >= 'A' and <= 'Z'); // the exported-symbol rule is exercised
        var expected = guest.KallsymsLines.Select(l => $"{l.Address:x8} {l.Type} {l.Name}").Concat(moduleLines).ToList();
        var actual = output.TrimEnd('\n').Split('\n');
        for (int i = 0; i < Math.Min(expected.Count, actual.Length); i++)
            if (expected[i] != actual[i]) Assert.Fail($"line {i}: guest says '{expected[i]}', Periscope says '{actual[i]}'");
        Assert.Equal(expected.Count, actual.Length);
    }

    /// <summary>Kernel threads and helpers the guest's /init starts and ends may come and go between its listing and the dump.</summary>
    private static bool MayComeAndGo(string comm) => comm is "cat" or "sleep" or "sh" or "exe" || comm.StartsWith("kworker/", StringComparison.Ordinal);

    [Fact]
    public void Offsets_are_inferred_for_4_byte_pointers_with_their_evidence()
    {
        var k = guest.Dump.Kernel;
        Assert.Null(k.Btf);
        Assert.Equal(Periscope.Linux.Inference.OffsetSource.Inferred, k.OffsetSource);
        var report = k.Inference!;
        Assert.Equal(4, report.PointerSize);
        Assert.True(report.InitTaskFromStructure); // no data symbols in Debian's 686 kallsyms
        Assert.NotNull(report.ModulesHead);
        Assert.NotNull(report.SpecialMappingOpsFromText);
        Assert.Equal(4, k.Offsets.ListHeadPrev);
        Assert.Equal(4, k.Offsets.Module.List);
        Assert.Equal(60, k.Offsets.Module.NameSize);
        Assert.Equal((32, 21, 0x80, 0x54), (k.Offsets.Maple!.RangeSlots, k.Offsets.Maple.ArangeSlots, k.Offsets.Maple.RangeSlot, k.Offsets.Maple.ArangeSlot));
        // The rules that need evidence settled every member the model uses: no ambiguity among them.
        foreach (var name in new[] { "task_struct.tasks", "task_struct.pid", "task_struct.tgid", "task_struct.mm", "mm_struct.mm_mt.ma_root", "vm_area_struct.vm_start",
            "vm_area_struct.vm_ops", "module.name", "module.core_layout", "module.kallsyms", "module.syms", "inode.i_ino" })
            Assert.True(report.Members.Single(m => m.Name == name).IsKnown, $"{name} unknown");
        var (code, output, error) = Run(["info", "--offsets", "--dump", guest.DumpPath]);
        Assert.True(code == 0, $"exit {code}: {error}");
        // Inferred now, or by an earlier command of this run into the user's offsets cache: either way the evidence is shown.
        Assert.Matches(@"Offsets: (inferred from the data|from the offsets cache \(inferred)", output);
        Assert.Matches(@"task_struct\.pid\s+0x[0-9a-f]+\s+(Inferred|Cache)\s+Unique", output);
    }

    [Fact]
    public void Every_task_and_thread_matches_proc()
    {
        var ours = guest.Dump.Kernel.Tasks.Where(t => t.Pid != 0).ToDictionary(t => t.Pid);
        var truth = guest.Truth.Processes;
        var missing = truth.Keys.Where(p => !ours.ContainsKey(p)).ToList();
        var extra = ours.Keys.Where(p => !truth.ContainsKey(p)).ToList();
        Assert.All(missing, p => Assert.True(MayComeAndGo(truth[p].Leader.Comm), $"pid {p} ({truth[p].Leader.Comm}) missing"));
        Assert.All(extra, p => Assert.True(MayComeAndGo(ours[p].Comm), $"pid {p} ({ours[p].Comm}) not in the guest's listing"));
        Assert.True(truth.Count - missing.Count > 40, "too few processes in common");
        Assert.Contains(ours.Values, t => t.ThreadCount > 1); // the thread list is exercised
        foreach (var (pid, stat) in truth)
        {
            if (!ours.TryGetValue(pid, out var task)) continue;
            // Without BTF kernel threads show their comm (no kthread full name, no -workqueue suffix): /proc's starts with it.
            Assert.True(stat.Leader.Comm == task.Comm || stat.Leader.Comm.StartsWith(task.Comm, StringComparison.Ordinal),
                $"pid {pid}: /proc comm '{stat.Leader.Comm}', Periscope '{task.Comm}'");
            Assert.Equal(stat.Leader.ParentPid, task.ParentPid);
            Assert.Equal(pid, task.Tgid);
            Assert.Equal(stat.Threads.Select(t => t.Pid).Order(), task.Threads.Select(t => t.Tid).Order());
        }
    }

    /// <summary>lsof on i386 (4-byte fd slots and close_on_exec words, offsets inferred): every process's descriptors
    /// equal /proc/PID/fd links with fdinfo's pos and flags; init printed that view with three descriptors redirected,
    /// so of init only its unredirected ones are compared (the tty and its /init script).</summary>
    [Fact]
    public void Lsof_of_every_process_equals_proc_fd_and_fdinfo()
    {
        var files = new Periscope.Linux.Files.OpenFiles(guest.Dump.Kernel);
        Assert.Null(files.Unavailable);
        var tasks = guest.Dump.Kernel.Tasks.ToDictionary(t => t.Pid);
        int compared = 0;
        foreach (var (pid, expected) in guest.FileNet.Fds)
        {
            if (!tasks.TryGetValue(pid, out var task)) continue; // gone by the dump
            var read = files.Read(task);
            Assert.Null(read.Gap);
            var ours = read.Files.Select(f => $"{f.Fd}\t{f.Path}\t{f.Position}\t0{Convert.ToString(f.Flags, 8)}").ToList();
            var theirs = expected.OrderBy(f => f.Fd).Select(f => $"{f.Fd}\t{f.Link}\t{f.Pos}\t{f.Flags}").ToList();
            if (pid == 1)
            {
                // fd, link and flags of fds 3 and 10 (the script's position moves on while init runs it).
                static List<string> Kept(List<string> lines) => lines.Select(l => l.Split('\t')).Where(f => f[0] is "3" or "10").Select(f => $"{f[0]}\t{f[1]}\t{f[3]}").ToList();
                (ours, theirs) = (Kept(ours), Kept(theirs));
                Assert.Equal(["3\t/dev/ttyS2\t0100002", "10\t/init\t02100000"], theirs);
            }
            Assert.Equal(theirs, ours);
            compared++;
        }
        Assert.True(compared >= 8, $"only {compared} processes compared");
        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        var mine = files.Read(tasks[netfiles]).Files;
        Assert.Equal(2, mine.Count(f => f.Kind == Periscope.Linux.Files.OpenFileKind.Pipe));
        Assert.Single(mine, f => f.Path == "anon_inode:[eventfd]" && (f.Flags & Periscope.Linux.Files.OpenFiles.O_CLOEXEC) != 0);
        Assert.True(mine.Count(f => f.Kind == Periscope.Linux.Files.OpenFileKind.Socket) >= 9);
    }

    /// <summary>psxview on inferred offsets: every view is read; each /proc task still alive is seen by the task list,
    /// the pid IDR and its thread group, each process (and only it) by its parent's children list; the CPU's idle task is
    /// init_task; nothing is hidden.</summary>
    [Fact]
    public void Psxview_sees_every_task_of_proc_through_every_view()
    {
        var k = guest.Dump.Kernel;
        var report = new Periscope.Linux.Tasks.Views.TaskViews(k).Read();
        Assert.Empty(report.Unavailable);
        Assert.Empty(report.Gaps);
        Assert.Empty(report.Hidden);
        var byPid = report.Rows.Where(r => r.Facts is { Pid: > 0 }).ToDictionary(r => r.Facts!.Pid);
        var expected = TaskViewSet.TaskList | TaskViewSet.PidHash | TaskViewSet.ThreadGroup;
        int compared = 0;
        foreach (var (pid, stat) in guest.Truth.Processes)
            foreach (var s in stat.Threads.Prepend(stat.Leader).DistinctBy(s => s.Pid))
            {
                if (!byPid.TryGetValue(s.Pid, out var row)) continue;
                compared++;
                Assert.True((row.Seen & expected) == expected, $"pid {s.Pid} ({s.Comm}) is seen by {row.Seen}, expected at least {expected}");
                Assert.True(((row.Seen & TaskViewSet.Children) != 0) == (s.Pid == pid), $"pid {s.Pid} children view: {row.Seen}");
            }
        Assert.True(compared > 40, $"only {compared} /proc tasks compared");
        var idle = Assert.Single(report.Rows, r => (r.Seen & TaskViewSet.CpuIdle) != 0);
        Assert.Equal(k.InitTask, idle.Task);
        Assert.Single(report.Rows, r => (r.Seen & TaskViewSet.CpuCurrent) != 0);
    }

    /// <summary>timeline on inferred start_time and a timekeeper found by ktime_get's code (no data symbols): sorted, from
    /// boot (a wall-clock time minutes ago: QEMU's RTC follows the host) to the snapshot, one start per listed process.</summary>
    [Fact]
    public void Timeline_starts_at_boot_lists_every_process_start_and_is_sorted()
    {
        var k = guest.Dump.Kernel;
        var events = new TimelineReader(k).Read(withKernelLog: false);
        Assert.False(k.IsIncomplete, string.Join("; ", k.IncompleteReasons));
        Assert.Equal(TimelineEventKind.Boot, events[0].Kind);
        Assert.InRange(events[0].Wall!.Value, DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow);
        Assert.Equal(TimelineEventKind.Snapshot, events[^1].Kind);
        Assert.Equal(events.Select(e => e.MonotonicNs).Order(), events.Select(e => e.MonotonicNs));
        var starts = events.Where(e => e.Kind == TimelineEventKind.ProcessStart).ToDictionary(e => e.Pid!.Value, e => e.MonotonicNs);
        foreach (var t in k.Tasks.Where(t => t.Pid != 0)) Assert.True(starts[t.Pid] > 0, $"pid {t.Pid} starts at 0");
        Assert.Equal(k.Tasks.Count(t => t.Pid != 0), starts.Count);
        Assert.True(starts[1] <= starts[2] && starts[2] < starts.Values.Max(), "init, then kthreadd, then the rest");
    }

    [Fact]
    public void Modules_match_proc_modules()
        => ProcComparisons.ModulesMatch(guest.Truth, guest.Dump.Kernel);

    [Fact]
    public void Every_user_process_maps_match_proc_maps()
    {
        ProcComparisons.MapsMatch(guest.Truth, guest.Dump.Kernel);
    }

    /// <summary>Debian's 686 kallsyms has no data symbols: the syscall table is found by its first entries and the IDT
    /// from the vCPU's IDTR. Both are compared with the guest's own /proc/kallsyms: entries and gates must hold the
    /// addresses of the functions the guest names (execve is i386 syscall 11; set_mempolicy_home_node, 450, the last of
    /// 6.1), and the read-only data must start at the page after _etext.</summary>
    [Fact]
    public void Syscall_table_and_IDT_are_found_without_data_symbols_and_hold_the_guests_handlers()
    {
        var k = guest.Dump.Kernel;
        var t = k.Dispatch;
        Assert.True(t.SyscallTable is not null, t.SyscallTableMissing);
        var table = t.SyscallTable;
        Assert.Equal(TableFoundBy.Structure, table.FoundBy);
        Assert.Equal(4, table.EntrySize);
        Assert.Equal(451UL * 4, table.Length);
        ulong Entry(int nr) => k.Reader.TryPointer(table.Address + (ulong)nr * 4, out ulong v) ? v : 0;
        Assert.Equal(guest.Symbols["__ia32_sys_execve"], Entry(11));
        Assert.Equal(guest.Symbols["__ia32_sys_set_mempolicy_home_node"], Entry(450));
        Assert.True(t.ReadOnlyData is not null, t.ReadOnlyDataMissing);
        Assert.Equal((guest.Symbols["_etext"] + 0xfff) & ~0xfffUL, t.ReadOnlyData.Address);
        Assert.InRange(table.Address, t.ReadOnlyData.Address, t.ReadOnlyData.End - table.Length);

        Assert.True(t.InterruptTable is not null, t.InterruptTableMissing);
        var idt = t.InterruptTable;
        Assert.Equal(TableFoundBy.IdtRegister, idt.FoundBy);
        Assert.Equal((256UL * 8, 8), (idt.Length, idt.EntrySize));
        var gates = new byte[idt.Length];
        Assert.Equal(gates.Length, k.KernelSpace.Read(idt.Address, gates));
        ulong Gate(int v) => Periscope.Integrity.Verification.Verifier.GateHandler(gates.AsSpan(v * 8, 8));
        Assert.Equal(guest.Symbols["asm_exc_divide_error"], Gate(0));
        Assert.Equal(guest.Symbols["asm_exc_page_fault"], Gate(14));
        Assert.Equal(guest.Symbols["entry_INT80_32"], Gate(0x80));
    }

    /// <summary>`check` on i386 (no BTF, no data symbols): every check runs from inferred offsets and objects found by
    /// structure, code or VMCOREINFO, complete and with nothing above info on an untouched guest (the double fault's task
    /// gate is Linux's own): exit 0.</summary>
    /// <summary>`bpf` on i386 (no BTF, no data symbols): prog_idr, map_idr and link_idr are found by the code that passes
    /// them to idr_find/idr_get_next (kallsyms has none of them) and are empty — the guest loads no BPF program (without
    /// BTF it cannot build bpfload's fentry program, and no other loader runs) — so the ID lists are exactly empty; the
    /// attach points, whose members are not inferred without BTF, are gaps (exit 3), never "nothing attached".</summary>
    [Fact]
    public void Bpf_finds_the_empty_idrs_by_code_and_reports_the_attach_points_as_gaps()
    {
        var k = guest.Dump.Kernel;
        Assert.Null(k.Btf);
        foreach (string idr in new[] { "prog_idr", "map_idr", "link_idr" })
        {
            Assert.False(k.Symbols.TryGetAddress(idr, out _));
            Assert.True(k.DataAddresses.TryGet(idr, out var found), idr);
            Assert.StartsWith("by code:", found.How, StringComparison.Ordinal);
        }
        var report = new Periscope.Linux.Bpf.BpfView(k).Read();
        Assert.Empty(report.Programs);
        Assert.Empty(report.Maps);
        Assert.Empty(report.Links);
        Assert.Equal([Periscope.Linux.Bpf.BpfAttachPoint.Link], report.AttachPointsRead);
        Assert.Equal(6, report.Gaps.Count);
        Assert.All(report.Gaps, g => Assert.Contains("not read without BTF", g, StringComparison.Ordinal));
        var (code, _, error) = Run(["bpf", "--dump", guest.DumpPath]);
        Assert.True(code == 3, error);
    }

    /// <summary>sockets' kernel-table view on i386 (no BTF, no data symbols: tcp_hashinfo, udp_table and init_net found
    /// by code, offsets inferred for 4-byte pointers) lists exactly the sockets of /proc/net/tcp, tcp6, udp, udp6, and
    /// unix's bound and listening flags, types and paths, and the user sockets of /proc/net/netlink (nl_table found by
    /// netlink_has_listeners' code): protocol, port id and inode.</summary>
    [Fact]
    public void Sockets_in_the_kernel_tables_equal_proc_net()
    {
        var report = new Periscope.Linux.Network.Sockets(guest.Dump.Kernel).Read();
        Assert.Empty(report.Gaps);
        var table = report.Sockets.Where(s => (s.Seen & Periscope.Linux.Network.SocketViews.KernelTable) != 0).ToList();
        var inet = table.Where(s => s.Kind is Periscope.Linux.Network.SocketKind.Tcp or Periscope.Linux.Network.SocketKind.Tcp6
                or Periscope.Linux.Network.SocketKind.Udp or Periscope.Linux.Network.SocketKind.Udp6)
            .Select(s => $"{s.Kind.ToString().ToLowerInvariant()} {s.Local} {s.Remote} {s.State:X2}").Order().ToList();
        var truth = new[] { "tcp", "tcp6", "udp", "udp6" }.SelectMany(kind => guest.Net[kind].Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(f => $"{kind} {f[1]} {f[2]} {f[3]}")).Order().ToList();
        Assert.Equal(truth, inet);
        Assert.Equal(8, inet.Count); // netfiles: tcp listener + established pair, tcp6 listener, udp, udp6; uidsocks: tcp, udp
        // /proc/net/unix: Flags (__SO_ACCEPTCON for a listener), Type, Path.
        var unix = guest.Net["unix"].Skip(1).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => $"{int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture):x} {int.Parse(f[4], NumberStyles.HexNumber, CultureInfo.InvariantCulture)} {(f.Length > 7 ? f[7] : "")}".TrimEnd()).Order().ToList();
        var ourUnix = table.Where(s => s.Kind == Periscope.Linux.Network.SocketKind.Unix)
            .Select(s => $"{(s.Listening ? Periscope.Linux.Network.Sockets.SoAcceptCon : 0):x} {s.Type} {s.Local}".TrimEnd()).Order().ToList();
        Assert.Equal(unix, ourUnix);
        // /proc/net/netlink: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode. The view takes user sockets (with a file)
        // from nl_table; the kernel's own have port id 0.
        var netlink = guest.Net["netlink"].Skip(1).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f[2] != "0").Select(f => $"{f[1]} {f[2]} {f[9]}").Order().ToList();
        var ourNetlink = table.Where(s => s.Kind == Periscope.Linux.Network.SocketKind.Netlink).Select(s => $"{s.Protocol} {s.PortId} {s.Inode}").Order().ToList();
        Assert.Equal(netlink, ourNetlink);
        Assert.NotEmpty(ourNetlink); // netfiles' NETLINK_ROUTE socket
        Assert.DoesNotContain(report.Unavailable, u => u.StartsWith("netlink table", StringComparison.Ordinal));
    }

    [Fact]
    public void Check_runs_every_check_complete_and_clean_without_BTF_or_data_symbols()
    {
        var (code, output, error) = Run(["check", "--json", "--dump", guest.DumpPath]);
        Assert.True(code == 0, $"exit {code}: {error}\n{output}");
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        var checks = doc.RootElement.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("check").GetString()!, c => c.Clone());
        Assert.Equal(Enum.GetValues<Periscope.Integrity.Checks.CheckId>().Length, checks.Count);
        foreach (var (name, check) in checks)
            Assert.True(check.GetProperty("status").GetString() == "complete", $"{name}: {check}");
        var loud = doc.RootElement.GetProperty("findings").EnumerateArray().Where(f => f.GetProperty("severity").GetString() != "info").Select(f => f.ToString()).ToList();
        Assert.True(loud.Count == 0, string.Join("\n", loud));

        (code, output, error) = Run(["check", "--dump", guest.DumpPath]);
        Assert.True(code == 0, $"exit {code}: {error}\n{output}");
        Assert.Contains("0 incomplete, 0 skipped; verdict clean", output);
    }

    /// <summary>A baseline of the dump, then verify against the live guest (paused while read): the syscall table, its
    /// dispatcher, the IDT and the read-only data are measured, and nothing changed. Complete, exit 0: the allow-list
    /// evidence (jump tables from jump_label_text_reserved's code, ftrace pages from lookup_rec's, ftrace_ops, the
    /// vmalloc areas) is read without BTF and without data symbols.</summary>
    [Fact]
    public void Baseline_and_live_verify_of_the_untouched_guest_are_clean()
    {
        string db = Path.Combine(guest.Guest.WorkDirectory, $"baseline-{Guid.NewGuid():n}.db");
        var (created, createOutput, createError) = Run(["baseline", "create", "--db", db, "--dump", guest.DumpPath]);
        Assert.True(created is 0 or 3, $"baseline create: exit {created}: {createError}\n{createOutput}");
        var (code, output, error) = Run(["verify", "--json", "--db", db, "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath]);
        Assert.True(code == 0, $"verify: exit {code}: {error}\n{output}");
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.True(root.GetProperty("clean").GetBoolean(), output);
        Assert.Empty(root.GetProperty("incomplete").EnumerateArray());
        var findings = root.GetProperty("findings").EnumerateArray().Select(f => f.ToString()).ToList();
        Assert.True(findings.Count == 0, string.Join("\n", findings));
        Assert.True(root.GetProperty("regions").GetInt32() >= 5 + 2 * guest.Truth.Modules.Count, output);
        var incomplete = root.GetProperty("incomplete").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.DoesNotContain(incomplete, i => i.Contains("region skipped", StringComparison.Ordinal));
    }

    /// <summary>ftrace_pages_start from code, without data symbols: the only candidate is the global lookup_rec walks.
    /// lookup_rec and ftrace_location_range's other callees also read %fs:__stack_chk_guard and %fs:__preempt_count,
    /// whose link addresses lie in i386's freed init section: once in a few boots the junk there passed for a chain of
    /// ftrace pages and the evidence lost the family. The chain found holds vfs_read's patch site (its entry: fentry),
    /// at the address the guest's own kallsyms gives.</summary>
    [Fact]
    public void Ftrace_pages_start_is_the_one_global_lookup_rec_walks_and_holds_vfs_reads_record()
    {
        var kernel = guest.Dump.Kernel;
        Assert.True(kernel.DataAddresses.TryGet("ftrace_pages_start", out var found), kernel.DataAddresses.WhyMissing("ftrace_pages_start"));
        Assert.Contains("(1 variables loaded by ftrace_location_range and its callees: ", found.How);
        ulong vfsRead = guest.Symbols["vfs_read"];
        var r = kernel.Reader;
        bool held = false;
        Assert.True(r.TryPointer(found.Address, out ulong page));
        for (int n = 0; page != 0 && n < 1000 && !held; n++)
        {
            bool read = r.TryPointer(page + 4, out ulong records) & r.TryI32(page + 8, out int index) & r.TryPointer(page, out ulong next);
            Assert.True(read, $"page 0x{page:x}");
            for (int i = 0; i < index && !held; i++) held = r.TryPointer(records + (ulong)i * 8, out ulong ip) && ip == vfsRead;
            page = next;
        }
        Assert.True(held, $"no record at vfs_read 0x{vfsRead:x}; {found.How}");
    }

    /// <summary>dmesg without BTF: the printk ring's layout from the kernel's VMCOREINFO, its ids and positions in 4-byte
    /// words. Every line the guest printed with `dmesg -r` must be ours, in order, byte for byte.</summary>
    [Fact]
    public void Dmesg_equals_the_guests_own_dmesg_with_the_layout_from_VMCOREINFO()
    {
        Assert.True(guest.DmesgLines.Count > 50, $"the guest printed only {guest.DmesgLines.Count} dmesg lines");
        var kernel = guest.Dump.Kernel;
        Assert.Null(kernel.Btf);
        Assert.Contains("VMCOREINFO", PrintkLayout.Of(kernel).Source);
        var ours = new PrintkLog(kernel).Read().SelectMany(r => r.SyslogLines()).ToList();
        Assert.True(ours.Count >= guest.DmesgLines.Count, $"ours has {ours.Count} lines, the guest printed {guest.DmesgLines.Count}");
        for (int i = 0; i < guest.DmesgLines.Count; i++) Assert.Equal(guest.DmesgLines[i], ours[i]);
    }

    /// <summary>A live guest has no dump note: VMCOREINFO is read from the kernel's own note (through
    /// paddr_vmcoreinfo_note's code) and must state what the dump's note states.</summary>
    [Fact]
    public void Live_VMCOREINFO_comes_from_the_kernels_own_note_and_equals_the_dumps()
    {
        var fromDump = guest.Dump.Kernel.VmcoreInfo;
        Assert.NotNull(fromDump);
        Assert.Equal("the dump's VMCOREINFO note", fromDump.Source);
        using var live = guest.AttachLive();
        using (live.Pause())
        {
            var fromMemory = live.Kernel.VmcoreInfo;
            Assert.NotNull(fromMemory);
            Assert.Contains("paddr_vmcoreinfo_note", fromMemory.Source);
            Assert.Equal(guest.Dump.Kernel.Release, fromMemory.OsRelease);
            foreach (var name in new[] { "prb", "vmap_area_list", "init_uts_ns" })
            {
                Assert.True(fromDump.TryGetSymbol(name, out ulong a), name);
                Assert.True(fromMemory.TryGetSymbol(name, out ulong b), name);
                Assert.Equal(a, b);
                Assert.True(live.Kernel.DataAddresses.TryGet(name, out var found));
                Assert.Equal(a, found.Address);
            }
            Assert.True(fromMemory.TryGetOffset("printk_info", "text_len", out int textLen));
            Assert.True(fromDump.TryGetOffset("printk_info", "text_len", out int dumpTextLen));
            Assert.Equal(dumpTextLen, textLen);
        }
    }

    /// <summary>ps from the live guest (QMP registers, the RAM file), paused while read (a running guest can change its task
    /// list under the init_task search): every long-lived process of the guest's listing.</summary>
    [Fact]
    public void Live_ps_lists_the_guests_processes()
    {
        var (code, output, error) = Run(["ps", "--json", "--pause", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath]);
        Assert.True(code is 0 or 3, $"exit {code}: {error}");
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        var pids = doc.RootElement.EnumerateArray().Select(e => e.GetProperty("pid").GetInt32()).ToHashSet();
        var expected = guest.Truth.Processes.Where(kv => !MayComeAndGo(kv.Value.Leader.Comm)).Select(kv => kv.Key).ToList();
        Assert.True(expected.Count > 40);
        Assert.All(expected, p => Assert.Contains(p, pids));
    }

    /// <summary>namespaces on i386 (no BTF: nsproxy, ns.inum and cred.user_ns inferred with 4-byte pointers): every
    /// process's namespace links equal its /proc/PID/ns (truth.d/views.sh), its cmdline, environ, Uid/Gid and Cap* lines,
    /// name and cgroup its /proc (ps --full), and `namespaces` lists init's eight.</summary>
    [Fact]
    public void Namespaces_and_ps_full_details_of_every_process_equal_proc()
    {
        var kernel = guest.Dump.Kernel;
        var reader = new NamespaceReader(kernel);
        Assert.Null(reader.Unavailable);
        string text;
        using (var fs = new FileStream(guest.Guest.DataLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            text = new StreamReader(fs).ReadToEnd();
        var sections = ViewsTruth.Parse(text);
        int compared = 0;
        foreach (var task in kernel.Tasks.Where(t => t.Pid != 0))
        {
            if (!sections.TryGetValue(("views-proc", task.Pid), out var lines)
                || !lines.Any(l => l.StartsWith("stat ", StringComparison.Ordinal) && l.Contains($"({task.Name})", StringComparison.Ordinal)))
                continue; // started after the guest printed its view, or the pid of one of the truth script's helpers
            var expected = lines.Where(l => l.StartsWith("ns ", StringComparison.Ordinal)).Select(l => l[3..]).Order().ToList();
            Assert.Equal(expected, reader.Read(task.Address).Select(n => $"{n.ProcName} {n}").Order().ToList());
            compared++;
        }
        Assert.True(compared > 30, $"only {compared} processes compared");
        // ps --full's command lines, environments, ids and capability sets (inferred) are /proc's too.
        var details = new ProcessDetailsReader(kernel);
        foreach (var task in kernel.Tasks.Where(t => t.Pid != 0))
        {
            if (!sections.TryGetValue(("views-proc", task.Pid), out var lines)
                || !lines.Any(l => l.StartsWith("stat ", StringComparison.Ordinal) && l.Contains($"({task.Name})", StringComparison.Ordinal)))
                continue;
            var proc = lines.Select(l => { int sp = l.IndexOfAny([' ', '\t']); return sp < 0 ? (l, "") : (l[..sp], l[(sp + 1)..].Trim()); })
                .Where(kv => !kv.Item1.Equals("ns", StringComparison.Ordinal)).GroupBy(kv => kv.Item1).ToDictionary(g => g.Key, g => g.First().Item2);
            foreach (var ns in lines.Where(l => l.StartsWith("ns ", StringComparison.Ordinal)).Select(l => l[3..].Split(' ', 2))) proc["ns " + ns[0]] = ns[1];
            ViewsTests.AssertEqualsProc(details.Read(task, withEnvironment: true), proc);
        }
        // Names as /proc/PID/stat shows them (kworkers' "-workqueue", long kernel-thread names) and cgroup paths (inferred).
        ProcComparisons.NamesAndCgroupsMatch(sections, kernel);
        var (code, output, error) = Run(["namespaces", "--no-offsets-cache", "--dump", guest.DumpPath]);
        Assert.True(code == 0, error);
        foreach (var type in new[] { "cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts" })
            Assert.Contains(output.Split('\n'), l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, var t, _, "1", "init"] && t == type);
    }
    /// <summary>mounts on i386 (no BTF: the mount list, struct mount, super_block and fs_struct members inferred with
    /// 4-byte pointers): init's and the unshared process's mounts equal their /proc/PID/mountinfo (truth.d/views.sh).</summary>
    [Fact]
    public void Mounts_of_init_and_the_unshared_process_equal_proc_mountinfo()
    {
        string text;
        using (var fs = new FileStream(guest.Guest.DataLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            text = new StreamReader(fs).ReadToEnd();
        var sections = ViewsTruth.Parse(text).Where(s => s.Key.Item1 == "views-mountinfo").ToList();
        Assert.Equal(2, sections.Count);
        foreach (var ((_, pid), lines) in sections)
        {
            var expected = ViewsTruth.MountInfoAsShown(lines);
            var (code, output, error) = Run(["mounts", pid.ToString(CultureInfo.InvariantCulture), "--no-offsets-cache", "--dump", guest.DumpPath]);
            Assert.True(code == 0, error);
            Assert.Equal(expected, output.TrimEnd('\n').Split('\n'));
            Assert.True(expected.Count >= 4);
        }
    }
}

[Collection("686-pae guest")]
public sealed class Guest32PaeTests(PaeGuest guest) : Guest32Tests<PaeGuest>(guest);

[Collection("686 guest")]
public sealed class Guest32NonPaeTests(NonPaeGuest guest) : Guest32Tests<NonPaeGuest>(guest);

[CollectionDefinition("686-pae guest")]
public sealed class PaeCollection : ICollectionFixture<PaeGuest>;

[CollectionDefinition("686 guest")]
public sealed class NonPaeCollection : ICollectionFixture<NonPaeGuest>;
