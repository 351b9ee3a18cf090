using Periscope.Cli;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.GuestTests;

/// <summary>Per-page measurement of process code (VMPMS) on the real guest: trust on first use, references imported
/// from the guest's own ELF files, a modified code page, and anonymous executable memory.</summary>
[Collection("5-level guest")]
public sealed class ProcessCodeTests(FiveLevelGuest guest) : IDisposable
{
    private readonly string _db = Path.Combine(guest.Guest.WorkDirectory, $"code-{Guid.NewGuid():n}.db");
    private LinuxKernel Kernel => guest.Dump.Kernel;

    [Fact]
    public void Resident_code_pages_are_shared_per_file_and_match_the_files_themselves()
    {
        var sweep = ProcessCodeMeasurer.Sweep(Kernel);
        Assert.Contains(sweep.Resident, p => p.File == "/bin/busybox");
        Assert.Contains(sweep.Resident, p => p.File == "/bin/workload");
        Assert.True(sweep.NotResident > 0, "some code pages were never faulted in");
        // Several processes map busybox: one reference per (file, offset) serves them all.
        Assert.True(sweep.Resident.Where(p => p.File == "/bin/busybox").Select(p => p.Pid).Distinct().Count() > 1);

        string rootfs = Path.Combine(GuestImage.Directory(), "rootfs");
        var output = new StringWriter();
        Assert.Equal(0, CliApp.Run(["baseline", "import-files", "--db", _db, "--root", rootfs, Path.Combine(rootfs, "bin")], output, output));
        Assert.Contains("imported", output.ToString());
        using var store = BaselineStore.Open(_db);
        var result = ProcessCodeVerifier.Verify(Kernel, store);
        Assert.True(result.Compared > 100, $"only {result.Compared} pages compared against file references");
        Assert.Equal(0, result.FirstSeen);
        Assert.DoesNotContain(result.Findings, f => f.Classification == Classifications.ProcessCodeModified);
    }

    [Fact]
    public void Modified_code_page_of_a_running_process_is_found_with_file_offset()
    {
        using (var store = BaselineStore.Open(_db)) ProcessCodeVerifier.Verify(Kernel, store); // first use
        var threaded = Kernel.Tasks.Single(t => t.Comm == "workload" && t.ThreadCount == 4);
        var victim = ProcessCodeMeasurer.Sweep(Kernel, t => t.Pid == threaded.Pid).Resident.First(p => p.File == "/bin/workload");
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WritePhysical(victim.PhysicalAddress + 0x123, [0xcc]);
        using var t = d.Open();
        using var again = BaselineStore.Open(_db);
        var result = ProcessCodeVerifier.Verify(t.Kernel, again);
        // Every process mapping that physical page sees the change (the renamed and zombie-parent workloads share it).
        var mine = Assert.Single(result.Findings, f => f.Classification == Classifications.ProcessCodeModified && f.Location.StartsWith($"pid {threaded.Pid} "));
        Assert.Equal(victim.VirtualAddress, mine.VirtualAddress);
        Assert.Equal(Severity.Critical, mine.Severity);
        Assert.Contains($"/bin/workload+0x{victim.FileOffset:x}", mine.Location);
    }

    [Fact]
    public void Anonymous_executable_memory_is_reported()
    {
        using var store = BaselineStore.Open(_db);
        var result = ProcessCodeVerifier.Verify(Kernel, store);
        var anon = Assert.Single(result.Findings, f => f.Classification == Classifications.AnonymousCode);
        Assert.Contains("rwxp", anon.Location);
        Assert.Equal(Severity.Warning, anon.Severity);
    }

    public void Dispose()
    {
        try { File.Delete(_db); } catch (IOException) { }
    }
}
