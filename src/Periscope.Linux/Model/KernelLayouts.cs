using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// Struct member offsets by the kernel's own names ("pid", "numbers"), from BTF when the kernel has it, else from the
/// offsets inferred from the data (<see cref="OffsetTable"/>: the same names, so code that asks by name runs on either).
/// A member neither source knows is absent: callers say what they could not do, never guess.
/// </summary>
public sealed class KernelLayouts
{
    private readonly BtfTypes? _btf;
    private readonly Dictionary<(string Struct, string Member), int> _inferred = [];
    private readonly HashSet<string> _inferredStructs = [];

    public KernelLayouts(BtfTypes? btf, KernelOffsets offsets)
    {
        _btf = btf;
        if (btf is not null) return;
        foreach (var e in OffsetTable.Of(offsets))
        {
            _inferred[(e.Struct, e.Member)] = e.Offset;
            _inferredStructs.Add(e.Struct);
        }
    }

    /// <summary>True when the offsets come from BTF (every struct the kernel defines is known).</summary>
    public bool FromBtf => _btf is not null;

    public bool HasStruct(string name) => _btf is not null ? _btf.FindStruct(name) is not null : _inferredStructs.Contains(name);

    public bool HasMember(string structName, string path) => TryOffset(structName, path, out _);

    /// <summary>The member's byte offset in its struct (a dotted path for nested members, as in BTF).</summary>
    public bool TryOffset(string structName, string path, out int offset)
    {
        offset = 0;
        if (_btf is null) return _inferred.TryGetValue((structName, path), out offset);
        if (_btf.FindStruct(structName) is not { } s || !s.HasMember(path)) return false;
        long value = s.Offset(path);
        // A flexible array member (pid.numbers[]) starts where its struct ends.
        if (value < 0 || value > s.Size) return false;
        offset = (int)value;
        return true;
    }

    /// <exception cref="KernelModelException">Neither BTF nor inference knows the member.</exception>
    public int Offset(string structName, string path) =>
        TryOffset(structName, path, out int offset) ? offset
        : throw new KernelModelException(_btf is null ? $"{structName}.{path} was not inferred (no BTF)" : $"BTF has no member {structName}.{path}");
}
