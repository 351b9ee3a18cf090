using System.Globalization;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Inference;
using Periscope.Targets;
using Periscope.X86;
using Xunit.Abstractions;
using static Periscope.Tests.Shared.CliRun;

namespace Periscope.GuestTests;

/// <summary>
/// A two-vCPU 686-pae guest with tamper/periscope_tamper.ko built for its i386 kernel (guest/build-i386.sh) and loaded
/// once here through the command port, after the dump the fixture takes (so the dump is of the untouched guest). Each
/// tamper test takes its own baseline of the live guest right before its attack, and restores.
/// </summary>
public sealed class PaeTamperGuest : Guest32Fixture
{
    public const string Proc = "/proc/periscope_tamper";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(120);

    public PaeTamperGuest() : base("686-pae", "qemu-system-x86_64", cpus: 2)
    {
        try
        {
            var (code, output) = Guest.RunCommand("insmod /lib/modules/periscope_tamper.ko && cat " + Proc, CommandTimeout);
            Assert.True(code == 0, $"insmod periscope_tamper.ko exited {code} (was the module built for this kernel? see guest/build-i386.sh): {output}");
            ModuleAddress = TamperReport.Parse(output.Split('\n')[0], "loaded").Hex("module");
            // What the tests are about is hook detection, not inference on a running guest: they attach as an operator's
            // second attach does, with the offsets the dump of this very build was inferred with (OffsetsCache, keyed
            // by banner and build id). Inferring them again live at every attach failed now and then on this two-vCPU
            // guest (a task caught mid-exec or a kworker not yet run; the model tests keep covering live inference).
            OffsetsOfThisBuild = new OffsetsCache(Path.Combine(Guest.WorkDirectory, "offsets"));
            using (var dump = Target.OpenDump(DumpPath, new TargetOptions { OffsetsCache = OffsetsOfThisBuild }))
                _ = dump.Kernel;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override PagingMode ExpectedMode => PagingMode.Pae32;
    public ulong ModuleAddress { get; }
    public OffsetsCache OffsetsOfThisBuild { get; }

    public string Run(string shellCommand)
    {
        var (code, output) = Guest.RunCommand(shellCommand, CommandTimeout);
        Assert.True(code == 0, $"guest command '{shellCommand}' exited with {code}: {output}");
        return output;
    }

    /// <summary>Writes one command to the module and returns its first report line.</summary>
    public string Tamper(string command) => Run($"echo {command} > {Proc} && cat {Proc}").Split('\n', StringSplitOptions.RemoveEmptyEntries)[0];

    public void Restore() => Run($"echo restore > {Proc}");

    /// <summary>The guest logged no warning, BUG or oops on its console and still runs commands.</summary>
    public void AssertKernelHealthy() => KernelHealth.Assert(Guest, Run);
}

[CollectionDefinition("686-pae tamper guest")]
public sealed class PaeTamperCollection : ICollectionFixture<PaeTamperGuest>;

/// <summary>
/// Hook detection on i386 against real attacks by the tamper module: a syscall-table slot, an IDT gate and an inline
/// patch of kernel text, each found by verify as critical at the address the module reports, with the module as the
/// new target; the same guest with nothing changed verifies clean. Debian's 686 kernels have no data symbols: the
/// module finds the syscall table by its first entries as Periscope does, but from inside the guest, and the gate is
/// the one the vCPU's IDTR names.
/// </summary>
[Collection("686-pae tamper guest")]
public sealed class Guest32TamperTests : IDisposable
{
    private readonly PaeTamperGuest _guest;
    private readonly ITestOutputHelper _output;
    private readonly string _db;
    private Target? _attached;

    public Guest32TamperTests(PaeTamperGuest guest, ITestOutputHelper output)
    {
        _guest = guest;
        _output = output;
        _db = Path.Combine(guest.Guest.WorkDirectory, $"tamper32-{Guid.NewGuid():n}.db");
        guest.Restore(); // whatever an earlier test may have left in effect: no test depends on another's order
    }

    /// <summary>The live target, attached on first use; <see cref="Detach"/> frees the guest's tool QMP socket (one
    /// client at a time) for a CLI run.</summary>
    private Target Live => _attached ??= _guest.AttachLive(new TargetOptions { OffsetsCache = _guest.OffsetsOfThisBuild });

    private void Detach()
    {
        _attached?.Dispose();
        _attached = null;
    }

    private LinuxKernel Paused()
    {
        Live.Kernel.Refresh();
        return Live.Kernel;
    }

    private (StoredBaseline Regions, EvidenceSnapshot Evidence) Baseline()
    {
        using var pause = Live.Pause();
        var k = Paused();
        using var store = BaselineStore.Open(_db);
        var summary = BaselineRecorder.Record(k, store, "i386 tamper test");
        return (store.Latest(summary.BuildId, k.Layout.TextVa)!, EvidenceStore.Load(store, summary.Id, k.Limits)!);
    }

    private List<Finding> Verify((StoredBaseline Regions, EvidenceSnapshot Evidence) baseline)
    {
        using var pause = Live.Pause();
        var result = Verifier.Verify(Paused(), baseline.Regions, baseline.Evidence);
        foreach (var reason in result.Incomplete) _output.WriteLine($"incomplete: {reason}");
        foreach (var f in result.Findings) _output.WriteLine($"{f.Severity} {f.Classification} {f.Location} 0x{f.VirtualAddress:x} {f.Detail}");
        return [.. result.Findings];
    }

    private static IEnumerable<Finding> Critical(IEnumerable<Finding> findings) =>
        findings.Where(f => f.Severity == Severity.Critical && f.Classification != Classifications.RegionGone);

    private ulong Symbol(string name) => _guest.Symbols.TryGetValue(name, out ulong a) ? a : throw new KeyNotFoundException($"the guest's kallsyms has no {name}");

    [Fact]
    public void Untouched_guest_with_the_module_loaded_verifies_clean()
    {
        var baseline = Baseline();
        Assert.Contains(baseline.Regions.Regions, r => r.Region.Name == "ia32_sys_call_table");
        Assert.Contains(baseline.Regions.Regions, r => r.Region.Name == "idt_table");
        Assert.Contains(baseline.Regions.Regions, r => r.Region.Name.StartsWith("module periscope_tamper", StringComparison.Ordinal));
        var findings = Verify(baseline);
        Assert.DoesNotContain(findings, f => f.Severity != Severity.Info);
    }

    /// <summary>sysfs is i386 syscall 135; 6.1 dispatches through ia32_sys_call (a switch), so the slot is data only.</summary>
    [Fact]
    public void Syscall_table_slot_hook_is_critical_at_the_reported_slot()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(_guest.Tamper("syscall 135"), "syscall");
            Assert.Equal(Symbol("__ia32_sys_sysfs"), r.Hex("old"));
            var f = Assert.Single(Critical(Verify(baseline)));
            Assert.Equal(Classifications.SyscallHooked, f.Classification);
            Assert.Equal(r.Hex("slot"), f.VirtualAddress);
            Assert.Equal("ia32_sys_call_table[135]", f.Location);
            Assert.Contains("__ia32_sys_sysfs", f.Detail);
            Assert.Equal("periscope_tamper", f.Destination?.Module?.Name);
            Assert.Contains("tamper_fake_syscall", f.Detail);
        }
        finally { _guest.Restore(); }
        Assert.Empty(Critical(Verify(baseline)));
        _guest.AssertKernelHealthy();
    }

    /// <summary>Vector 9 (coprocessor segment overrun) is never raised by a CPU since the 486; the module's handler jumps
    /// on to the old one anyway. verify (the CLI, on the live guest) exits 1 with the gate as its critical finding.</summary>
    [Fact]
    public void Idt_gate_hook_is_critical_at_the_reported_gate()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(_guest.Tamper("idt 9"), "idt");
            Assert.Equal(Symbol("asm_exc_coproc_segment_overrun"), r.Hex("old"));
            var f = Assert.Single(Critical(Verify(baseline)));
            Assert.Equal(Classifications.InterruptGateChanged, f.Classification);
            Assert.Equal(r.Hex("gate"), f.VirtualAddress);
            Assert.Equal("IDT vector 0x09", f.Location);
            Assert.Contains("asm_exc_coproc_segment_overrun", f.Detail);
            Assert.Equal("periscope_tamper", f.Destination?.Module?.Name);
            Assert.Contains("tamper_idt_stub", f.Detail);

            Detach();
            var (code, json, error) = Run(["verify", "--json", "--db", _db, "--qemu", _guest.Guest.RamFilePath, "--qmp", _guest.Guest.ToolQmpSocketPath]);
            Assert.True(code == 1, $"verify: exit {code}: {error}\n{json}");
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            var critical = doc.RootElement.GetProperty("findings").EnumerateArray().Where(e => e.GetProperty("severity").GetString() == "critical").ToList();
            var only = Assert.Single(critical);
            Assert.Equal("IDT vector 0x09", only.GetProperty("location").GetString());
        }
        finally { _guest.Restore(); }
        Assert.Empty(Critical(Verify(baseline)));
        _guest.AssertKernelHealthy();
    }

    /// <summary>Five 1-byte NOPs over the 5-byte NOP at __ia32_sys_sysfs's ftrace site: harmless, and a text change.</summary>
    [Fact]
    public void Kernel_text_patch_is_code_modified_at_the_reported_address()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(_guest.Tamper("patch __ia32_sys_sysfs 0"), "patch");
            Assert.Equal(Symbol("__ia32_sys_sysfs"), r.Hex("addr"));
            var f = Assert.Single(Critical(Verify(baseline)));
            Assert.Equal(Classifications.CodeModified, f.Classification);
            Assert.Equal(r.Hex("addr"), f.VirtualAddress);
            Assert.Equal("__ia32_sys_sysfs", f.Location);
            Assert.Equal(r.Bytes("old"), f.Expected);
            Assert.Equal(r.Bytes("new"), f.Found);
            Assert.Contains("nop", f.FoundDisassembly);
        }
        finally { _guest.Restore(); }
        Assert.Empty(Critical(Verify(baseline)));
        _guest.AssertKernelHealthy();
    }

    /// <summary>
    /// One idle task per CPU on i386 without data symbols: __per_cpu_offset and idle_threads come from idle_thread_get's
    /// code, each vCPU's FS base (the per-CPU segment) confirms its offset, and ps lists swapper/0 and swapper/1 with
    /// pid 0, as the 64-bit path does. The guest's own CPU count (nproc) and /proc/kallsyms are the ground truth.
    /// </summary>
    [Fact]
    public void One_idle_task_per_cpu_from_idle_threads_found_in_code()
    {
        int cpus = int.Parse(_guest.Run("nproc").Trim(), CultureInfo.InvariantCulture);
        Assert.Equal(2, cpus);
        var k = _guest.Dump.Kernel;
        var decoded = Periscope.Linux.Model.IdleThreadsDecoder.Decode(k.Reader, k.Symbols, out string? reason);
        Assert.True(decoded is not null, reason);
        // The code's addresses lie in the kernel image (neither is in kallsyms: no data symbols).
        Assert.InRange(decoded.PerCpuOffsetArray, Symbol("_stext"), Symbol("_stext") + (64UL << 20));
        var idle = k.ProcessTable.Where(t => t.Pid == 0).ToList();
        foreach (var t in idle) _output.WriteLine($"pid {t.Pid} {t.Name} cpu {t.IdleCpu} task 0x{t.Address:x}");
        Assert.Equal(Enumerable.Range(0, cpus).Select(c => $"swapper/{c}"), idle.Select(t => t.Name));
        Assert.Equal(Enumerable.Range(0, cpus).Select(c => (int?)c), idle.Select(t => t.IdleCpu));
        Assert.Equal(k.InitTask, k.IdleTasks[0].Task.Address);
        Assert.All(idle, t => Assert.NotEqual(0u, t.Flags & Periscope.Linux.Model.KernelMacros.PF_IDLE));
        Assert.Equal(cpus, idle.Select(t => t.Address).Distinct().Count());
        // Each vCPU in the kernel (the guest idles) shows its per-CPU offset as its FS base.
        var offsets = Enumerable.Range(0, cpus).Select(c => k.Reader.TryULong(decoded.PerCpuOffsetArray + (ulong)c * 4, out ulong o) ? o : 0).ToList();
        Assert.All(offsets, o => Assert.NotEqual(0UL, o));
        Assert.All(k.Cpus.Where(c => c.Fs is { } fs && k.Reader.IsKernelPointer(fs.Base)), c => Assert.Contains(c.Fs!.Value.Base, offsets));

        var (code, text, err) = Run(["ps", "--dump", _guest.DumpPath]);
        Assert.True(code == 0, $"ps: exit {code}: {err}");
        var swappers = text.Split('\n').Where(l => l.TrimStart().StartsWith("0 ", StringComparison.Ordinal)).ToList();
        Assert.Equal(cpus, swappers.Count);
        Assert.Contains(swappers, l => l.Contains("swapper/1", StringComparison.Ordinal));
    }

    /// <summary>The module-area view on i386 (no BTF, no data symbols: vmap_area_list found in vread's code, struct
    /// vmap_area inferred): complete and quiet on the live guest (i386 has no separate module area, so ordinary vmalloc
    /// memory is no finding), and a module unlinked from `modules` found by check at its struct module. The tamper
    /// module's `hide` takes module_mutex, a data symbol the 686 kernels' kallsyms lacks, so the unlink is list_del's,
    /// applied to a copy of this guest's dump.</summary>
    [Fact]
    public void Module_area_check_is_complete_untouched_and_finds_a_module_unlinked_from_the_list()
    {
        static Periscope.Integrity.Checks.CheckReport CheckOf(LinuxKernel k, ITestOutputHelper output)
        {
            var report = new Periscope.Integrity.Checks.InvariantChecks(k).Run();
            foreach (var f in report.Findings.Where(f => f.Check == Periscope.Integrity.Checks.CheckId.ModuleArea)) output.WriteLine($"{f.Severity} {f.Kind} {f.Subject} 0x{f.Address:x} {f.Detail}");
            var outcome = report.Outcomes.Single(o => o.Check == Periscope.Integrity.Checks.CheckId.ModuleArea);
            Assert.True(outcome.Status == Periscope.Integrity.Checks.CheckStatus.Complete, $"{outcome.Status}: {string.Join("; ", outcome.Gaps.Select(g => g.Detail))}");
            return report;
        }
        using (Live.Pause())
            Assert.DoesNotContain(CheckOf(Paused(), _output).Findings, f => f.Check == Periscope.Integrity.Checks.CheckId.ModuleArea);

        var options = new TargetOptions { OffsetsCache = _guest.OffsetsOfThisBuild };
        using var original = Target.OpenDump(_guest.DumpPath, options);
        var k = original.Kernel;
        Assert.DoesNotContain(CheckOf(k, _output).Findings, f => f.Check == Periscope.Integrity.Checks.CheckId.ModuleArea);
        var victim = k.Modules[^1];
        ulong node = victim.Address + (ulong)k.Offsets.Module.List;
        Assert.True(k.Reader.TryPointer(node, out ulong next));
        Assert.True(k.Reader.TryPointer(node + (ulong)k.Offsets.ListHeadPrev, out ulong prev));
        using var d = new PatchedDump(_guest.DumpPath, original.Image, k);
        d.Write(prev, BitConverter.GetBytes((uint)next));
        d.Write(next + (ulong)k.Offsets.ListHeadPrev, BitConverter.GetBytes((uint)prev));
        d.CloseWriter();
        using var patched = Target.OpenDump(d.Path, options);
        Assert.DoesNotContain(patched.Kernel.Modules, m => m.Address == victim.Address);
        var hidden = Assert.Single(CheckOf(patched.Kernel, _output).Findings, x => x.Check == Periscope.Integrity.Checks.CheckId.ModuleArea);
        Assert.Equal((Periscope.Integrity.Checks.FindingKind.HiddenModule, victim.Name, victim.Address), (hidden.Kind, hidden.Subject, hidden.Address));
        var gaps = new List<EvidenceGap>();
        Assert.Equal(victim.Address, Assert.Single(ModuleAreaScanner.FindHidden(patched.Kernel, gaps)).Address);
        Assert.Empty(gaps);
    }

    public void Dispose()
    {
        Detach();
        try { File.Delete(_db); } catch (IOException) { }
    }
}
