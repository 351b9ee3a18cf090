namespace Periscope.Linux.Inference;

/// <summary>How <see cref="LinuxKernel.Open"/> gets its offsets.</summary>
public sealed record KernelOpenOptions
{
    public static KernelOpenOptions Default { get; } = new();
    /// <summary>Ignore the kernel's BTF and infer the offsets from the data (as for a kernel built without BTF).</summary>
    public bool NoBtf { get; init; }
    /// <summary>Where inferred offsets are kept per kernel build, so the next attach skips the search; null: no cache.</summary>
    public OffsetsCache? Cache { get; init; }
}
