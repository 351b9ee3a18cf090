namespace Periscope.Linux.Model;

/// <summary>
/// An offset group that is a plain list of members by the kernel's struct and member names (<see cref="MemberNames"/>),
/// read from BTF or from an inference report through one lookup, and listed under the same names for
/// <see cref="Inference.OffsetTable"/>. Members this kernel lacks, or that were not inferred, are absent.
/// </summary>
public abstract record MemberOffsetGroup
{
    /// <summary>The group's members, in the order <see cref="List"/> gives them.</summary>
    protected abstract IReadOnlyList<(string Struct, string Member)> MemberNames { get; }

    /// <summary>(struct, member) → offset, for the members this kernel has and that are known.</summary>
    public IReadOnlyDictionary<(string Struct, string Member), int> Offsets { get; init; } = new Dictionary<(string, string), int>();

    /// <summary>The offsets <paramref name="offsetOf"/> knows among <paramref name="members"/>.</summary>
    protected static Dictionary<(string Struct, string Member), int> Collect(IEnumerable<(string Struct, string Member)> members, Func<string, string, int?> offsetOf)
    {
        var result = new Dictionary<(string, string), int>();
        foreach (var (s, m) in members)
            if (offsetOf(s, m) is { } v)
                result[(s, m)] = v;
        return result;
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="Inference.OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        foreach (var (s, m) in MemberNames) add(s, m, Offsets.TryGetValue((s, m), out int v) ? v : null);
    }
}
