using Periscope.Integrity.Baselines;
using Periscope.Integrity.Checks;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// The integrity detectors against real attacks: tamper/periscope_tamper.ko attacks the running guest from inside,
/// Periscope measures it from outside (live, through its RAM file, confirming under QMP stop), and every finding is
/// asserted at the exact address the module reports. Each test takes its own baseline right before its attack, and
/// starts from the same state whatever ran before it: the module listed under its own name (see the constructor).
/// </summary>
[Collection("tamper guest")]
public sealed class TamperDetectionTests(TamperGuest guest, ITestOutputHelper output) : IDisposable
{
    private readonly string _db = Path.Combine(guest.Guest.WorkDirectory, $"tamper-{Guid.NewGuid():n}.db");
    private readonly Target _live = Prepared(guest);

    /// <summary>Undoes what an earlier test in this guest may have left (hidden or renamed module), so no test depends
    /// on another's order.</summary>
    private static Target Prepared(TamperGuest guest)
    {
        guest.Restore();
        var status = TamperReport.Parse(guest.Tamper("status")[0], "status");
        if (status["hidden"] == "yes") TamperReport.Parse(guest.Tamper("unhide")[0], "unhide");
        guest.Tamper("rename periscope_tamper");
        var live = guest.AttachLive();
        live.Kernel.Refresh();
        Assert.Single(live.Kernel.Modules, m => m.Name == "periscope_tamper" && m.Address == guest.ModuleAddress);
        return live;
    }

    private LinuxKernel Paused()
    {
        _live.Kernel.Refresh();
        return _live.Kernel;
    }

    private (StoredBaseline Regions, EvidenceSnapshot Evidence) Baseline()
    {
        using var pause = _live.Pause();
        var k = Paused();
        using var store = BaselineStore.Open(_db);
        var summary = BaselineRecorder.Record(k, store, "tamper test");
        store.AddCodePages(ProcessCodeMeasurer.Sweep(k).Resident.Select(p => (p.File, p.FileOffset, p.Sha256)), "first use at baseline");
        return (store.Latest(summary.BuildId, k.Layout.TextVa)!, EvidenceStore.Load(store, summary.Id, k.Limits)!);
    }

    private IReadOnlyList<Finding> Verify((StoredBaseline Regions, EvidenceSnapshot Evidence) baseline) => Verify(baseline, out _);

    private IReadOnlyList<Finding> Verify((StoredBaseline Regions, EvidenceSnapshot Evidence) baseline, out VerificationResult result)
    {
        using var pause = _live.Pause();
        var k = Paused();
        result = Verifier.Verify(k, baseline.Regions, baseline.Evidence);
        foreach (var reason in result.Incomplete) output.WriteLine($"incomplete: {reason}");
        var findings = result.Findings.ToList();
        using var store = BaselineStore.Open(_db);
        findings.AddRange(ProcessCodeVerifier.Verify(k, store, recordFirstSeen: false).Findings);
        foreach (var f in findings) output.WriteLine($"{f.Severity} {f.Classification} {f.Location} 0x{f.VirtualAddress:x} {f.Detail}");
        return findings;
    }

    private IReadOnlyList<CheckFinding> Check()
    {
        using var pause = _live.Pause();
        var findings = new InvariantChecks(Paused()).Run().Findings;
        foreach (var f in findings.Where(f => f.Severity != Severity.Info)) output.WriteLine($"{f.Severity} {f.Check} {f.Subject} 0x{f.Address:x} {f.Detail}");
        return findings;
    }

    private static IEnumerable<Finding> Critical(IEnumerable<Finding> findings) =>
        findings.Where(f => f.Severity == Severity.Critical && f.Classification != Classifications.RegionGone);

    [Fact]
    public void Syscall_table_overwrite_is_found_by_verify_and_by_check()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("syscall 139")[0], "syscall");
            ulong slot = r.Hex("slot");
            var f = Assert.Single(Critical(Verify(baseline)));
            Assert.Equal(Classifications.SyscallHooked, f.Classification);
            Assert.Equal(slot, f.VirtualAddress);
            Assert.Equal("sys_call_table[139]", f.Location);
            Assert.Contains("__x64_sys_sysfs", f.Detail);
            var c = Assert.Single(Check(), x => x.Check == CheckId.SyscallTable);
            Assert.Equal(slot, c.Address);
        }
        finally { guest.Restore(); }
        Assert.Empty(Critical(Verify(baseline)));
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Kernel_text_patch_is_code_modified_at_the_reported_address()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("patch __x64_sys_sysfs 0")[0], "patch");
            var f = Assert.Single(Critical(Verify(baseline)));
            Assert.Equal(Classifications.CodeModified, f.Classification);
            Assert.Equal(r.Hex("addr"), f.VirtualAddress);
            Assert.Equal("__x64_sys_sysfs", f.Location);
            Assert.Contains("nop", f.FoundDisassembly);
        }
        finally { guest.Restore(); }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Ftrace_hook_of_a_listed_module_is_traced_and_owned_by_it()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("ftrace __x64_sys_newuname")[0], "ftrace");
            var findings = Verify(baseline);
            var f = Assert.Single(findings, x => x.Location == "__x64_sys_newuname");
            Assert.Equal(r.Hex("site"), f.VirtualAddress);
            Assert.Equal(Classifications.FunctionTraced, f.Classification);
            Assert.Equal(Severity.Info, f.Severity);
            Assert.Contains("owned by module periscope_tamper", f.Detail);
            Assert.Contains("tamper_ftrace_cb", f.Detail);
            Assert.Empty(Critical(findings));
            // The ftrace_ops registered since the baseline is itself reported, with its owner.
            var ops = Assert.Single(findings, x => x.Classification == Classification.AllowListAdded && x.Location.StartsWith("ftrace_ops ", StringComparison.Ordinal));
            Assert.Equal(Severity.Warning, ops.Severity);
            Assert.Equal("periscope_tamper", ops.Destination!.Module!.Name);
        }
        finally { guest.Restore(); }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Ftrace_hook_of_a_module_that_hid_itself_is_critical_and_names_the_hidden_module()
    {
        var baseline = Baseline();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("ftrace __x64_sys_newuname")[0], "ftrace");
            Assert.Equal(guest.ModuleAddress, TamperReport.Parse(guest.Tamper("hide")[0], "hide").Hex("module"));
            var findings = Verify(baseline);
            var f = Assert.Single(findings, x => x.Location == "__x64_sys_newuname");
            Assert.Equal(r.Hex("site"), f.VirtualAddress);
            Assert.Equal(Classifications.FunctionHooked, f.Classification);
            Assert.Equal(Severity.Critical, f.Severity);
            Assert.Equal(CodeOwnerKind.HiddenModule, f.Destination!.Owner);
            Assert.Equal(guest.ModuleAddress, f.Destination.Module!.Address);
            Assert.StartsWith("tamper_ftrace_cb in HIDDEN module periscope_tamper", f.Destination.Description);
            var hidden = Assert.Single(findings, x => x.Classification == Classification.ModuleHidden);
            Assert.Equal(guest.ModuleAddress, hidden.VirtualAddress);
        }
        finally
        {
            guest.Restore();
            guest.Tamper("unhide");
        }
        guest.AssertKernelHealthy();
    }

    /// <summary>Issue 6 #3 / issue 7: two modules of one name (the tamper module renamed to "dummy") crashed
    /// Verifier.Verify with a duplicate key. Now they are two regions, and a change in either is found in it.</summary>
    [Fact]
    public void Module_renamed_to_another_modules_name_is_two_regions_both_verified()
    {
        var dummy = guest.Truth.Modules.Single(m => m.Name == "dummy");
        try
        {
            var renamed = TamperReport.Parse(guest.Tamper("rename dummy")[0], "rename");
            Assert.Equal("dummy", renamed["new"]);
            var baseline = Baseline();
            var regions = baseline.Regions.Regions.Where(r => r.Region.Name == "module dummy text").Select(r => r.Region.Start).Order().ToList();
            Assert.Equal(new[] { guest.ModuleBase, dummy.Base }.Order(), regions);
            Assert.DoesNotContain(Verify(baseline, out var clean), f => f.Severity != Severity.Info && f.Kind != Periscope.Integrity.Regions.RegionKind.ProcessCode);
            Assert.Equal(baseline.Regions.Regions.Count, clean.RegionsChecked);

            // A traced function in each: each change is found in its own region, at its own address.
            foreach (var (function, moduleBase) in new[] { ("tamper_read", guest.ModuleBase), ("dummy_get_stats64", dummy.Base) })
            {
                var r = TamperReport.Parse(guest.Tamper($"ftrace {function}")[0], "ftrace");
                var f = Assert.Single(Verify(baseline), x => x.VirtualAddress == r.Hex("site"));
                Assert.Equal("module dummy text", f.Region);
                Assert.Equal(Classifications.FunctionTraced, f.Classification);
                Assert.Equal($"dummy+0x{r.Hex("site") - moduleBase:x}", f.Location);
                guest.Restore();
            }
        }
        finally
        {
            guest.Restore();
            guest.Tamper("rename periscope_tamper");
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Hidden_module_and_hidden_process_are_found_by_check()
    {
        int pid = guest.StartSleep(3100);
        try
        {
            ulong task = TamperReport.Parse(guest.Tamper($"hidepid {pid}")[0], "hidepid").Hex("task");
            Assert.Equal(guest.ModuleAddress, TamperReport.Parse(guest.Tamper("hide")[0], "hide").Hex("module"));
            var findings = Check();
            var m = Assert.Single(findings, x => x.Kind == FindingKind.HiddenModule);
            Assert.Equal("periscope_tamper", m.Subject);
            Assert.Equal(guest.ModuleAddress, m.Address);
            var hidden = findings.Where(x => x.Kind == FindingKind.HiddenTask).ToList();
            Assert.NotEmpty(hidden);
            Assert.All(hidden, t => Assert.Equal(task, t.Address));
            Assert.All(hidden, t => Assert.Equal($"pid {pid} (sleep)", t.Subject));
        }
        finally
        {
            guest.Restore();
            guest.Tamper("unhide");
            guest.Run($"kill {pid}");
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Changed_user_code_page_is_found_with_process_file_and_offset()
    {
        int pid = guest.StartSleep(3200);
        var baseline = Baseline();
        try
        {
            var k = Paused();
            var text = k.GetVmas(k.Tasks.Single(t => t.Pid == pid)).First(v => v.Permissions == "r-xp" && v.Path == "/bin/busybox");
            ulong addr = text.Start + 0x40;
            TamperReport.Parse(guest.Tamper($"usercode {pid} 0x{addr:x}")[0], "usercode");
            var f = Assert.Single(Critical(Verify(baseline)));
            Assert.Equal(Classifications.ProcessCodeModified, f.Classification);
            Assert.Equal(addr & ~0xfffUL, f.VirtualAddress);
            Assert.StartsWith($"pid {pid} (sleep) /bin/busybox+0x", f.Location);
        }
        finally
        {
            guest.Restore();
            guest.Run($"kill {pid}");
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Enabling_a_tracepoint_flips_static_keys_and_stays_clean()
    {
        guest.Run("mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing");
        var baseline = Baseline();
        const string Event = "/sys/kernel/tracing/events/sched/sched_process_fork/enable";
        try
        {
            guest.Run($"echo 1 > {Event}");
            guest.Run("sleep 0"); // a fork, so the tracepoint fires
            var findings = Verify(baseline);
            Assert.Contains(findings, f => f.Classification == Classifications.StaticKeyFlipped && f.Severity == Severity.Info);
            Assert.Contains(findings, f => f.Classification == Classifications.StaticCallUpdated && f.Severity == Severity.Info);
            Assert.Empty(Critical(findings));
        }
        finally { guest.Run($"echo 0 > {Event}"); }
        guest.AssertKernelHealthy();
    }

    public void Dispose()
    {
        _live.Dispose();
        try { File.Delete(_db); } catch (IOException) { }
    }
}
