using Periscope.Linux.Discovery;
using Periscope.Linux.Inference;

namespace Periscope.Linux;

/// <summary>How <see cref="LinuxKernel.Open"/> finds the kernel and gets its offsets.</summary>
public sealed record KernelOpenOptions
{
    public static KernelOpenOptions Default { get; } = new();
    /// <summary>Ways discovery may use to find the kernel PGD, cheapest first (all by default; tests and benchmarks narrow them).</summary>
    public DiscoveryMethods Discovery { get; init; } = DiscoveryMethods.All;
    /// <summary>Ignore the kernel's BTF and infer the offsets from the data (as for a kernel built without BTF).</summary>
    public bool NoBtf { get; init; }
    /// <summary>
    /// From the offsets on, see only kallsyms' text symbols (t, T, w, W), as on a kernel built without
    /// CONFIG_KALLSYMS_ALL: init_task and init_cred are then found by their own structure, and what needs a data symbol
    /// (the module list head, special_mapping_vmops for [vdso] names) is reported unavailable.
    /// </summary>
    public bool NoDataSymbols { get; init; }
    /// <summary>Where inferred offsets are kept per kernel build, so the next attach skips the search; null: no cache.</summary>
    public OffsetsCache? Cache { get; init; }
}
