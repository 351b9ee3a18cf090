using System.Buffers.Binary;
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

/// <summary>Executable memory with no file behind it: where injected code lives. <see cref="Key"/> identifies it across
/// re-reads of the same boot (process, size, permissions, content) so that a baseline can record it.</summary>
public sealed record AnonymousCode(int Pid, string Comm, Vma Vma, AnonymousCodeKey Key, int ResidentPages);

/// <param name="Resident">Every resident code page as each process maps it.</param>
/// <param name="NotResident">Pages of executable file mappings with no present page-table entry.</param>
/// <param name="Measured">Distinct (file, offset, physical page) hashed: a page shared by many processes is hashed once.</param>
/// <param name="Bytes">Bytes hashed in this pass.</param>
/// <param name="Incomplete">What the sweep could not cover, and why (a cap from <see cref="IntrospectionLimits"/> with its numbers).</param>
public sealed record ProcessCodeSweep(IReadOnlyList<CodePage> Resident, long NotResident, IReadOnlyList<AnonymousCode> Anonymous, long Bytes,
    int Measured = 0, IReadOnlyList<string>? Incomplete = null)
{
    public IReadOnlyList<string> Incomplete { get; init; } = Incomplete ?? [];
}

/// <summary>
/// VMPMS-style per-page measurement of user code: every executable VMA of every user process, through the process's
/// own page tables. Resident pages are enumerated from the page tables over the VMA (cost bounded by the tables that
/// exist, not by the range the VMA declares, which a guest can make huge); the rest are counted and measured on a later
/// pass. Each (file, offset, physical page) is hashed once per pass however many processes map it.
/// </summary>
public static class ProcessCodeMeasurer
{
    private const ulong PageBytes = 4096;

    public static ProcessCodeSweep Sweep(LinuxKernel kernel, Func<LinuxTask, bool>? only = null)
    {
        var limits = kernel.Limits;
        var resident = new List<CodePage>();
        var anonymous = new List<AnonymousCode>();
        var incomplete = new List<string>();
        var measuredOnce = new Dictionary<(string File, ulong Offset, ulong Physical), byte[]>();
        long notResident = 0, bytes = 0, pagesLeft = limits.MaxProcessCodePagesPerPass;
        var page = new byte[PageBytes];
        var offset = new byte[8];
        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var task in kernel.Tasks)
        {
            if (task.Mm == 0 || task.IsKernelThread || (only is not null && !only(task))) continue;
            var space = kernel.GetAddressSpace(task);
            if (space is null) continue;
            foreach (var vma in kernel.GetVmas(task))
            {
                if (!vma.IsExecutable || vma.Path == "[vsyscall]") continue;
                if (vma.File == 0 && vma.Path == "[vdso]") continue;
                if (vma.End <= vma.Start || ((vma.Start | vma.End) & (PageBytes - 1)) != 0)
                {
                    // The kernel keeps VMAs page-aligned and non-empty (the VMA reader already drops others; this guards
                    // the page arithmetic below should a VMA reach us some other way).
                    incomplete.Add($"pid {task.Pid} ({task.Comm}) {vma.Start:x}-{vma.End:x}: executable mapping is empty, inverted or not page-aligned; not measured");
                    continue;
                }
                if (pagesLeft <= 0)
                {
                    incomplete.Add($"process code sweep stopped at pid {task.Pid}: more than {limits.MaxProcessCodePagesPerPass} resident pages in one pass (MaxProcessCodePagesPerPass)");
                    return Result();
                }
                ulong end = vma.End;
                if (vma.End - vma.Start > limits.MaxProcessCodeVmaBytes)
                {
                    end = vma.Start + limits.MaxProcessCodeVmaBytes;
                    incomplete.Add($"pid {task.Pid} ({task.Comm}) {vma.Start:x}-{vma.End:x}: executable mapping of {vma.End - vma.Start} bytes, more than the limit of {limits.MaxProcessCodeVmaBytes} (MaxProcessCodeVmaBytes); only the first {limits.MaxProcessCodeVmaBytes} bytes measured");
                }
                long residentHere = 0;
                if (vma.File == 0)
                {
                    // Content identity of the whole mapping: resident pages with their offsets, in order.
                    using var content = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    foreach (var (va, pa) in ResidentPages(space, vma.Start, end, ref pagesLeft))
                    {
                        if (!TryRead(space.Physical, pa, page, out var data)) continue;
                        BinaryPrimitives.WriteUInt64LittleEndian(offset, va - vma.Start);
                        content.AppendData(offset);
                        content.AppendData(data);
                        bytes += (long)PageBytes;
                        residentHere++;
                    }
                    var key = new AnonymousCodeKey(task.ExePath ?? "", task.Comm, vma.Permissions, vma.End - vma.Start, Convert.ToHexStringLower(content.GetHashAndReset()));
                    anonymous.Add(new AnonymousCode(task.Pid, task.Comm, vma, key, (int)Math.Min(residentHere, int.MaxValue)));
                    continue;
                }
                foreach (var (va, pa) in ResidentPages(space, vma.Start, end, ref pagesLeft))
                {
                    ulong fileOffset = vma.Offset + (va - vma.Start);
                    var id = (vma.Path, fileOffset, pa);
                    if (!measuredOnce.TryGetValue(id, out var sha))
                    {
                        if (!TryRead(space.Physical, pa, page, out var data)) continue;
                        sha = PageHash.Sha256(hasher, data);
                        measuredOnce.Add(id, sha);
                        bytes += (long)PageBytes;
                    }
                    resident.Add(new CodePage(task.Pid, task.Comm, va, pa, vma.Path, fileOffset, sha));
                    residentHere++;
                }
                notResident += (long)((end - vma.Start) / PageBytes) - residentHere;
            }
        }
        return Result();

        ProcessCodeSweep Result() => new(resident, notResident, anonymous, bytes, measuredOnce.Count, incomplete);
    }

    /// <summary>Present 4 KiB pages of [start, end) from the page tables, at most <paramref name="pagesLeft"/> of them.</summary>
    private static List<(ulong Va, ulong Pa)> ResidentPages(AddressSpace space, ulong start, ulong end, ref long pagesLeft)
    {
        var pages = new List<(ulong, ulong)>();
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
