using Periscope.Memory;
using Periscope.Memory.Formats;

namespace Periscope.Targets;

public sealed record TargetOptions
{
    public IntrospectionLimits Limits { get; init; } = IntrospectionLimits.Default;
    /// <summary>How a raw image (not ELF, not LiME) maps to physical addresses.</summary>
    public RawLayout RawLayout { get; init; } = RawLayout.Flat;
}
