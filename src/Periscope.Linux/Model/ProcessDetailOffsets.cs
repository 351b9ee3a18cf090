using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// What `ps --full` reads beyond the task list: mm_struct's argument and environment bounds, the credential ids and
/// capability sets /proc/PID/status prints. From BTF, or inferred without it (<see cref="OffsetInference"/>: declaration
/// orders next to members the search already settled, each checked against the data). Null when not known.
/// </summary>
public sealed record ProcessDetailOffsets : MemberOffsetGroup
{
    /// <summary>The members by the kernel's struct and member names, in this order.</summary>
    public static readonly (string Struct, string Member)[] Members =
    [
        ("mm_struct", "arg_start"), ("mm_struct", "arg_end"), ("mm_struct", "env_start"), ("mm_struct", "env_end"),
        ("cred", "suid"), ("cred", "sgid"), ("cred", "egid"), ("cred", "fsuid"), ("cred", "fsgid"),
        ("cred", "cap_inheritable"), ("cred", "cap_permitted"), ("cred", "cap_effective"), ("cred", "cap_bset"), ("cred", "cap_ambient"),
    ];

    protected override IReadOnlyList<(string Struct, string Member)> MemberNames => Members;

    public static ProcessDetailOffsets FromBtf(BtfTypes btf) =>
        new() { Offsets = Collect(Members, (s, m) => btf.FindStruct(s)?.OffsetInside(m)) };

    public static ProcessDetailOffsets FromReport(InferenceReport report, int window) =>
        new() { Offsets = Collect(Members, (s, m) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < window ? v : null) };
}
