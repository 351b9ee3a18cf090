namespace Periscope.Memory;

/// <summary>
/// Caps for every count, size and walk length that comes from untrusted input (a dump file or guest memory).
/// One object flows through all layers so an operator can tighten or relax them in one place.
/// Messages that hit a cap state the number found and the limit.
/// </summary>
public sealed record IntrospectionLimits
{
    public static IntrospectionLimits Default { get; } = new();

    // Dump files
    public int MaxElfProgramHeaders { get; init; } = 65_536;
    public int MaxElfNotes { get; init; } = 4_096;
    public int MaxLimeRanges { get; init; } = 65_536;

    // Kernel discovery
    public int MaxKallsymsSymbols { get; init; } = 1_000_000;
    public int MaxBtfTypes { get; init; } = 1_000_000;
    public int MaxBtfBytes { get; init; } = 64 << 20;
    public int MaxBtfMembers { get; init; } = 65_535;
    public int MaxTypeChainDepth { get; init; } = 32;

    // Kernel model walks
    public int MaxTasks { get; init; } = 65_536;
    public int MaxThreadsPerProcess { get; init; } = 65_536;
    public int MaxModules { get; init; } = 4_096;
    public int MaxVmasPerProcess { get; init; } = 262_144;
    public int MaxMapleTreeDepth { get; init; } = 16;
    public int MaxPathComponents { get; init; } = 256;
    public int MaxStringLength { get; init; } = 4_096;

    // Integrity evidence and regions (judge): what baseline create and verify will read from one guest
    /// <summary>Largest kernel region (text, rodata) measured; Debian's 6.x text is ~16 MiB.</summary>
    public ulong MaxKernelRegionBytes { get; init; } = 128UL << 20;
    /// <summary>Largest module region measured; the biggest Debian modules have a few MiB of text.</summary>
    public ulong MaxModuleRegionBytes { get; init; } = 32UL << 20;
    /// <summary>Entries read from one allow-list table (jump labels, static-call sites, ftrace records) in total.</summary>
    public int MaxEvidenceEntries { get; init; } = 1 << 20;
    /// <summary>ftrace_pages blocks and ftrace_ops list nodes walked.</summary>
    public int MaxFtraceNodes { get; init; } = 65_536;
    /// <summary>Symbols read from one module's own symbol table (mod_kallsyms).</summary>
    public int MaxModuleSymbols { get; init; } = 200_000;
    /// <summary>vmalloc areas walked when scanning the module area for hidden modules.</summary>
    public int MaxVmapAreas { get; init; } = 1 << 20;
    /// <summary>Bytes of one unowned module-area allocation searched for a struct module.</summary>
    public int MaxHiddenModuleScanBytes { get; init; } = 4 << 20;
    /// <summary>Bytes of unowned module-area allocations searched in total (hostile vmap lists can be long).</summary>
    public long MaxHiddenModuleScanTotalBytes { get; init; } = 256L << 20;
    /// <summary>Decompressed size of one baseline's stored evidence (a Debian 6.1 guest needs ~4 MiB).</summary>
    public int MaxEvidenceBytes { get; init; } = 64 << 20;
}
