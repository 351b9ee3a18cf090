using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>Lists the VMAs of an mm_struct (maple tree, or the pre-6.1 mmap list) with /proc/PID/maps naming.</summary>
public sealed class VmaReader(GuestReader reader, KernelOffsets offsets, IntrospectionLimits limits, Diagnostics diagnostics, PathResolver paths, SpecialMappings special)
{
    public IReadOnlyList<Vma> Read(ulong mm)
    {
        if (mm == 0 || !reader.IsKernelPointer(mm)) return [];
        reader.TryI32(mm + (ulong)offsets.Mm.MapCount, out int mapCount);
        int cap = (int)Math.Clamp(mapCount + 16L, 16, limits.MaxVmasPerProcess); // map_count is the guest's word: long, no wrap
        IEnumerable<ulong> vmas;
        if (offsets.Maple is { } maple)
        {
            reader.TryPointer(mm + (ulong)maple.Root, out ulong root);
            vmas = new MapleTree(reader, maple, limits, diagnostics).Entries(root, cap);
        }
        else if (offsets.Mm.Mmap is { } mmapOff && offsets.Vma.Next is { } nextOff)
        {
            vmas = WalkMmapList(mm + (ulong)mmapOff, nextOff, cap);
        }
        else
        {
            diagnostics.ReportIncomplete("vma", "BTF describes neither mm_mt nor mmap in mm_struct", mm);
            return [];
        }

        reader.TryULong(mm + (ulong)offsets.Mm.StartBrk, out ulong startBrk);
        reader.TryULong(mm + (ulong)offsets.Mm.Brk, out ulong brk);
        reader.TryULong(mm + (ulong)offsets.Mm.StartStack, out ulong startStack);
        var result = new List<Vma>();
        var seen = new HashSet<ulong>();
        foreach (ulong vma in vmas)
        {
            if (!seen.Add(vma)) continue;
            if (!reader.Budget.TryConsume(WorkKind.Vmas)) { diagnostics.ReportIncomplete("vma", reader.Budget.Describe(WorkKind.Vmas), mm); break; }
            var v = ReadVma(vma, mm, startBrk, brk, startStack);
            if (v is not null) result.Add(v);
        }
        result.Sort((a, b) => a.Start.CompareTo(b.Start));
        if (HasVsyscallPage(mm) && special.GateVma(reader, offsets) is { } gate) result.Add(gate);
        return result;
    }

    /// <summary>/proc shows the gate area only for mms flagged MM_CONTEXT_HAS_VSYSCALL (none when vsyscall=none).</summary>
    private bool HasVsyscallPage(ulong mm) =>
        offsets.Mm.ContextFlags is { } off && reader.TryULong(mm + (ulong)off, out ulong flags) && (flags & KernelMacros.MM_CONTEXT_HAS_VSYSCALL) != 0;

    private IEnumerable<ulong> WalkMmapList(ulong head, int nextOffset, int cap)
    {
        var seen = new HashSet<ulong>();
        reader.TryPointer(head, out ulong vma);
        for (int i = 0; vma != 0; i++)
        {
            if (i >= cap) { diagnostics.ReportIncomplete("vma", $"mmap list longer than {cap}", head); yield break; }
            if (!reader.IsKernelPointer(vma) || !seen.Add(vma)) { diagnostics.ReportIncomplete("vma", "bad or repeated vm_next link", vma); yield break; }
            yield return vma;
            if (!reader.TryPointer(vma + (ulong)nextOffset, out vma)) yield break;
        }
    }

    private Vma? ReadVma(ulong vma, ulong mm, ulong startBrk, ulong brk, ulong startStack)
    {
        var o = offsets.Vma;
        if (!reader.TryULong(vma + (ulong)o.Start, out ulong start) || !reader.TryULong(vma + (ulong)o.End, out ulong end)
            || !reader.TryPointer(vma + (ulong)o.Mm, out ulong vmMm))
        {
            diagnostics.ReportIncomplete("vma", "unreadable vm_area_struct", vma);
            return null;
        }
        if (vmMm != mm) { diagnostics.ReportIncomplete("vma", $"vm_mm 0x{vmMm:x} does not point back to mm 0x{mm:x}", vma); return null; }
        if (end <= start || (start & KernelMacros.PAGE_MASK_LOW) != 0 || (end & KernelMacros.PAGE_MASK_LOW) != 0) { diagnostics.ReportIncomplete("vma", $"implausible range 0x{start:x}-0x{end:x}", vma); return null; }
        reader.TryULong(vma + (ulong)o.Flags, out ulong flags);
        reader.TryULong(vma + (ulong)o.PgOff, out ulong pgoff);
        reader.TryPointer(vma + (ulong)o.File, out ulong file);
        string path;
        ulong offset = 0, inode = 0;
        uint major = 0, minor = 0;
        if (file != 0)
        {
            path = paths.FilePath(file) ?? "?";
            offset = pgoff << KernelMacros.PAGE_SHIFT;
            (inode, major, minor) = paths.FileIdentity(file);
        }
        else if (special.Name(reader, offsets, vma) is { } name) path = name;
        else if (start <= brk && end >= startBrk) path = "[heap]";
        else if (start <= startStack && end >= startStack) path = "[stack]";
        else path = "";
        return new Vma
        {
            Address = vma, Start = start, End = end, Flags = flags, Offset = offset, File = file, Path = path,
            Inode = inode, DeviceMajor = major, DeviceMinor = minor,
        };
    }
}
