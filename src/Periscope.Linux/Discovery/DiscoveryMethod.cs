namespace Periscope.Linux.Discovery;

/// <summary>How the kernel PGD was found, cheapest first; <see cref="KernelLocator"/> tries them in this order.</summary>
public enum DiscoveryMethod
{
    /// <summary>CR3 of a vCPU (ELF note or QMP), verified by the kernel image it reaches.</summary>
    Cr3,
    /// <summary>VMCOREINFO's SYMBOL(init_top_pgt) and NUMBER(phys_base), verified the same way.</summary>
    VmcoreInfo,
    /// <summary>The real-mode trampoline's top-level table in the first MiB (a copy of init_top_pgt's kernel half).</summary>
    LowMemorySearch,
    /// <summary>One qword of every RAM page: the old full scan, used only when everything else failed.</summary>
    FullScan,
}

/// <summary>Which methods <see cref="KernelLocator"/> may use (tests and benchmarks force one).</summary>
[Flags]
public enum DiscoveryMethods
{
    None = 0,
    Cr3 = 1 << DiscoveryMethod.Cr3,
    VmcoreInfo = 1 << DiscoveryMethod.VmcoreInfo,
    LowMemorySearch = 1 << DiscoveryMethod.LowMemorySearch,
    FullScan = 1 << DiscoveryMethod.FullScan,
    All = Cr3 | VmcoreInfo | LowMemorySearch | FullScan,
}

public static class DiscoveryMethodNames
{
    public static string Describe(this DiscoveryMethod method) => method switch
    {
        DiscoveryMethod.Cr3 => "CR3",
        DiscoveryMethod.VmcoreInfo => "VMCOREINFO",
        DiscoveryMethod.LowMemorySearch => "low-memory search",
        DiscoveryMethod.FullScan => "full RAM scan",
        _ => method.ToString(),
    };

    public static bool Allows(this DiscoveryMethods set, DiscoveryMethod method) => ((int)set & (1 << (int)method)) != 0;
}

/// <summary>What the target offers discovery besides memory, and which methods it may use.</summary>
public sealed record DiscoveryInputs
{
    public IReadOnlyList<Periscope.Memory.CpuState> Cpus { get; init; } = [];
    /// <summary>VMCOREINFO note text, if the guest published one.</summary>
    public string? VmcoreInfo { get; init; }
    public DiscoveryMethods Methods { get; init; } = DiscoveryMethods.All;
}
