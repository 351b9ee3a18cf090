using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// Checked member lookups for one view (psxview, lsof, sockets, ...), by the kernel's names, from BTF or — without BTF —
/// from the offsets inferred from the data (<see cref="KernelLayouts"/>). A member no source knows is null and is
/// recorded in <see cref="Missing"/> (the view is then unavailable, with the reason); with BTF, a member whose offset and
/// size do not fit inside its struct is corrupt type data (also null, never a read at a wild offset).
/// </summary>
public sealed class MemberOffsets(KernelLayouts layouts)
{
    private readonly List<string> _missing = [];

    /// <summary>Lookups in BTF alone (code that only runs with the kernel's types).</summary>
    public MemberOffsets(BtfTypes btf) : this(new KernelLayouts(btf)) { }

    /// <summary>The kernel's BTF when the offsets come from it; null when they were inferred.</summary>
    public BtfTypes? Btf => layouts.Btf;

    /// <summary>"struct.member" names that were asked for and not found (or did not fit), for the "unavailable" line.</summary>
    public IReadOnlyList<string> Missing => _missing;

    /// <summary>True when the struct has the member (nothing is recorded as missing when it does not: for members that
    /// only some kernel versions have).</summary>
    public bool Has(string structName, string path) => layouts.HasMember(structName, path);

    /// <summary>The member's offset when the struct has it, else null without recording it as missing.</summary>
    public int? Optional(string structName, string path) => Has(structName, path) ? Offset(structName, path) : null;

    /// <summary>Byte offset of <paramref name="path"/> in struct <paramref name="structName"/>; null when no source knows it
    /// (or, in BTF, when it does not lie with its whole type inside the struct).</summary>
    public int? Offset(string structName, string path)
    {
        if (Btf is not { } btf) return layouts.TryOffset(structName, path, out int inferred) ? inferred : Miss($"{structName}.{path}");
        if (btf.FindStruct(structName) is not { } s) return Miss($"struct {structName}");
        if (!s.HasMember(path)) return Miss($"{s.Name}.{path}");
        var m = s.GetMember(path);
        long offset = m.ByteOffset;
        long size = m.BitfieldSize != 0 ? (m.BitfieldSize + 7) / 8 : btf.SizeOf(m.TypeId);
        if (offset < 0 || size < 0 || offset > s.Size || size > s.Size - offset) return Miss($"{s.Name}.{path} (does not fit its struct)");
        return (int)offset;
    }

    /// <summary>Size in bytes of member <paramref name="path"/> (BTF only: inference learns offsets, not member types).</summary>
    public int? Size(string structName, string path)
    {
        if (Btf is not { } btf) return Miss($"{structName}.{path} (size)");
        if (btf.FindStruct(structName) is not { } s || Offset(structName, path) is null) return null;
        long size = btf.SizeOf(s.GetMember(path).TypeId);
        return size is >= 0 and <= int.MaxValue ? (int)size : Miss($"{structName}.{path} (size)");
    }

    public int? StructSize(string name) => layouts.TryStructSize(name, out int size) ? size : Miss($"struct {name}");

    /// <summary>Value of an enumerator found by name in any enum (BTF only); null when absent or wider than 32 bits.</summary>
    public int? Enumerator(string name) =>
        Btf is { } btf && btf.TryFindEnumerator(name, out long v) && v is >= int.MinValue and <= int.MaxValue ? (int)v : Miss($"enumerator {name}");

    /// <summary>The "unavailable" reason for a view whose members <paramref name="b"/> could not all find.</summary>
    public static string Lacks(MemberOffsets b) =>
        (b.Btf is null ? "not inferred (no BTF): " : "BTF lacks ") + string.Join(", ", b.Missing.Distinct());

    private int? Miss(string what)
    {
        _missing.Add(what);
        return null;
    }
}
