using Periscope.Linux.Btf;

namespace Periscope.Linux.Tasks.Views;

/// <summary>
/// Checked member lookups for the cross-views (psxview, lsof, sockets): a member that BTF lacks is null (the view is
/// then unavailable, with the reason), and one whose offset and size do not fit inside its struct is corrupt type data
/// (also null, never a read at a wild offset).
/// </summary>
public sealed class BtfMembers(BtfTypes btf)
{
    public BtfTypes Btf { get; } = btf;
    private readonly List<string> _missing = [];

    /// <summary>"struct.member" names that were asked for and not found (or did not fit), for the "unavailable" line.</summary>
    public IReadOnlyList<string> Missing => _missing;

    public StructLayout? Struct(string name)
    {
        var s = Btf.FindStruct(name);
        if (s is null) _missing.Add($"struct {name}");
        return s;
    }

    /// <summary>Byte offset of <paramref name="path"/> in struct <paramref name="structName"/>, checked to lie with its
    /// whole type inside the struct; null when absent or out of bounds.</summary>
    public int? Offset(string structName, string path) => Btf.FindStruct(structName) is { } s ? Offset(s, path) : Miss($"struct {structName}");

    public int? Offset(StructLayout s, string path)
    {
        if (!s.HasMember(path)) return Miss($"{s.Name}.{path}");
        var m = s.GetMember(path);
        long offset = m.ByteOffset;
        long size = m.BitfieldSize != 0 ? (m.BitfieldSize + 7) / 8 : Btf.SizeOf(m.TypeId);
        if (offset < 0 || size < 0 || offset > s.Size || size > s.Size - offset) return Miss($"{s.Name}.{path} (does not fit its struct)");
        return (int)offset;
    }

    /// <summary>Size in bytes of member <paramref name="path"/>; null when absent.</summary>
    public int? Size(string structName, string path)
    {
        if (Btf.FindStruct(structName) is not { } s || Offset(s, path) is null) return null;
        long size = Btf.SizeOf(s.GetMember(path).TypeId);
        return size is >= 0 and <= int.MaxValue ? (int)size : Miss($"{structName}.{path} (size)");
    }

    public int? StructSize(string name) => Btf.FindStruct(name)?.Size ?? Miss($"struct {name}");

    /// <summary>Value of an enumerator found by name in any enum; null when absent or wider than 32 bits.</summary>
    public int? Enumerator(string name) =>
        Btf.TryFindEnumerator(name, out long v) && v is >= int.MinValue and <= int.MaxValue ? (int)v : Miss($"enumerator {name}");

    private int? Miss(string what)
    {
        _missing.Add(what);
        return null;
    }
}
