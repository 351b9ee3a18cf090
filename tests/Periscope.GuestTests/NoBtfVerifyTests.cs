using System.Buffers.Binary;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// verify without BTF on the default guest's dump (issue 8): the evidence read through the inferred layout must be
/// what BTF's layout reads (every jump entry, static-call site, ftrace record and registered ftrace_ops), a baseline
/// made without BTF verifies the same dump clean with no gap but the module-area scan (another area's, see below), and
/// attacks on a jump label and on an ftrace site, written into a copy of the dump, are critical findings at their address.
/// </summary>
[Collection("5-level guest")]
public sealed class NoBtfVerifyTests : IDisposable
{
    private readonly FiveLevelGuest _guest;
    private readonly ITestOutputHelper _output;
    private readonly string _db;
    private readonly BaselineStore _store;
    private readonly Target _target;
    private readonly StoredBaseline _baseline;
    private readonly EvidenceSnapshot _evidence;

    public NoBtfVerifyTests(FiveLevelGuest guest, ITestOutputHelper output)
    {
        _guest = guest;
        _output = output;
        _target = OpenNoBtf(guest.DumpPath);
        _db = Path.Combine(guest.Guest.WorkDirectory, $"baseline-nobtf-{Guid.NewGuid():n}.db");
        _store = BaselineStore.Open(_db);
        var summary = BaselineRecorder.Record(Kernel, _store, "no-btf");
        _baseline = _store.Latest(summary.BuildId, Kernel.Layout.TextVa)!;
        _evidence = EvidenceStore.Load(_store, summary.Id, Kernel.Limits)!;
    }

    private static Target OpenNoBtf(string path) => Target.OpenDump(path, new TargetOptions { NoBtf = true });
    private LinuxKernel Kernel => _target.Kernel;
    private LinuxKernel WithBtf => _guest.Dump.Kernel;
    private ulong Sym(string name) => WithBtf.Symbols.GetAddress(name);

    /// <summary>The module-area scan for hidden modules needs vmap_area_list/struct vmap_area: not this work's family
    /// (issue 8's vmap branch makes it BTF-free); every other family must be complete.</summary>
    private static bool IsHiddenModulesGap(string reason) => reason.Contains("HiddenModules", StringComparison.Ordinal);

    [Fact]
    public void Evidence_read_without_BTF_is_the_evidence_read_with_it()
    {
        Assert.Null(Kernel.Btf);
        var withBtf = EvidenceCollector.Collect(WithBtf);
        var ours = EvidenceCollector.Collect(Kernel);
        _output.WriteLine($"{ours.JumpEntries.Count} jump entries, {ours.StaticCallSites.Count} static-call sites, {ours.FtraceSites.Count} ftrace sites, "
            + $"{ours.FtraceOps.Count} ftrace_ops; gaps: {string.Join("; ", ours.Gaps.Select(g => $"{g.Family}: {g.Reason}"))}");
        Assert.All(ours.Gaps, g => Assert.Equal(EvidenceFamily.HiddenModules, g.Family));
        Assert.True(ours.JumpEntries.Count > 1000 && ours.StaticCallSites.Count > 100 && ours.FtraceSites.Count > 10_000,
            $"{ours.JumpEntries.Count} jump entries, {ours.StaticCallSites.Count} static-call sites, {ours.FtraceSites.Count} ftrace sites");
        Assert.Equal(withBtf.JumpEntries, ours.JumpEntries);
        Assert.Equal(withBtf.StaticCallSites, ours.StaticCallSites);
        Assert.Equal(withBtf.FtraceSites, ours.FtraceSites);
        Assert.Equal(withBtf.FtraceOps, ours.FtraceOps);
        Assert.Equal(withBtf.FtraceEntryCode, ours.FtraceEntryCode);
        Assert.Equal(withBtf.Symbols.Where(s => s.Module != 0).Select(s => (s.Address, s.Size, s.Name)), ours.Symbols.Where(s => s.Module != 0).Select(s => (s.Address, s.Size, s.Name)));
        // The x86 ABI's fixed entry layouts are BTF's.
        var (b, i) = (EvidenceLayout.FromBtf(WithBtf.Btf!), EvidenceLayout.FromInferred(Kernel.Offsets, 8));
        foreach (var (x, y) in new[] { (b.JumpEntry, i.JumpEntry), (b.StaticCallSite, i.StaticCallSite), (b.DynFtrace, i.DynFtrace), (b.FtracePage, i.FtracePage) })
        {
            Assert.Equal(x!.Size, y!.Size);
            foreach (var (member, offset) in y.Members) Assert.Equal((x.Struct, member, x[member]), (y.Struct, member, offset));
        }
    }

    [Fact]
    public void Clean_dump_verifies_clean_and_complete_but_the_module_area_scan()
    {
        var result = Verifier.Verify(Kernel, _baseline, _evidence);
        Assert.Empty(result.Findings);
        Assert.True(result.Clean);
        Assert.All(result.Incomplete, r => Assert.True(IsHiddenModulesGap(r), r));
    }

    private VerificationResult VerifyPatched(Action<PatchedDump> attack)
    {
        using var d = new PatchedDump(_guest.DumpPath, _guest.Dump.Image, WithBtf);
        attack(d);
        d.CloseWriter();
        using var t = OpenNoBtf(d.Path);
        return Verifier.Verify(t.Kernel, _baseline, _evidence);
    }

    [Fact]
    public void Retargeted_jump_label_and_hooked_ftrace_site_are_critical()
    {
        var nop = new byte[5];
        var (site, target) = _evidence.JumpEntries.First(j =>
            j.Code > Sym("_stext") && j.Code < Sym("_etext") && WithBtf.KernelSpace.Read(j.Code, nop) == 5 && nop.AsSpan().SequenceEqual(Judge.Nop5));
        var flipped = VerifyPatched(d => d.Write(site, Branch(0xe9, site, target)));
        var info = Assert.Single(flipped.Findings);
        Assert.Equal((Classifications.StaticKeyFlipped, Severity.Info), (info.Classification, info.Severity));
        var retargeted = VerifyPatched(d => d.Write(site, Branch(0xe9, site, Sym("commit_creds"))));
        var f = Assert.Single(retargeted.Findings);
        Assert.Equal((site, Classification.JumpLabelRetargeted, Severity.Critical), (f.VirtualAddress, f.Classification, f.Severity));
        Assert.Equal("commit_creds", f.Destination!.Description);

        ulong ftraceSite = _evidence.FtraceSites.Single(s => s >= Sym("__x64_sys_sysfs") && s < Sym("__x64_sys_sysfs") + 8);
        var hooked = VerifyPatched(d => d.Write(ftraceSite, Branch(0xe8, ftraceSite, Sym("commit_creds"))));
        var h = Assert.Single(hooked.Findings);
        Assert.Equal((ftraceSite, Classifications.FunctionHooked, Severity.Critical), (h.VirtualAddress, h.Classification, h.Severity));
        Assert.False(hooked.Clean);
    }

    private static byte[] Branch(byte opcode, ulong site, ulong to)
    {
        var c = new byte[5];
        c[0] = opcode;
        BinaryPrimitives.WriteInt32LittleEndian(c.AsSpan(1), (int)(long)(to - (site + 5)));
        return c;
    }

    public void Dispose()
    {
        _target.Dispose();
        _store.Dispose();
        try { File.Delete(_db); } catch (IOException) { }
    }
}
