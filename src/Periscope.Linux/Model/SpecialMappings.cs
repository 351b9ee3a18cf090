using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>
/// Names that /proc/PID/maps gives to special mappings ([vdso], [vvar]) and the x86-64 gate area ([vsyscall]).
/// Special mappings use special_mapping_vmops, whose vm_private_data points at a vm_special_mapping; the offset of
/// its name member comes from BTF.
/// </summary>
public sealed class SpecialMappings(KernelSymbols symbols, ulong? specialOpsFoundByStructure = null)
{
    /// <summary>special_mapping_vmops from kallsyms, or (no data symbols) as the offset inference found it.</summary>
    private readonly ulong? _specialOps = symbols.TryGetAddress("special_mapping_vmops", out ulong a) ? a : specialOpsFoundByStructure;
    private readonly ulong? _legacyOps = symbols.TryGetAddress("legacy_special_mapping_vmops", out ulong b) ? b : null;
    private readonly ulong? _gateVma = symbols.TryGetAddress("gate_vma", out ulong g) ? g : null;
    private readonly ulong? _vsyscallMode = symbols.TryGetAddress("vsyscall_mode", out ulong m) ? m : null;

    public string? Name(GuestReader reader, KernelOffsets offsets, ulong vma)
    {
        if (!reader.TryPointer(vma + (ulong)offsets.Vma.Ops, out ulong ops) || ops == 0) return null;
        if (ops != _specialOps && ops != _legacyOps) return null;
        if (offsets.SpecialMappingName is not { } nameOffset) return null;
        if (!reader.TryPointer(vma + (ulong)offsets.Vma.PrivateData, out ulong sm) || !reader.IsKernelPointer(sm)) return null;
        if (!reader.TryPointer(sm + (ulong)nameOffset, out ulong namePtr) || !reader.IsKernelPointer(namePtr)) return null;
        return reader.ReadCString(namePtr, 64);
    }

    /// <summary>The vsyscall page: not in the process's tree, but /proc appends it from the kernel's gate_vma.</summary>
    public Vma? GateVma(GuestReader reader, KernelOffsets offsets)
    {
        if (_gateVma is not { } g) return null;
        if (_vsyscallMode is { } mode && reader.TryU32(mode, out uint m) && m == KernelMacros.VSYSCALL_NONE) return null;
        var o = offsets.Vma;
        if (!reader.TryULong(g + (ulong)o.Start, out ulong start) || !reader.TryULong(g + (ulong)o.End, out ulong end) || end <= start) return null;
        reader.TryULong(g + (ulong)o.Flags, out ulong flags);
        return new Vma { Address = g, Start = start, End = end, Flags = flags, Offset = 0, File = 0, Path = "[vsyscall]" };
    }
}
