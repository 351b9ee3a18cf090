using System.Security.Cryptography;
using Periscope.Integrity.Measurement;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Integrity.ProcessCode;

/// <summary>One resident page of a process's file-backed code, keyed by the file and the page's offset in it.</summary>
public sealed record CodePage(int Pid, string Comm, ulong VirtualAddress, ulong PhysicalAddress, string File, ulong FileOffset, byte[] Sha256);

/// <summary>Executable memory with no file behind it: where injected code lives.</summary>
public sealed record AnonymousCode(int Pid, string Comm, Vma Vma);

public sealed record ProcessCodeSweep(IReadOnlyList<CodePage> Resident, int NotResident, IReadOnlyList<AnonymousCode> Anonymous, long Bytes);

/// <summary>
/// VMPMS-style per-page measurement of user code: every executable VMA of every user process, page by page, through
/// the process's own page tables. Only resident pages are hashed; the rest are counted and measured on a later pass.
/// </summary>
public static class ProcessCodeMeasurer
{
    public static ProcessCodeSweep Sweep(LinuxKernel kernel, Func<LinuxTask, bool>? only = null)
    {
        var resident = new List<CodePage>();
        var anonymous = new List<AnonymousCode>();
        int notResident = 0;
        long bytes = 0;
        var page = new byte[4096];
        using var hasher = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var task in kernel.Tasks)
        {
            if (task.Mm == 0 || task.IsKernelThread || (only is not null && !only(task))) continue;
            var space = kernel.GetAddressSpace(task);
            if (space is null) continue;
            foreach (var vma in kernel.GetVmas(task))
            {
                if (!vma.IsExecutable || vma.Path == "[vsyscall]") continue;
                if (vma.File == 0)
                {
                    if (vma.Path is not ("[vdso]")) anonymous.Add(new AnonymousCode(task.Pid, task.Comm, vma));
                    continue;
                }
                for (ulong va = vma.Start; va < vma.End; va += 4096)
                {
                    // Only a present PTE counts: the walk fails for pages never faulted in or swapped out.
                    if (!space.TryTranslate(va, out ulong pa)) { notResident++; continue; }
                    ReadOnlySpan<byte> bytes4k = space.GetSpan(va, 4096);
                    if (bytes4k.IsEmpty)
                    {
                        if (space.Read(va, page) != page.Length) { notResident++; continue; }
                        bytes4k = page;
                    }
                    resident.Add(new CodePage(task.Pid, task.Comm, va, pa, vma.Path, vma.Offset + (va - vma.Start), PageHash.Sha256(hasher, bytes4k)));
                    bytes += 4096;
                }
            }
        }
        return new ProcessCodeSweep(resident, notResident, anonymous, bytes);
    }
}
