using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// Struct member offsets by the kernel's own names ("pid", "numbers"), from BTF when the kernel has it, else from the
/// offsets inferred from the data (<see cref="OffsetTable"/>: the same names, so code that asks by name runs on either),
/// and last from the kernel's VMCOREINFO (OFFSET(struct.member) lines the kernel publishes for crash tools; an inferred
/// offset wins over it). A member no source knows is absent: callers say what they could not do, never guess.
/// </summary>
public sealed class KernelLayouts
{
    private readonly BtfTypes? _btf;
    private readonly KernelVmcoreInfo? _vmcoreInfo;
    private readonly Dictionary<(string Struct, string Member), int> _inferred = [];
    private readonly HashSet<string> _inferredStructs = [];

    public KernelLayouts(BtfTypes? btf, KernelOffsets offsets, KernelVmcoreInfo? vmcoreInfo = null) : this(btf, vmcoreInfo)
    {
        if (btf is not null) return;
        foreach (var e in OffsetTable.Of(offsets))
        {
            _inferred[(e.Struct, e.Member)] = e.Offset;
            _inferredStructs.Add(e.Struct);
        }
    }

    /// <summary>Layouts from BTF alone.</summary>
    public KernelLayouts(BtfTypes btf) : this(btf, vmcoreInfo: null) { }

    private KernelLayouts(BtfTypes? btf, KernelVmcoreInfo? vmcoreInfo)
    {
        _btf = btf;
        _vmcoreInfo = vmcoreInfo;
    }

    /// <summary>True when the offsets come from BTF (every struct the kernel defines is known).</summary>
    public bool FromBtf => _btf is not null;

    public bool HasStruct(string name) =>
        _btf is not null ? _btf.FindStruct(name) is not null : _inferredStructs.Contains(name) || _vmcoreInfo?.DescribesStruct(name) == true;

    public bool HasMember(string structName, string path) => TryOffset(structName, path, out _);

    /// <summary>The member's byte offset in its struct (a dotted path for nested members, as in BTF).</summary>
    public bool TryOffset(string structName, string path, out int offset)
    {
        offset = 0;
        if (_btf is null) return _inferred.TryGetValue((structName, path), out offset) || _vmcoreInfo?.TryGetOffset(structName, path, out offset) == true;
        // A flexible array member (pid.numbers[]) starts where its struct ends.
        if (_btf.FindStruct(structName)?.OffsetInside(path) is not { } value) return false;
        offset = value;
        return true;
    }

    /// <summary>sizeof(struct <paramref name="structName"/>): from BTF, else inferred (the <see cref="InferenceReport.SizeOfMember"/>
    /// entry of the struct), else VMCOREINFO's SIZE line.</summary>
    public bool TryStructSize(string structName, out int size)
    {
        size = 0;
        if (_btf is null)
            return _inferred.TryGetValue((structName, InferenceReport.SizeOfMember), out size) || _vmcoreInfo?.TryGetSize(structName, out size) == true;
        if (_btf.FindStruct(structName) is not { } s) return false;
        size = s.Size;
        return true;
    }

    /// <summary>The kernel's BTF when offsets come from it (for what only types can say: member sizes, enumerators).</summary>
    public BtfTypes? Btf => _btf;

    /// <exception cref="KernelModelException">Neither BTF nor inference knows the member.</exception>
    public int Offset(string structName, string path) =>
        TryOffset(structName, path, out int offset) ? offset
        : throw new KernelModelException(_btf is null ? $"{structName}.{path} was not inferred (no BTF)" : $"BTF has no member {structName}.{path}");
}
