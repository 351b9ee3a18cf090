using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Measurement;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Integrity.ProcessCode;

/// <summary>One resident page of a process's file-backed code, keyed by the file and the page's offset in it.</summary>
public sealed record CodePage(int Pid, string Comm, ulong VirtualAddress, ulong PhysicalAddress, string File, ulong FileOffset, byte[] Sha256);

/// <summary>One distinct (file, offset, physical page) of a pass, hashed once however many processes map it.</summary>
public sealed record MeasuredCodePage(string File, ulong FileOffset, ulong PhysicalAddress, byte[] Sha256);

/// <summary>A process the sweep looked at (index <see cref="CodeMapping.Process"/> refers to these).</summary>
public sealed record SweptProcess(int Pid, string Comm);

/// <summary>One resident code page as one process maps it: indexes into <see cref="ProcessCodeSweep.Processes"/> and
/// <see cref="ProcessCodeSweep.Pages"/>, so half a million mappings of the same few pages cost no per-mapping objects.
/// Auto layout packs the two ints beside the address: 16 bytes instead of 24, a third less fresh memory for the
/// ~500,000 mappings of the 2,000-process guest.</summary>
[StructLayout(LayoutKind.Auto)]
public readonly record struct CodeMapping(int Process, ulong VirtualAddress, int Page);

/// <summary>Executable memory with no file behind it: where injected code lives. <see cref="Key"/> identifies it across
/// re-reads of the same boot (process, size, permissions, content) so that a baseline can record it.</summary>
public sealed record AnonymousCode(int Pid, string Comm, Vma Vma, AnonymousCodeKey Key, int ResidentPages);

/// <summary>What the sweep needs of one user process: its identity, page tables and mappings.</summary>
public sealed record ProcessCodeView(int Pid, string Comm, string? ExePath, AddressSpace Space, IReadOnlyList<Vma> Vmas);

/// <param name="Pages">Distinct (file, offset, physical page) hashed in this pass: a page shared by many processes is here once.</param>
/// <param name="Mappings">Every resident code page as each process maps it, pointing into <paramref name="Pages"/>.</param>
/// <param name="NotResident">Pages of executable file mappings with no present page-table entry.</param>
/// <param name="Bytes">Bytes hashed in this pass.</param>
/// <param name="Incomplete">What the sweep could not cover, and why (a cap from <see cref="IntrospectionLimits"/> with its numbers).</param>
public sealed record ProcessCodeSweep(IReadOnlyList<MeasuredCodePage> Pages, IReadOnlyList<CodeMapping> Mappings, IReadOnlyList<SweptProcess> Processes,
    long NotResident, IReadOnlyList<AnonymousCode> Anonymous, long Bytes, IReadOnlyList<string> Incomplete)
{
    private IReadOnlyList<CodePage>? _resident;

    /// <summary>Time of the whole pass: walking tasks, VMAs and page tables, reading and hashing.</summary>
    public TimeSpan Elapsed { get; init; }
    /// <summary>Time spent inside SHA-256 alone (its share of <see cref="Elapsed"/>): the hashing stage's own speed is
    /// <see cref="Bytes"/> over this, comparable with a single-core SHA-256 of as many bytes.</summary>
    public TimeSpan HashTime { get; init; }

    /// <summary>Distinct pages hashed.</summary>
    public int Measured => Pages.Count;

    /// <summary>Resident mappings that reused a page already measured for another mapping in this pass.</summary>
    public int SharedMappings => Mappings.Count - Pages.Count;

    /// <summary>Every resident code page as each process maps it (materialised on first use).</summary>
    public IReadOnlyList<CodePage> Resident => _resident ??= Mappings.Select(m =>
    {
        var (proc, page) = (Processes[m.Process], Pages[m.Page]);
        return new CodePage(proc.Pid, proc.Comm, m.VirtualAddress, page.PhysicalAddress, page.File, page.FileOffset, page.Sha256);
    }).ToArray();
}

/// <summary>SHA-256 of code pages through one reused hasher, counting the pages it hashed (what the sweep's "once per
/// shared page" promise is checked against).</summary>
public sealed class CodePageHasher : IDisposable
{
    private readonly IncrementalHash _hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    private long _hashTicks;

    public long PagesHashed { get; private set; }

    /// <summary>Time spent hashing (Stopwatch timestamps around each page: ~40 ns against ~3 µs of SHA-256 per page).</summary>
    public TimeSpan HashTime => Stopwatch.GetElapsedTime(0, _hashTicks);

    public byte[] Sha256(ReadOnlySpan<byte> page)
    {
        PagesHashed++;
        long start = Stopwatch.GetTimestamp();
        var hash = PageHash.Sha256(_hasher, page);
        _hashTicks += Stopwatch.GetTimestamp() - start;
        return hash;
    }

    /// <summary>Feeds a page into a running content hash (anonymous code) and counts it.</summary>
    public void Append(IncrementalHash content, ReadOnlySpan<byte> page)
    {
        PagesHashed++;
        long start = Stopwatch.GetTimestamp();
        content.AppendData(page);
        _hashTicks += Stopwatch.GetTimestamp() - start;
    }

    public void Dispose() => _hasher.Dispose();
}

/// <summary>
/// VMPMS-style per-page measurement of user code: every executable VMA of every user process, through the process's
/// own page tables. Resident pages are enumerated from the page tables over the VMA (cost bounded by the tables that
/// exist, not by the range the VMA declares, which a guest can make huge); the rest are counted and measured on a later
/// pass. Each (file, offset, physical page) is read and hashed once per pass however many processes map it: the
/// thousands of processes of one busybox share its page-cache pages, so the pass costs one hash per distinct page plus
/// one dictionary probe per mapping.
/// </summary>
public static class ProcessCodeMeasurer
{
    private const ulong PageBytes = 4096;

    public static ProcessCodeSweep Sweep(LinuxKernel kernel, Func<LinuxTask, bool>? only = null, CodePageHasher? hasher = null) =>
        Sweep(Processes(kernel, only), kernel.Limits, hasher);

    /// <summary>The user processes of <paramref name="kernel"/>, read one at a time as the sweep reaches them.</summary>
    public static IEnumerable<ProcessCodeView> Processes(LinuxKernel kernel, Func<LinuxTask, bool>? only = null)
    {
        foreach (var task in kernel.Tasks)
        {
            if (task.Mm == 0 || task.IsKernelThread || (only is not null && !only(task))) continue;
            if (kernel.GetAddressSpace(task) is not { } space) continue;
            yield return new ProcessCodeView(task.Pid, task.Comm, task.ExePath, space, kernel.GetVmas(task));
        }
    }

    public static ProcessCodeSweep Sweep(IEnumerable<ProcessCodeView> processes, IntrospectionLimits limits, CodePageHasher? hasher = null)
    {
        var pages = new List<MeasuredCodePage>();
        var mappings = new List<CodeMapping>();
        var swept = new List<SweptProcess>();
        var anonymous = new List<AnonymousCode>();
        var incomplete = new List<string>();
        // File paths as small ids, so that the per-mapping key is three integers (no string hashing per page).
        var fileIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var measuredOnce = new Dictionary<(int File, ulong Offset, ulong Physical), int>();
        long notResident = 0, bytes = 0, pagesLeft = limits.MaxProcessCodePagesPerPass;
        var buffer = new byte[PageBytes];
        var resident = new List<(ulong Va, ulong Pa)>(); // one list for every mapping: 500,000 pages, not a list each
        var offset = new byte[8];
        using var ownHasher = hasher is null ? new CodePageHasher() : null;
        hasher ??= ownHasher!;
        long started = Stopwatch.GetTimestamp();
        var hashedBefore = hasher.HashTime;
        foreach (var process in processes)
        {
            int processIndex = -1;
            foreach (var vma in process.Vmas)
            {
                if (!vma.IsExecutable || vma.Path == "[vsyscall]") continue;
                if (vma.File == 0 && vma.Path == "[vdso]") continue;
                if (vma.End <= vma.Start || ((vma.Start | vma.End) & (PageBytes - 1)) != 0)
                {
                    // The kernel keeps VMAs page-aligned and non-empty (the VMA reader already drops others; this guards
                    // the page arithmetic below should a VMA reach us some other way).
                    incomplete.Add($"pid {process.Pid} ({process.Comm}) {vma.Start:x}-{vma.End:x}: executable mapping is empty, inverted or not page-aligned; not measured");
                    continue;
                }
                if (pagesLeft <= 0)
                {
                    incomplete.Add($"process code sweep stopped at pid {process.Pid}: more than {limits.MaxProcessCodePagesPerPass} resident pages in one pass (MaxProcessCodePagesPerPass)");
                    return Result();
                }
                ulong end = vma.End;
                if (vma.End - vma.Start > limits.MaxProcessCodeVmaBytes)
                {
                    end = vma.Start + limits.MaxProcessCodeVmaBytes;
                    incomplete.Add($"pid {process.Pid} ({process.Comm}) {vma.Start:x}-{vma.End:x}: executable mapping of {vma.End - vma.Start} bytes, more than the limit of {limits.MaxProcessCodeVmaBytes} (MaxProcessCodeVmaBytes); only the first {limits.MaxProcessCodeVmaBytes} bytes measured");
                }
                long residentHere = 0;
                var space = process.Space;
                if (vma.File == 0)
                {
                    // Content identity of the whole mapping: resident pages with their offsets, in order.
                    using var content = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    foreach (var (va, pa) in ResidentPages(space, vma.Start, end, ref pagesLeft, resident))
                    {
                        if (!TryRead(space.Physical, pa, buffer, out var data)) continue;
                        BinaryPrimitives.WriteUInt64LittleEndian(offset, va - vma.Start);
                        content.AppendData(offset);
                        hasher.Append(content, data);
                        bytes += (long)PageBytes;
                        residentHere++;
                    }
                    var key = new AnonymousCodeKey(process.ExePath ?? "", process.Comm, vma.Permissions, vma.End - vma.Start, Convert.ToHexStringLower(content.GetHashAndReset()));
                    anonymous.Add(new AnonymousCode(process.Pid, process.Comm, vma, key, (int)Math.Min(residentHere, int.MaxValue)));
                    continue;
                }
                if (!fileIds.TryGetValue(vma.Path, out int fileId)) fileIds.Add(vma.Path, fileId = fileIds.Count);
                foreach (var (va, pa) in ResidentPages(space, vma.Start, end, ref pagesLeft, resident))
                {
                    ulong fileOffset = vma.Offset + (va - vma.Start);
                    if (!measuredOnce.TryGetValue((fileId, fileOffset, pa), out int page))
                    {
                        if (!TryRead(space.Physical, pa, buffer, out var data)) continue;
                        page = pages.Count;
                        pages.Add(new MeasuredCodePage(vma.Path, fileOffset, pa, hasher.Sha256(data)));
                        measuredOnce.Add((fileId, fileOffset, pa), page);
                        bytes += (long)PageBytes;
                    }
                    if (processIndex < 0)
                    {
                        processIndex = swept.Count;
                        swept.Add(new SweptProcess(process.Pid, process.Comm));
                    }
                    mappings.Add(new CodeMapping(processIndex, va, page));
                    residentHere++;
                }
                notResident += (long)((end - vma.Start) / PageBytes) - residentHere;
            }
        }
        return Result();

        ProcessCodeSweep Result() => new(pages, mappings, swept, notResident, anonymous, bytes, incomplete)
            { Elapsed = Stopwatch.GetElapsedTime(started), HashTime = hasher.HashTime - hashedBefore };
    }

    /// <summary>Present 4 KiB pages of [start, end) from the page tables, at most <paramref name="pagesLeft"/> of them.</summary>
    private static List<(ulong Va, ulong Pa)> ResidentPages(AddressSpace space, ulong start, ulong end, ref long pagesLeft, List<(ulong Va, ulong Pa)> pages)
    {
        pages.Clear();
        // Tables count against the walk's own budget too, so hostile tables holding no leaves are bounded as well.
        foreach (var range in space.EnumerateMappings(start, end, maxLeaves: pagesLeft + 1024))
        {
            ulong from = Math.Max(range.VirtualAddress, start) & ~(PageBytes - 1), to = Math.Min(range.VirtualEnd, end);
            for (ulong va = from; va < to && pagesLeft > 0; va += PageBytes, pagesLeft--)
                pages.Add((va, range.PhysicalAddress + (va - range.VirtualAddress)));
            if (pagesLeft <= 0) break;
        }
        return pages;
    }

    private static bool TryRead(IPhysicalMemory memory, ulong pa, byte[] buffer, out ReadOnlySpan<byte> data)
    {
        data = memory is IDirectPhysicalMemory direct ? direct.GetSpan(pa, buffer.Length) : default;
        if (!data.IsEmpty) return true;
        if (memory.Read(pa, buffer) != buffer.Length) return false;
        data = buffer;
        return true;
    }
}
