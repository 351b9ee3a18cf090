using Periscope.Cli;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Memory;
using Periscope.Tests.Shared;

namespace Periscope.GuestTests;

/// <summary>Per-page measurement of process code (VMPMS) on the real guest: trust on first use, references imported
/// from the guest's own ELF files, a modified code page, and anonymous executable memory.</summary>
[Collection("5-level guest")]
public sealed class ProcessCodeTests(FiveLevelGuest guest, Xunit.Abstractions.ITestOutputHelper log) : IDisposable
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

    [Fact]
    public void Each_shared_page_is_hashed_once_per_pass()
    {
        var sweep = ProcessCodeMeasurer.Sweep(Kernel);
        int distinct = sweep.Resident.Select(p => (p.File, p.FileOffset, p.PhysicalAddress)).Distinct().Count();
        Assert.Equal(distinct, sweep.Measured);
        // busybox is mapped by many processes: far fewer pages hashed than pages reported.
        Assert.True(sweep.Measured < sweep.Resident.Count / 2, $"{sweep.Measured} pages hashed for {sweep.Resident.Count} resident mappings");
        long anonymousBytes = sweep.Anonymous.Sum(a => (long)a.ResidentPages) * 4096;
        Assert.Equal((long)sweep.Measured * 4096 + anonymousBytes, sweep.Bytes);
        Assert.Empty(sweep.Incomplete);
        // Every process's report still carries the shared hash.
        foreach (var group in sweep.Resident.GroupBy(p => (p.File, p.FileOffset, p.PhysicalAddress)))
            Assert.Single(group.Select(p => Convert.ToHexString(p.Sha256)).Distinct());
    }

    [Fact]
    public void Shared_pages_are_measured_once_and_every_process_keeps_its_own_report()
    {
        var sweep = ProcessCodeMeasurer.Sweep(Kernel);
        // Ground truth: each resident mapping lies in an executable mapping of that file in the guest's own
        // /proc/PID/maps, at the file offset the guest shows (processes that ended since the listing are skipped).
        int checkedPages = 0;
        foreach (var page in sweep.Resident)
        {
            if (!guest.Truth.Maps.TryGetValue(page.Pid, out var maps)) continue;
            var line = Assert.Single(maps, m => m.Start <= page.VirtualAddress && page.VirtualAddress < m.End);
            Assert.Equal('x', line.Perms[2]);
            Assert.Equal(line.Path, page.File);
            Assert.Equal(line.Offset + (page.VirtualAddress - line.Start), page.FileOffset);
            checkedPages++;
        }
        Assert.True(checkedPages > sweep.Measured, $"{checkedPages} mappings checked against the guest's maps, {sweep.Measured} distinct pages");
        Assert.Equal(sweep.Mappings.Count - sweep.Measured, sweep.SharedMappings);
        Assert.True(sweep.SharedMappings > 0);

        // One shared busybox page changed: one finding for each process that maps it, at that process's own address.
        using (var store = BaselineStore.Open(_db)) ProcessCodeVerifier.Verify(Kernel, store); // first use
        var shared = sweep.Resident.Where(p => p.File == "/bin/busybox").GroupBy(p => p.PhysicalAddress).OrderByDescending(g => g.Count()).First().ToList();
        Assert.True(shared.Count > 1, "a busybox page mapped by several processes");
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WritePhysical(shared[0].PhysicalAddress + 0x40, [0xcc]);
        using var t = d.Open();
        using var again = BaselineStore.Open(_db);
        var result = ProcessCodeVerifier.Verify(t.Kernel, again);
        var modified = result.Findings.Where(f => f.Classification == Classifications.ProcessCodeModified).ToList();
        Assert.Equal(shared.Select(p => (p.Pid, p.VirtualAddress)).Order(),
            modified.Select(f => (int.Parse(f.Location.Split(' ')[1]), f.VirtualAddress)).Order());
        Assert.All(modified, f => Assert.EndsWith($"/bin/busybox+0x{shared[0].FileOffset:x}", f.Location));
        Assert.Equal(sweep.Mappings.Count, result.ResidentMappings);
        Assert.Equal(sweep.SharedMappings, result.SharedMappings);
        Assert.Equal(sweep.Measured, result.Compared);

        // The command says how many mappings were shared (measured once).
        string db = _db + ".cli";
        try
        {
            Assert.Equal(0, CliRun.Run("baseline", "create", "--dump", guest.DumpPath, "--db", db).Code);
            var (code, output, err) = CliRun.Run("verify", "--dump", guest.DumpPath, "--db", db);
            Assert.True(code == 0, $"exit {code}: {output}{err}");
            Assert.Contains($"process code: {sweep.Mappings.Count} resident pages in all processes ({sweep.SharedMappings} shared with another process, measured once), {sweep.Measured} distinct pages compared", output);
        }
        finally
        {
            foreach (string f in new[] { db, db + "-wal", db + "-shm" }) File.Delete(f);
        }
    }

    [Fact]
    public void Anonymous_code_matches_the_guests_own_maps()
    {
        var sweep = ProcessCodeMeasurer.Sweep(Kernel);
        var anon = Assert.Single(sweep.Anonymous);
        // Ground truth: the guest's /proc/PID/maps shows this one anonymous rwx mapping of one page.
        var line = Assert.Single(guest.Truth.Maps[anon.Pid], m => m.Start == anon.Vma.Start);
        Assert.Equal("rwxp", line.Perms);
        Assert.Equal("", line.Path);
        Assert.Equal(line.End - line.Start, anon.Key.Length);
        Assert.Equal(1, anon.ResidentPages); // the workload wrote to it
    }

    [Fact]
    public void Raised_vm_end_of_a_code_mapping_is_capped_and_bounded_by_the_page_tables()
    {
        // One 8-byte write (issue 6 #6): a busybox code VMA now claims 64 TiB. The sweep once probed it page by page.
        int victimPid = ProcessCodeMeasurer.Sweep(Kernel).Resident.First(p => p.File == "/bin/busybox").Pid;
        var victim = Kernel.Tasks.Single(t => t.Pid == victimPid);
        var code = Kernel.GetVmas(victim).First(v => v.IsExecutable && v.Path == "/bin/busybox");
        var before = ProcessCodeMeasurer.Sweep(Kernel, t => t.Pid == victim.Pid);
        ulong raisedEnd = code.Start + (64UL << 40);
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WriteU64(code.Address + (ulong)Kernel.Offsets.Vma.End, raisedEnd);
        var limits = IntrospectionLimits.Default with { MaxProcessCodeVmaBytes = 256UL << 20 };
        using var t = d.Open(limits);
        Assert.Contains(t.Kernel.GetVmas(t.Kernel.Tasks.Single(x => x.Pid == victim.Pid)), v => v.Start == code.Start && v.End == raisedEnd);
        var sweep = ProcessCodeMeasurer.Sweep(t.Kernel, x => x.Pid == victim.Pid);
        string reason = Assert.Single(sweep.Incomplete);
        Assert.Equal($"pid {victim.Pid} ({victim.Comm}) {code.Start:x}-{raisedEnd:x}: executable mapping of {64UL << 40} bytes, more than the limit of {256UL << 20} (MaxProcessCodeVmaBytes); only the first {256UL << 20} bytes measured", reason);
        // The pages that really are code are still measured, with the same hashes.
        var original = before.Resident.Where(p => p.VirtualAddress >= code.Start && p.VirtualAddress < code.End).ToList();
        Assert.NotEmpty(original);
        foreach (var p in original)
            Assert.Contains(sweep.Resident, q => q.VirtualAddress == p.VirtualAddress && q.Sha256.AsSpan().SequenceEqual(p.Sha256));
        // What was counted is what the page tables map, not what the VMA declares.
        Assert.True(sweep.NotResident < (256L << 20) / 4096, $"{sweep.NotResident} pages counted as not resident");
    }

    [Fact]
    public void Baseline_create_twice_then_verify_on_the_unchanged_guest_is_clean()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (code, output, err) = CliRun.Run("baseline", "create", "--dump", guest.DumpPath, "--db", _db);
        log.WriteLine($"baseline create: {sw.ElapsedMilliseconds} ms: {output}");
        Assert.True(code == 0, err);
        Assert.Contains("1 anonymous executable mappings (1 new)", output);
        (code, output, err) = CliRun.Run("baseline", "create", "--dump", guest.DumpPath, "--db", _db);
        Assert.True(code == 0, err);
        Assert.Contains("already holds these measurements (unchanged guest): not stored again", output);
        (code, output, _) = CliRun.Run("baseline", "list", "--db", _db, "--json");
        Assert.Equal(0, code);
        Assert.Single(System.Text.Json.JsonDocument.Parse(output).RootElement.EnumerateArray());
        // The workload's anonymous rwx page was part of the baseline: an unchanged guest verifies clean (exit 0).
        sw.Restart();
        (code, output, err) = CliRun.Run("verify", "--dump", guest.DumpPath, "--db", _db);
        log.WriteLine($"verify: {sw.ElapsedMilliseconds} ms: {output}");
        Assert.True(code == 0, $"exit {code}: {output}{err}");
        Assert.Contains("no differences", output);
    }

    [Fact]
    public void Anonymous_code_changed_since_the_baseline_is_still_a_warning()
    {
        Assert.Equal(0, CliRun.Run("baseline", "create", "--dump", guest.DumpPath, "--db", _db).Code);
        var anon = Assert.Single(ProcessCodeMeasurer.Sweep(Kernel).Anonymous);
        var task = Kernel.Tasks.Single(t => t.Pid == anon.Pid);
        Assert.True(Kernel.GetAddressSpace(task)!.TryTranslate(anon.Vma.Start, out ulong pa));
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WritePhysical(pa + 0x10, [0x90, 0x90]);
        using var t = d.Open();
        using var store = BaselineStore.Open(_db, BaselineOpenMode.Existing);
        var result = ProcessCodeVerifier.Verify(t.Kernel, store, recordFirstSeen: false);
        var finding = Assert.Single(result.Findings);
        Assert.Equal(Classifications.AnonymousCode, finding.Classification);
        Assert.Equal(Severity.Warning, finding.Severity);
        Assert.StartsWith($"pid {anon.Pid} ", finding.Location);
        Assert.Equal(0, result.KnownAnonymous);
        // The unchanged dump: the same mapping is known and not reported.
        var clean = ProcessCodeVerifier.Verify(Kernel, store, recordFirstSeen: false);
        Assert.Equal(1, clean.KnownAnonymous);
        Assert.DoesNotContain(clean.Findings, f => f.Classification == Classifications.AnonymousCode);
    }

    public void Dispose()
    {
        try { File.Delete(_db); } catch (IOException) { }
    }
}
