using System.Buffers.Binary;
using Periscope.Cli;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Memory;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// Baseline on the real guest's dump, then verification against copies of it with the attacks applied byte for
/// byte (the in-guest tamper module does the same from inside). Each finding is asserted with its exact address and
/// classification; the clean copy gives no finding at all.
/// </summary>
[Collection("5-level guest")]
public sealed class IntegrityTests : IDisposable
{
    private readonly FiveLevelGuest _guest;
    private readonly string _db;
    private readonly BaselineStore _store;
    private readonly StoredBaseline _baseline;
    private readonly EvidenceSnapshot _evidence;

    private readonly ITestOutputHelper _output;

    public IntegrityTests(FiveLevelGuest guest, ITestOutputHelper output)
    {
        _guest = guest;
        _output = output;
        _db = Path.Combine(guest.Guest.WorkDirectory, $"baseline-{Guid.NewGuid():n}.db");
        _store = BaselineStore.Open(_db);
        var summary = BaselineRecorder.Record(Kernel, _store, "test");
        _baseline = _store.Latest(summary.BuildId, Kernel.Layout.TextVa)!;
        _evidence = EvidenceStore.Load(_store, summary.Id, Kernel.Limits)!;
    }

    private LinuxKernel Kernel => _guest.Dump.Kernel;
    private ulong Sym(string name) => Kernel.Symbols.GetAddress(name);

    private VerificationResult VerifyPatched(Action<PatchedDump> attack)
    {
        using var d = new PatchedDump(_guest.DumpPath, _guest.Dump.Image, Kernel);
        attack(d);
        using var t = d.Open();
        return Verifier.Verify(t.Kernel, _baseline, _evidence);
    }

    [Fact]
    public void Baseline_covers_the_kernel_dispatcher_idt_and_modules()
    {
        var names = _baseline.Regions.Select(r => r.Region.Name).ToList();
        Assert.Contains("kernel text", names);
        Assert.Contains("kernel rodata", names);
        Assert.Contains("sys_call_table", names);
        Assert.Contains("x64_sys_call", names);
        Assert.Contains("idt_table", names);
        foreach (var m in _guest.Truth.Modules) Assert.Contains($"module {m.Name} text", names);
        Assert.All(_baseline.Regions.SelectMany(r => r.Pages).Where(p => p.Present), p => Assert.Equal(32, p.Sha256!.Length));
    }

    [Fact]
    public void Unchanged_guest_verifies_clean()
    {
        var result = Verifier.Verify(Kernel, _baseline, _evidence);
        Assert.Empty(result.Findings);
        Assert.Empty(result.Incomplete);
        Assert.True(result.BytesChecked > 10 << 20);
    }

    [Fact]
    public void Patched_kernel_function_is_code_modified_at_the_exact_address()
    {
        ulong at = Sym("__x64_sys_sysfs") + 0x10;
        var result = VerifyPatched(d => d.Write(at, [0xcc, 0xcc, 0xcc]));
        var f = Assert.Single(result.Findings);
        Assert.Equal(at, f.VirtualAddress);
        Assert.Equal("__x64_sys_sysfs+0x10", f.Location);
        Assert.Equal(Classifications.CodeModified, f.Classification);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal([0xcc, 0xcc, 0xcc], f.Found);
        Assert.NotEqual(f.Expected, f.Found);
        Assert.Contains("int3", f.FoundDisassembly);
        Assert.False(string.IsNullOrEmpty(f.ExpectedDisassembly));
        Assert.NotNull(f.PhysicalAddress);
    }

    [Fact]
    public void Patched_syscall_dispatcher_is_reported_under_x64_sys_call()
    {
        ulong at = Sym("x64_sys_call") + 0x40;
        var result = VerifyPatched(d => d.Write(at, [0x90, 0x90, 0x90, 0x90, 0x90]));
        var f = Assert.Single(result.Findings);
        Assert.Equal("x64_sys_call", f.Region);
        Assert.Equal(RegionKind.SyscallDispatcher, f.Kind);
        Assert.Equal(Classifications.CodeModified, f.Classification);
        Assert.True(f.VirtualAddress >= at && f.VirtualAddress < at + 5);
    }

    [Fact]
    public void Hooked_syscall_entry_names_old_and_new_targets()
    {
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        ulong slot = Sym("sys_call_table") + 139 * 8;
        var result = VerifyPatched(d => d.WriteU64(slot, dummy.Base + 0x10));
        var f = Assert.Single(result.Findings);
        Assert.Equal(slot, f.VirtualAddress);
        Assert.Equal("sys_call_table[139]", f.Location);
        Assert.Equal(Classifications.SyscallHooked, f.Classification);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Contains("__x64_sys_sysfs", f.Detail);
        Assert.Contains("dummy+0x10", f.Detail);
        Assert.Equal(dummy.Base + 0x10, BinaryPrimitives.ReadUInt64LittleEndian(f.Found));
    }

    [Fact]
    public void Changed_interrupt_gate_names_the_handlers()
    {
        ulong gate = Sym("idt_table") + 0x80 * 16;
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        ulong handler = dummy.Base + 0x20;
        var result = VerifyPatched(d =>
        {
            Assert.True(Kernel.Reader.TryU64(gate, out ulong low));
            var g = new byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(g, low);
            BinaryPrimitives.WriteUInt16LittleEndian(g, (ushort)handler);
            BinaryPrimitives.WriteUInt16LittleEndian(g.AsSpan(6), (ushort)(handler >> 16));
            BinaryPrimitives.WriteUInt32LittleEndian(g.AsSpan(8), (uint)(handler >> 32));
            d.Write(gate, g);
        });
        var f = Assert.Single(result.Findings);
        Assert.Equal(gate, f.VirtualAddress);
        Assert.Equal(Classifications.InterruptGateChanged, f.Classification);
        Assert.Contains("asm_int80_emulation", f.Detail);
        Assert.Contains("dummy+0x20", f.Detail);
    }

    [Fact]
    public void Static_key_flip_to_its_recorded_target_is_info_not_tamper()
    {
        var nop = new byte[5];
        var (site, target) = _evidence.JumpEntries.First(j =>
            j.Code > Sym("_stext") && j.Code < Sym("_etext") && Kernel.KernelSpace.Read(j.Code, nop) == 5 && nop.AsSpan().SequenceEqual(Judge.Nop5)
            && (long)(j.Target - (j.Code + 5)) is > int.MinValue and < int.MaxValue);
        var result = VerifyPatched(d => d.Write(site, Branch(0xe9, site, target)));
        var f = Assert.Single(result.Findings);
        Assert.Equal(Classifications.StaticKeyFlipped, f.Classification);
        Assert.Equal(Severity.Info, f.Severity);
        Assert.True(result.Clean);
        // The same site jumping anywhere but its recorded target is critical.
        var other = VerifyPatched(d => d.Write(site, Branch(0xe9, site, Sym("commit_creds"))));
        var o = Assert.Single(other.Findings);
        Assert.Equal(Classification.JumpLabelRetargeted, o.Classification);
        Assert.Equal(Severity.Critical, o.Severity);
        Assert.Equal("commit_creds", o.Destination!.Description);
    }

    private static byte[] Branch(byte opcode, ulong site, ulong to)
    {
        var c = new byte[5];
        c[0] = opcode;
        BinaryPrimitives.WriteInt32LittleEndian(c.AsSpan(1), (int)(long)(to - (site + 5)));
        return c;
    }

    /// <summary>Issue 7: a 5-byte "call commit_creds" over the ftrace site of __x64_sys_sysfs was reported as Info
    /// "owned by kernel (commit_creds)" and left the result clean.</summary>
    [Fact]
    public void Call_to_commit_creds_over_an_ftrace_site_is_a_critical_hook()
    {
        ulong site = _evidence.FtraceSites.Single(s => s >= Sym("__x64_sys_sysfs") && s < Sym("__x64_sys_sysfs") + 8);
        var result = VerifyPatched(d => d.Write(site, Branch(0xe8, site, Sym("commit_creds"))));
        var f = Assert.Single(result.Findings);
        Assert.Equal(Classifications.FunctionHooked, f.Classification);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal(CodeOwnerKind.KernelText, f.Destination!.Owner);
        Assert.Equal("commit_creds", f.Destination.Description);
        Assert.False(result.Clean);
    }

    /// <summary>Issue 7: eight int3 bytes inside ftrace_regs_caller were reported as Info "ftrace dispatcher updated".</summary>
    [Fact]
    public void Int3_inside_ftrace_regs_caller_off_its_patch_sites_is_critical()
    {
        ulong entry = Sym("ftrace_regs_caller");
        ulong at = entry + 8;
        Assert.DoesNotContain(_evidence.FtracePatchSites, p => p.Address < at + 8 && p.Address + 5 > at);
        var result = VerifyPatched(d => d.Write(at, [0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]));
        var f = Assert.Single(result.Findings);
        Assert.Equal(Classification.FtraceEntryPatched, f.Classification);
        Assert.Equal(Severity.Critical, f.Severity);
        // At its patch site, to a known target, it is ftrace at work.
        var site = _evidence.FtracePatchSites.Single(p => p.Name == "ftrace_regs_call");
        var ok = VerifyPatched(d => d.Write(site.Address, Branch(0xe8, site.Address, Sym("ftrace_ops_list_func"))));
        var g = Assert.Single(ok.Findings);
        Assert.Equal(Classification.FtraceDispatcherUpdated, g.Classification);
        Assert.Equal(Severity.Info, g.Severity);
    }

    /// <summary>Issue 6 #7, region side: a module whose layout claims 86 MB of text must not become an 86 MB region.</summary>
    [Fact]
    public void Module_claiming_86_MB_of_text_is_skipped_with_the_numbers_not_measured()
    {
        var crc7 = Kernel.Modules.Single(m => m.Name == "crc7");
        var o = Kernel.Offsets.Module;
        ulong textSize = crc7.Address + (ulong)(o.CoreLayout!.Value + o.LayoutTextSize!.Value);
        ulong coreSize = crc7.Address + (ulong)(o.CoreLayout!.Value + o.LayoutSize);
        const uint Claimed = 86u << 20;
        using var d = new PatchedDump(_guest.DumpPath, _guest.Dump.Image, Kernel);
        // Core and text both claim 86 MB (a text larger than its core is refused by the model itself, before any
        // region exists): the module still fits the module area, so it is the region cap that must refuse it.
        d.Write(coreSize, BitConverter.GetBytes(Claimed));
        d.Write(textSize, BitConverter.GetBytes(Claimed));
        using var t = d.Open();
        string db = Path.Combine(_guest.Guest.WorkDirectory, $"huge-module-{Guid.NewGuid():n}.db");
        try
        {
            using var store = BaselineStore.Open(db);
            var summary = BaselineRecorder.Record(t.Kernel, store, "test");
            string reason = $"module crc7 text: length {Claimed} bytes exceeds the limit of {t.Kernel.Limits.MaxModuleRegionBytes} bytes";
            Assert.Contains(reason, summary.Skipped);
            Assert.True(summary.Bytes < 64 << 20, $"{summary.Bytes} bytes measured");
            // Verified against the good baseline: crc7's text is not "gone", it could not be checked.
            var result = Verifier.Verify(t.Kernel, _baseline, _evidence);
            Assert.Contains($"region skipped now: {reason}", result.Incomplete);
            Assert.DoesNotContain(result.Findings, f => f.Region == "module crc7 text");
            Assert.True(result.Findings.Count == 0, string.Join("\n", result.Findings.Select(f => $"{f.Classification} {f.Region} {f.Detail}")));
            Assert.Equal(3, Periscope.Cli.Commands.VerifyCommand.ExitCode(result));
            // baseline create says what it left out.
            var cli = new StringWriter();
            Assert.Equal(0, CliApp.Run(["baseline", "create", "--db", db, "--dump", d.Path], cli, cli));
            Assert.Contains($"  not in the baseline: {reason}", cli.ToString());
        }
        finally { File.Delete(db); }
    }

    /// <summary>Issue 6 #5, region side: kernel regions are cut only up to IntrospectionLimits.MaxKernelRegionBytes
    /// (a forged _etext of 0xfffffffffffff000 made baseline create cut an unbounded region); a skipped region is an
    /// incomplete reason with the numbers, and verify exits 3 when nothing else is wrong.</summary>
    [Fact]
    public void Kernel_text_larger_than_the_limit_is_skipped_and_the_run_is_incomplete()
    {
        using var t = Target.OpenDump(_guest.DumpPath, new TargetOptions { Limits = IntrospectionLimits.Default with { MaxKernelRegionBytes = 1 << 20 } });
        ulong length = Sym("_etext") - Sym("_stext");
        var catalog = RegionCatalog.Catalog(t.Kernel);
        Assert.DoesNotContain(catalog.Regions, r => r.Name == "kernel text");
        string reason = $"kernel text: length {length} bytes exceeds the limit of 1048576 bytes";
        Assert.Contains(catalog.Skipped, s => s.Reason == reason);
        var result = Verifier.Verify(t.Kernel, _baseline, _evidence);
        Assert.Contains($"region skipped now: {reason}", result.Incomplete);
        Assert.Empty(result.Findings);
        Assert.Equal(3, Periscope.Cli.Commands.VerifyCommand.ExitCode(result));
    }

    [Fact]
    public void Evidence_from_the_guest_is_complete_and_survives_the_store()
    {
        // Measured, not asserted: what collecting and storing evidence costs on this guest.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var again = EvidenceCollector.Collect(Kernel);
        double collectMs = sw.Elapsed.TotalMilliseconds;
        var blob = EvidenceSerializer.Serialize(again);
        _output.WriteLine($"evidence: {again.Symbols.Count} symbols, {again.JumpEntries.Count} jump entries, {again.StaticCallSites.Count} static-call sites, "
            + $"{again.FtraceSites.Count} ftrace sites, {again.FtraceOps.Count} ftrace_ops, {again.Modules.Count} modules; collected in {collectMs:0} ms, stored in {blob.Length} bytes");
        Assert.Equal(_evidence.JumpEntries, again.JumpEntries);
        Assert.Equal(_evidence.FtraceSites, again.FtraceSites);
        Assert.Empty(_evidence.Gaps);
        Assert.True(_evidence.JumpEntries.Count > 1000, $"{_evidence.JumpEntries.Count} jump entries");
        Assert.NotEmpty(_evidence.StaticCallSites);
        Assert.Contains(Sym("__x64_sys_sysfs"), _evidence.FtraceSites);
        Assert.True(_evidence.FtraceSites.Count > 10_000, $"{_evidence.FtraceSites.Count} ftrace sites");
        Assert.Equal(["ftrace_caller", "ftrace_regs_caller"], _evidence.FtraceEntryCode.Select(r => r.Name));
        Assert.Contains(_evidence.FtracePatchSites, p => p.Name == "ftrace_regs_call" && p.Address == Sym("ftrace_regs_call"));
        // Every module the guest lists, by its own name, with its own symbols.
        Assert.Equal(_guest.Truth.Modules.Select(m => m.Name).Order(), _evidence.Modules.Where(m => !m.Hidden).Select(m => m.Name).Order());
        Assert.DoesNotContain(_evidence.Modules, m => m.Hidden);
        var crc7 = _evidence.Modules.Single(m => m.Name == "crc7");
        Assert.Contains(_evidence.Symbols, s => s.Module == crc7.Address && s.Name == "crc7_be");
        // Entries outside kernel text are in the rest of the image (init code, freed after boot) or in a module, whose
        // own table they were read from.
        Assert.All(_evidence.JumpEntries.Where(j => !(j.Code >= Sym("_stext") && j.Code < Sym("_etext"))),
            j => Assert.True(j.Code >= Sym("_text") && j.Code < Sym("_end") || _evidence.Modules.Any(m => m.Contains(j.Code)), $"jump entry at 0x{j.Code:x}"));
    }

    /// <summary>Issue 6 #4: a stored page length of 100,000 with one changed byte crashed the disassembly of a finding.</summary>
    [Fact]
    public void Stored_page_of_100000_bytes_is_an_incomplete_reason_not_a_crash()
    {
        var text = _baseline.Regions.Single(r => r.Region.Name == "kernel text");
        int idx = (int)((Sym("__x64_sys_sysfs") - (text.Region.Start & ~0xfffUL)) / 4096);
        var page = text.Pages[idx];
        var content = new byte[100_000];
        page.Content!.CopyTo(content, 0);
        content[(int)(Sym("__x64_sys_sysfs") - page.VirtualAddress)] ^= 0xff;
        var pages = text.Pages.ToArray();
        pages[idx] = page with { Length = 100_000, Content = content, XxHash3 = page.XxHash3 ^ 1 };
        var forged = _baseline with { Regions = [.. _baseline.Regions.Select(r => r == text ? text with { Pages = pages } : r)] };
        var result = Verifier.Verify(Kernel, forged, _evidence);
        Assert.Contains(result.Incomplete, r => r.Contains("baseline region kernel text: stored page", StringComparison.Ordinal) && r.Contains("length 100000", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Findings, f => f.Region == "kernel text");
    }

    [Fact]
    public void Ftrace_call_to_kernel_trampoline_is_traced_but_call_to_nowhere_is_a_hidden_hook()
    {
        ulong fn = Sym("__x64_sys_sysfs");
        var head = new byte[9];
        Kernel.KernelSpace.Read(fn, head);
        ulong site = head.AsSpan(0, 4).SequenceEqual((byte[])[0xf3, 0x0f, 0x1e, 0xfa]) ? fn + 4 : fn; // after ENDBR64 on IBT kernels
        byte[] Call(ulong to)
        {
            var c = new byte[5];
            c[0] = 0xe8;
            BinaryPrimitives.WriteInt32LittleEndian(c.AsSpan(1), (int)(long)(to - (site + 5)));
            return c;
        }
        var traced = VerifyPatched(d => d.Write(site, Call(Sym("ftrace_regs_caller"))));
        var f = Assert.Single(traced.Findings);
        Assert.Equal(Classifications.FunctionTraced, f.Classification);
        Assert.Equal(Severity.Info, f.Severity);
        Assert.Contains("ftrace_regs_caller", f.Detail);

        // A call into the module area that no listed module owns: the signature of a hidden module's hook.
        ulong nowhere = Kernel.Modules.Max(m => m.Base + m.Size) + 0x100000;
        var hooked = VerifyPatched(d => d.Write(site, Call(nowhere)));
        var h = Assert.Single(hooked.Findings);
        Assert.Equal(Classifications.FunctionHooked, h.Classification);
        Assert.Equal(Severity.Critical, h.Severity);
        Assert.Equal(CodeOwnerKind.Unowned, h.Destination!.Owner);
        Assert.Contains("unowned executable memory", h.Detail);
    }

    [Fact]
    public void Patched_module_code_names_the_module()
    {
        var module = Kernel.Modules.Single(m => m.Name == "crc7");
        ulong at = module.Base + 0x20;
        var result = VerifyPatched(d => d.Write(at, [0xc3]));
        var f = Assert.Single(result.Findings);
        Assert.Equal("module crc7 text", f.Region);
        Assert.Equal("crc7+0x20", f.Location);
        Assert.Equal(at, f.VirtualAddress);
    }

    [Fact]
    public void Cli_baseline_and_verify_exit_codes()
    {
        string db = Path.Combine(_guest.Guest.WorkDirectory, $"cli-{Guid.NewGuid():n}.db");
        var output = new StringWriter();
        Assert.Equal(0, CliApp.Run(["baseline", "create", "--db", db, "--dump", _guest.DumpPath], output, output));
        // The unchanged guest verifies clean: the workload's anonymous RWX page was recorded in the baseline (issue 7).
        var clean = new StringWriter();
        Assert.Equal(0, CliApp.Run(["verify", "--db", db, "--dump", _guest.DumpPath], clean, clean));
        Assert.Contains("no differences", clean.ToString());
        using var d = new PatchedDump(_guest.DumpPath, _guest.Dump.Image, Kernel);
        d.Write(Sym("__x64_sys_sysfs") + 0x10, [0xcc]);
        d.CloseWriter();
        var report = new StringWriter();
        Assert.Equal(1, CliApp.Run(["verify", "--db", db, "--dump", d.Path], report, report));
        Assert.Contains("[CRITICAL] code modified: __x64_sys_sysfs+0x10", report.ToString());
        var json = new StringWriter();
        Assert.Equal(1, CliApp.Run(["verify", "--db", db, "--dump", d.Path, "--json"], json, json));
        using (var doc = System.Text.Json.JsonDocument.Parse(json.ToString()))
        {
            var root = doc.RootElement;
            Assert.Equal(1, root.GetProperty("exitCode").GetInt32());
            Assert.False(root.GetProperty("clean").GetBoolean());
            Assert.Equal(0, root.GetProperty("incomplete").GetArrayLength());
            var code = Assert.Single(root.GetProperty("findings").EnumerateArray(), f => f.GetProperty("severity").GetString() == "critical");
            Assert.Equal("code-modified", code.GetProperty("classification").GetString());
            Assert.Equal("__x64_sys_sysfs+0x10", code.GetProperty("location").GetString());
        }
        Assert.Equal(2, CliApp.Run(["verify", "--db", db + ".missing", "--dump", "/nonexistent"], report, report));
    }

    public void Dispose()
    {
        _store.Dispose();
        try { File.Delete(_db); } catch (IOException) { }
    }
}
