using Iced.Intel;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// vmap_area_list on a kernel whose kallsyms has no data symbols (Debian's 686 kernels), found by the code that uses it:
/// vread() (mm/vmalloc.c before 6.4; vread_iter() 6.4-6.8) walks <c>list_for_each_entry(va, &amp;vmap_area_list, list)</c>,
/// so the list head's address is an immediate or a displacement in its code. Every kernel data address the function
/// names is a candidate; only one that heads a proper cycle of busy vmalloc areas (<see cref="VmapAreaShape"/>) is
/// taken. vread takes no other sorted list of areas (free_vmap_area_list is only in the allocator), so two fitting
/// candidates are an ambiguity and nothing is returned.
/// </summary>
public static class VmapAreaListSearch
{
    /// <summary>Functions read, in order: each walks vmap_area_list and no other list of vmap areas.</summary>
    public static readonly string[] Functions = ["vread", "vread_iter"];
    /// <summary>Bytes of each function decoded: vread is ~1 KiB on 6.1 (x86-64 and i386).</summary>
    private const int MaxCodeBytes = 4096;
    private const int MaxInstructions = 1024;

    public static ulong? Find(GuestReader reader, KernelSymbols symbols, int maxAreas, out string why)
    {
        why = $"kallsyms has none of {string.Join(", ", Functions)} to read vmap_area_list from";
        foreach (string function in Functions)
        {
            if (!symbols.TryGetAddress(function, out ulong fn)) continue;
            var code = new byte[MaxCodeBytes];
            int n = reader.Space.Read(fn, code);
            var fits = new List<ulong>();
            foreach (ulong candidate in DataAddresses(code.AsSpan(0, n).ToArray(), fn, reader.PointerSize))
            {
                if (candidate <= 0xfff || !reader.IsKernelPointer(candidate)) continue;
                if (VmapAreaShape.Links(reader, candidate, maxAreas) is not { Count: >= VmapAreaShape.MinAreas } links) continue;
                if (VmapAreaShape.Bounds(reader, [VmapAreaShape.Windows(reader, links)]).Count > 0) fits.Add(candidate);
            }
            if (fits.Count == 1)
            {
                why = $"{function} at 0x{fn:x} names 0x{fits[0]:x}, the one address it uses that heads a sorted list of vmalloc areas";
                return fits[0];
            }
            why = fits.Count == 0
                ? $"{function} at 0x{fn:x}: none of the data addresses in its first {n} bytes heads a list of vmalloc areas"
                : $"{function} at 0x{fn:x}: {fits.Count} addresses head lists of vmalloc areas ({string.Join(", ", fits.Select(f => $"0x{f:x}"))}): ambiguous";
        }
        return null;
    }

    /// <summary>Every immediate and absolute (or RIP-relative) memory address in the code, in order, each once.</summary>
    public static IEnumerable<ulong> DataAddresses(byte[] code, ulong ip, int pointerSize)
    {
        int bitness = pointerSize * 8;
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code), ip);
        var seen = new HashSet<ulong>();
        ulong end = ip + (ulong)code.Length;
        for (int i = 0; i < MaxInstructions && decoder.IP < end; i++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) continue;
            for (int op = 0; op < ins.OpCount; op++)
            {
                ulong? value = ins.GetOpKind(op) switch
                {
                    OpKind.Memory when ins.IsIPRelativeMemoryOperand => ins.IPRelativeMemoryAddress,
                    OpKind.Memory when ins.MemoryBase == Register.None => bitness == 32 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64,
                    OpKind.Memory when bitness == 32 => ins.MemoryDisplacement32, // lea reg, [reg + list] style
                    OpKind.Immediate32 => ins.Immediate32,
                    OpKind.Immediate64 => ins.Immediate64,
                    OpKind.Immediate32to64 => unchecked((ulong)ins.Immediate32to64),
                    _ => null,
                };
                if (value is { } v && seen.Add(v)) yield return v;
            }
        }
    }
}
