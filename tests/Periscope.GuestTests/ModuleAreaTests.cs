using Periscope.Integrity.Checks;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// The module-area view (check module-area, verify's HiddenModules evidence) with and without BTF, on the default
/// guest's dump (and, through scripts/kernel-matrix's PERISCOPE_GUEST_DIR, on every kernel of the matrix: 6.9+ keep
/// the busy vmalloc areas per vmap_node): complete and clean untouched, and a module unlinked from the `modules` list
/// (list_del, as the tamper module's `hide` does) found with its struct module's exact address.
/// </summary>
[Collection("5-level guest")]
public sealed class ModuleAreaTests(FiveLevelGuest guest, ITestOutputHelper output)
{
    private LinuxKernel WithBtf => guest.Dump.Kernel;

    private static Target Open(string path, bool noBtf) => Target.OpenDump(path, new TargetOptions { NoBtf = noBtf });

    private IReadOnlyList<VmallocArea> Areas(LinuxKernel k)
    {
        var areas = VmallocAreas.Open(k, out string reason);
        Assert.True(areas is not null, reason);
        output.WriteLine($"{(k.Btf is null ? "no BTF" : "BTF")}: {areas!.Era}, {areas.Heads.Count} list(s)");
        return [.. areas.Walk(k.Limits.MaxVmapAreas)];
    }

    [Fact]
    public void Module_area_is_complete_and_clean_with_and_without_BTF_and_both_read_the_same_areas()
    {
        using var t = Open(guest.DumpPath, noBtf: true);
        var noBtf = t.Kernel;
        Assert.Null(noBtf.Btf);
        var withBtf = Areas(WithBtf);
        Assert.True(withBtf.Count > 50, $"{withBtf.Count} vmalloc areas");
        Assert.Equal(withBtf, Areas(noBtf));
        // Each listed module's text lies inside exactly one busy area.
        foreach (var m in WithBtf.Modules)
            Assert.True(withBtf.Count(a => a.Start <= m.Base && m.Base < a.End) == 1, $"{m.Name} at 0x{m.Base:x}");

        foreach (var k in new[] { WithBtf, noBtf })
        {
            var report = new InvariantChecks(k).Run();
            var area = report.Outcomes.Single(o => o.Check == CheckId.ModuleArea);
            Assert.True(area.Status == CheckStatus.Complete, $"{area.Status}: {string.Join("; ", area.Gaps.Select(g => g.Detail))}");
            var loud = report.Findings.Where(f => f.Check == CheckId.ModuleArea && f.Severity > Severity.Info).ToList();
            Assert.True(loud.Count == 0, string.Join("\n", loud.Select(f => f.Detail)));
            var gaps = new List<EvidenceGap>();
            Assert.Empty(ModuleAreaScanner.FindHidden(k, gaps));
            Assert.Empty(gaps);
        }
    }

    [Fact]
    public void Module_unlinked_from_the_list_is_found_with_and_without_BTF()
    {
        // The last listed module: every guest of the matrix loads a few at boot.
        var victim = WithBtf.Modules[^1];
        ulong node = victim.Address + (ulong)WithBtf.Offsets.Module.List;
        Assert.True(WithBtf.Reader.TryPointer(node, out ulong next));
        Assert.True(WithBtf.Reader.TryPointer(node + 8, out ulong prev));
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, WithBtf);
        d.WriteU64(prev, next);
        d.WriteU64(next + 8, prev);
        d.CloseWriter();

        foreach (bool noBtf in new[] { false, true })
        {
            using var t = Open(d.Path, noBtf);
            var k = t.Kernel;
            Assert.DoesNotContain(k.Modules, m => m.Address == victim.Address);
            var report = new InvariantChecks(k).Run();
            var f = Assert.Single(report.Findings, x => x.Kind == FindingKind.HiddenModule);
            Assert.Equal((victim.Name, victim.Address, Severity.Critical), (f.Subject, f.Address, f.Severity));
            Assert.Equal(CheckStatus.Complete, report.Outcomes.Single(o => o.Check == CheckId.ModuleArea).Status);

            var gaps = new List<EvidenceGap>();
            var hidden = Assert.Single(ModuleAreaScanner.FindHidden(k, gaps));
            Assert.Empty(gaps);
            Assert.Equal((victim.Name, victim.Address, victim.Base, victim.Size), (hidden.Name, hidden.Address, hidden.Base, hidden.Size));
        }
    }
}
