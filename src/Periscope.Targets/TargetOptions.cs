using Periscope.Memory;
using Periscope.Memory.Formats;

namespace Periscope.Targets;

public sealed record TargetOptions
{
    public IntrospectionLimits Limits { get; init; } = IntrospectionLimits.Default;
    /// <summary>How a raw image (not ELF, not LiME) maps to physical addresses.</summary>
    public RawLayout RawLayout { get; init; } = RawLayout.Flat;
    /// <summary>Ignore the kernel's BTF and infer offsets from the data (what a kernel without BTF gets anyway).</summary>
    public bool NoBtf { get; init; }
    /// <summary>See only kallsyms' text symbols from the offsets on (a kernel without CONFIG_KALLSYMS_ALL).</summary>
    public bool NoDataSymbols { get; init; }
    /// <summary>Where inferred offsets are cached per kernel build; null: infer on every attach.</summary>
    public Periscope.Linux.Inference.OffsetsCache? OffsetsCache { get; init; }
}
