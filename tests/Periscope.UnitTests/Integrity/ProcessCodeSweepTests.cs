using System.Security.Cryptography;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// One measurement per shared page: five processes map the same four page-cache pages of /bin/busybox through their
/// own page tables, and one of them has a private copy of one page (a copy-on-write page at another physical address).
/// The sweep hashes each (file, offset, physical page) once and still reports every process's mappings.
/// </summary>
public sealed class ProcessCodeSweepTests : IDisposable
{
    private const int Processes = 5, SharedPages = 4;
    private const ulong CodeVa = 0x400000, SharedPa = 0x600000, PrivatePa = 0x700000, FileStruct = 0xffff888001234000;
    private const string Busybox = "/bin/busybox";

    private readonly TempFile _file;
    private readonly MemoryImage _image;
    private readonly List<ProcessCodeView> _views = [];

    public ProcessCodeSweepTests()
    {
        var memory = new byte[8 << 20];
        for (int p = 0; p < SharedPages; p++) RandomNumberGenerator.Fill(memory.AsSpan((int)SharedPa + p * 4096, 4096));
        memory.AsSpan((int)SharedPa + 2 * 4096, 4096).CopyTo(memory.AsSpan((int)PrivatePa));
        memory[PrivatePa + 0x10] ^= 0xff; // the private copy differs from the page-cache page
        var roots = new List<ulong>();
        for (int i = 0; i < Processes; i++)
        {
            var b = new PageTableBuilder(memory, PagingMode.FourLevel, 0x100000 + (ulong)i * 0x10000);
            for (int p = 0; p < SharedPages; p++)
                b.Map(CodeVa + (ulong)p * 4096, i == Processes - 1 && p == 2 ? PrivatePa : SharedPa + (ulong)p * 4096, 4096, P | U);
            roots.Add(b.Root);
        }
        _file = new TempFile(memory);
        _image = MemoryImage.Open(_file.Path);
        // The code VMA declares eight pages; four are resident.
        var vma = new Vma { Address = 0xffff888002000000, Start = CodeVa, End = CodeVa + 8 * 4096, Flags = Vma.VmRead | Vma.VmExec, Offset = 0, File = FileStruct, Path = Busybox };
        for (int i = 0; i < Processes; i++)
            _views.Add(new ProcessCodeView(100 + i, "sleep", Busybox, new AddressSpace(_image, roots[i], PagingMode.FourLevel), [vma]));
    }

    [Fact]
    public void A_page_mapped_by_many_processes_is_hashed_once()
    {
        using var hasher = new CodePageHasher();
        var sweep = ProcessCodeMeasurer.Sweep(_views, IntrospectionLimits.Default, hasher);

        // Four shared pages plus the one private copy: five hashes, not one per process and page (twenty).
        Assert.Equal(SharedPages + 1, hasher.PagesHashed);
        Assert.Equal(SharedPages + 1, sweep.Measured);
        Assert.Equal(Processes * SharedPages, sweep.Mappings.Count);
        Assert.Equal(Processes * SharedPages - (SharedPages + 1), sweep.SharedMappings);
        Assert.Equal((SharedPages + 1) * 4096L, sweep.Bytes);
        Assert.Equal(Processes * (8 - SharedPages), sweep.NotResident);
    }

    [Fact]
    public void Every_process_is_still_reported_with_the_hash_of_the_page_it_maps()
    {
        var sweep = ProcessCodeMeasurer.Sweep(_views, IntrospectionLimits.Default);
        var memory = File.ReadAllBytes(_file.Path);
        Assert.Equal(Enumerable.Range(100, Processes), sweep.Resident.Select(p => p.Pid).Distinct());
        foreach (var page in sweep.Resident)
        {
            ulong expectedPa = page.Pid == 100 + Processes - 1 && page.VirtualAddress == CodeVa + 2 * 4096 ? PrivatePa : SharedPa + (page.VirtualAddress - CodeVa);
            Assert.Equal(expectedPa, page.PhysicalAddress);
            Assert.Equal(page.VirtualAddress - CodeVa, page.FileOffset);
            Assert.Equal(Busybox, page.File);
            Assert.Equal(SHA256.HashData(memory.AsSpan((int)expectedPa, 4096)), page.Sha256);
        }
    }

    [Fact]
    public void A_shared_page_that_differs_is_compared_once_and_reported_for_every_process_mapping_it()
    {
        var sweep = ProcessCodeMeasurer.Sweep(_views, IntrospectionLimits.Default);
        // References as the file has them: page 1 of the file no longer matches what the page cache holds.
        var memory = File.ReadAllBytes(_file.Path);
        var references = new Dictionary<(string File, ulong Offset), (byte[] Sha256, string Source)>();
        for (int p = 0; p < SharedPages; p++)
            references[(Busybox, (ulong)p * 4096)] = (SHA256.HashData(memory.AsSpan((int)SharedPa + p * 4096, 4096)), "imported from file");
        references[(Busybox, 4096)] = (new byte[32], "imported from file");

        var (result, firstSeen) = ProcessCodeVerifier.Compare(sweep, references, new HashSet<AnonymousCodeKey>(), baseline: null);

        Assert.Equal(SharedPages + 1, result.Compared);
        Assert.Empty(firstSeen);
        Assert.Equal(Processes * SharedPages, result.ResidentMappings);
        Assert.Equal(Processes * SharedPages - (SharedPages + 1), result.SharedMappings);
        // The changed shared page: one finding per process, at its own address. The private copy of page 2 differs too.
        var modified = result.Findings.Where(f => f.Classification == Classifications.ProcessCodeModified).ToList();
        Assert.Equal(Enumerable.Range(100, Processes).Select(pid => $"pid {pid} (sleep) {Busybox}+0x1000"),
            modified.Where(f => f.VirtualAddress == CodeVa + 4096).Select(f => f.Location));
        var copy = Assert.Single(modified, f => f.VirtualAddress == CodeVa + 2 * 4096);
        Assert.Equal($"pid {100 + Processes - 1} (sleep) {Busybox}+0x2000", copy.Location);
        Assert.Equal(PrivatePa, copy.PhysicalAddress);
        Assert.Equal(Processes + 1, modified.Count);
    }

    [Fact]
    public void Pages_never_seen_are_recorded_once_per_file_offset()
    {
        var sweep = ProcessCodeMeasurer.Sweep(_views, IntrospectionLimits.Default);
        var references = new Dictionary<(string File, ulong Offset), (byte[] Sha256, string Source)>();
        var (result, firstSeen) = ProcessCodeVerifier.Compare(sweep, references, new HashSet<AnonymousCodeKey>(), baseline: null);
        // Four (file, offset): the private copy of offset 0x2000 is compared with the first-use reference of the shared one.
        Assert.Equal(Enumerable.Range(0, SharedPages).Select(p => (ulong)p * 4096), firstSeen.Select(f => f.Offset).Order());
        Assert.Equal(1, result.Compared);
        var finding = Assert.Single(result.Findings);
        Assert.Equal(PrivatePa, finding.PhysicalAddress);
    }

    public void Dispose()
    {
        _image.Dispose();
        _file.Dispose();
    }
}
