using Periscope.Integrity.Regions;
using Periscope.Linux;

namespace Periscope.Watch;

/// <summary>Kernel objects `watch --protect` can arm write watchpoints on.</summary>
public enum ProtectedObjectKind
{
    /// <summary>sys_call_table: the syscall handlers' addresses.</summary>
    SyscallTable,
    /// <summary>idt_table: the 256 interrupt gates.</summary>
    InterruptTable,
    /// <summary>x64_sys_call: the code of the syscall dispatcher (a switch on Debian 6.1).</summary>
    SyscallDispatcher,
}

/// <summary>One protected object as found in the attached kernel: where it is and how long it is.</summary>
public sealed record ProtectedObject(ProtectedObjectKind Kind, string Name, ulong Start, int Length)
{
    public ulong End => Start + (ulong)Length;
    public bool Contains(ulong va) => va >= Start && va < End;

    /// <summary>
    /// Names a changed address as the periodic sweep's findings name it (Verifier: `sys_call_table[N]`, `IDT vector
    /// 0xNN`; code by symbol+offset), so a watchpoint record and the sweep's finding of the same change share their
    /// location.
    /// </summary>
    public string Location(ulong va) => Kind switch
    {
        ProtectedObjectKind.SyscallTable => $"sys_call_table[{(va - Start) / 8}]",
        ProtectedObjectKind.InterruptTable => $"IDT vector 0x{(va - Start) / 16:x2}",
        _ => $"{Name}+0x{va - Start:x}",
    };

    /// <summary>Start of the table entry (or, for code, the byte) holding <paramref name="va"/>.</summary>
    public ulong EntryStart(ulong va) => Kind switch
    {
        ProtectedObjectKind.SyscallTable => Start + (va - Start) / 8 * 8,
        ProtectedObjectKind.InterruptTable => Start + (va - Start) / 16 * 16,
        _ => va,
    };

    public int EntrySize => Kind switch { ProtectedObjectKind.SyscallTable => 8, ProtectedObjectKind.InterruptTable => 16, _ => 1 };
}

public static class ProtectedObjects
{
    /// <summary>The names `--protect` takes, and their kinds.</summary>
    public static readonly IReadOnlyDictionary<string, ProtectedObjectKind> Names = new Dictionary<string, ProtectedObjectKind>(StringComparer.Ordinal)
    {
        ["syscall-table"] = ProtectedObjectKind.SyscallTable,
        ["idt"] = ProtectedObjectKind.InterruptTable,
        ["dispatcher"] = ProtectedObjectKind.SyscallDispatcher,
    };

    /// <summary>Parses `syscall-table,idt,dispatcher`; an unknown name is an <see cref="ArgumentException"/> listing the known ones.</summary>
    public static IReadOnlyList<ProtectedObjectKind> ParseList(string text)
    {
        var kinds = new List<ProtectedObjectKind>();
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Names.TryGetValue(item, out var kind))
                throw new ArgumentException($"--protect: unknown object '{item}' (known: {string.Join(", ", Names.Keys)})");
            if (!kinds.Contains(kind)) kinds.Add(kind);
        }
        if (kinds.Count == 0) throw new ArgumentException($"--protect: no objects named (known: {string.Join(", ", Names.Keys)})");
        return kinds;
    }

    private static RegionKind RegionOf(ProtectedObjectKind kind) => kind switch
    {
        ProtectedObjectKind.SyscallTable => RegionKind.SyscallTable,
        ProtectedObjectKind.InterruptTable => RegionKind.InterruptTable,
        _ => RegionKind.SyscallDispatcher,
    };

    /// <summary>
    /// Finds the objects in the attached kernel through the integrity layer's region catalog (the same ranges a
    /// baseline measures, sizes already capped there), each capped again at <see cref="Periscope.Memory.IntrospectionLimits.MaxProtectedObjectBytes"/>
    /// because watch keeps a copy of it. An object the kernel does not have (no x64_sys_call before 6.1.63ish, say)
    /// is reported in <paramref name="missing"/>, not an error.
    /// </summary>
    public static IReadOnlyList<ProtectedObject> Resolve(LinuxKernel kernel, IReadOnlyList<ProtectedObjectKind> kinds, List<string> missing)
    {
        var regions = RegionCatalog.Catalog(kernel).Regions;
        var found = new List<ProtectedObject>();
        foreach (var kind in kinds)
        {
            var region = regions.FirstOrDefault(r => r.Kind == RegionOf(kind));
            if (region is null) { missing.Add($"{kind}: not found in this kernel's symbols"); continue; }
            if (region.Length > (ulong)kernel.Limits.MaxProtectedObjectBytes)
            {
                missing.Add($"{region.Name}: {region.Length} bytes, more than IntrospectionLimits.MaxProtectedObjectBytes ({kernel.Limits.MaxProtectedObjectBytes})");
                continue;
            }
            found.Add(new ProtectedObject(kind, region.Name, region.Start, (int)region.Length));
        }
        return found;
    }
}
