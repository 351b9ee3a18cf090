using Periscope.Linux;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Targets;
using Periscope.X86;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// Kernel discovery on real dumps of 4- and 5-level guests: every way in (a vCPU's CR3, VMCOREINFO, the low-memory
/// search, the full scan) must find the same kernel, and that kernel must be the guest's own: its init_top_pgt
/// (from the guest's /proc/kallsyms) is the kernel PGD and its _text is the layout's. Without CPU notes and VMCOREINFO
/// the cheap search still finds it, reading a few hundred pages of 65,536.
/// </summary>
public abstract class DiscoveryTests<TGuest>(TGuest guest, ITestOutputHelper output) where TGuest : GuestFixture
{
    protected abstract PagingMode ExpectedPaging { get; }

    private ulong TruthSymbol(string name) => guest.Truth.Symbols.First(s => s.Name == name).Address;

    private KernelLayout Locate(DiscoveryMethods methods, out DiscoveryLog log, bool withNotes = true)
    {
        log = new DiscoveryLog();
        var image = guest.Dump.Image;
        var inputs = new DiscoveryInputs
        {
            Cpus = withNotes ? image.Cpus : [], VmcoreInfo = withNotes ? image.VmcoreInfo : null, Methods = methods,
        };
        return KernelLocator.Locate(image, inputs, IntrospectionLimits.Default, log);
    }

    [Theory]
    [InlineData(DiscoveryMethods.Cr3)]
    [InlineData(DiscoveryMethods.VmcoreInfo)]
    [InlineData(DiscoveryMethods.LowMemorySearch)]
    [InlineData(DiscoveryMethods.FullScan)]
    public void Every_way_in_finds_the_guests_init_top_pgt_and_text(DiscoveryMethods method)
    {
        Assert.NotNull(guest.Dump.Image.VmcoreInfo); // the test guest publishes it (qemu_fw_cfg); Periscope never needs it
        var layout = Locate(method, out var log);
        foreach (var f in log.Facts) output.WriteLine($"{f.Name}: {f.Value} ({f.How})");
        Assert.Equal((int)method, 1 << (int)layout.FoundBy);
        Assert.Equal(ExpectedPaging, layout.Mode);
        ulong textVa = TruthSymbol("_text");
        Assert.Equal(textVa, layout.TextVa);
        Assert.Equal(layout.ImageVaToPa(TruthSymbol("init_top_pgt")), layout.KernelPgd);
        Assert.Empty(log.Warnings);

        // The same answers as the full scan, and page_offset_base as the kernel's own variable holds it.
        var scan = Locate(DiscoveryMethods.FullScan, out _);
        Assert.Equal((scan.Mode, scan.KernelPgd, scan.TextVa, scan.TextPa, scan.PageOffsetBase),
            (layout.Mode, layout.KernelPgd, layout.TextVa, layout.TextPa, layout.PageOffsetBase));
        var k = guest.Dump.Kernel;
        ulong pob = 0;
        Assert.True(k.Symbols.TryGetAddress("page_offset_base", out ulong pobVa) && k.Reader.TryU64(pobVa, out pob));
        Assert.Equal(pob, layout.PageOffsetBase);
        if (method != DiscoveryMethods.FullScan)
            Assert.True(layout.DiscoveryPagesRead * 100 < scan.DiscoveryPagesRead, $"{layout.DiscoveryPagesRead} pages vs the scan's {scan.DiscoveryPagesRead}");
    }

    [Fact]
    public void A_dump_with_cpu_notes_is_attached_through_cr3_with_every_cross_check_consistent()
    {
        var k = guest.Dump.Kernel;
        foreach (var f in k.Log.Facts) output.WriteLine($"{f.Name}: {f.Value} ({f.How})");
        Assert.Equal(DiscoveryMethod.Cr3, k.Layout.FoundBy);
        Assert.InRange(k.Layout.DiscoveryPagesRead, 1, 64);
        foreach (var check in new[] { "CR3 cross-check", "VMCOREINFO PGD cross-check", "init_top_pgt cross-check", "_text cross-check" })
            Assert.Contains(k.Log.Facts, f => f.Name == check && f.Value == "consistent");
        Assert.Empty(k.Log.Warnings);
    }

    [Fact]
    public void Without_cpu_notes_and_vmcoreinfo_the_low_memory_search_opens_the_same_kernel()
    {
        var image = guest.Dump.Image;
        var bare = LinuxKernel.Open(image, cpus: [], vmcoreInfo: null);
        foreach (var f in bare.Log.Facts) output.WriteLine($"{f.Name}: {f.Value} ({f.How})");
        Assert.Equal(DiscoveryMethod.LowMemorySearch, bare.Layout.FoundBy);
        Assert.InRange(bare.Layout.DiscoveryPagesRead, 1, 512); // of 65,536 RAM pages
        Assert.Empty(bare.Log.Warnings);
        var k = guest.Dump.Kernel;
        Assert.Equal((k.Layout.KernelPgd, k.Layout.TextVa, k.Layout.TextPa, k.Layout.PageOffsetBase, k.Layout.Mode),
            (bare.Layout.KernelPgd, bare.Layout.TextVa, bare.Layout.TextPa, bare.Layout.PageOffsetBase, bare.Layout.Mode));
        Assert.Equal(k.Tasks.Select(t => (t.Pid, t.Comm)), bare.Tasks.Select(t => (t.Pid, t.Comm)));
    }

    [Fact]
    public void With_only_the_full_scan_allowed_the_fallback_is_used_and_said()
    {
        var k = LinuxKernel.Open(guest.Dump.Image, guest.Dump.Cpus, vmcoreInfo: guest.Dump.Image.VmcoreInfo, options: new KernelOpenOptions { Discovery = DiscoveryMethods.FullScan });
        Assert.Equal(DiscoveryMethod.FullScan, k.Layout.FoundBy);
        Assert.True(k.Layout.DiscoveryPagesRead >= (long)(guest.Dump.Memory.Map.RamBytes / 4096) * 9 / 10);
        Assert.Contains(k.Layout.KernelPgd, k.Layout.KernelPgdGroup);
        Assert.Contains(k.Log.Facts, f => f.Name == "discovery" && f.How.Contains("fell back"));
        Assert.Empty(k.Log.Warnings);
        Assert.Equal(guest.Dump.Kernel.Layout.KernelPgd, k.Layout.KernelPgd);
    }

    [Fact]
    public void Live_ram_file_without_qmp_is_found_by_the_low_memory_search()
    {
        using var live = Target.AttachLive(guest.Guest.RamFilePath, null);
        var k = live.Kernel;
        Assert.Equal(DiscoveryMethod.LowMemorySearch, k.Layout.FoundBy);
        Assert.Equal(guest.Dump.Kernel.Layout.KernelPgd, k.Layout.KernelPgd);
        Assert.Equal(TruthSymbol("_text"), k.Layout.TextVa);
    }
}

[Collection("5-level guest")]
public sealed class FiveLevelDiscoveryTests(FiveLevelGuest guest, ITestOutputHelper output) : DiscoveryTests<FiveLevelGuest>(guest, output)
{
    protected override PagingMode ExpectedPaging => PagingMode.FiveLevel;
}

[Collection("4-level guest")]
public sealed class FourLevelDiscoveryTests(FourLevelGuest guest, ITestOutputHelper output) : DiscoveryTests<FourLevelGuest>(guest, output)
{
    protected override PagingMode ExpectedPaging => PagingMode.FourLevel;
}
