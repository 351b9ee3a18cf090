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

    // Dump files: opening and sparseness (fuzzing / lower-layer hardening)
    /// <summary>Largest dump or RAM file accepted, in bytes (its declared length, holes included).</summary>
    public ulong MaxDumpFileBytes { get; init; } = 1UL << 40;
    /// <summary>Data extents of a sparse file tracked before the rest is treated as data.</summary>
    public int MaxFileDataExtents { get; init; } = 65_536;
    /// <summary>Largest ELF PT_NOTE segment read into memory.</summary>
    public int MaxElfNoteSegmentBytes { get; init; } = 64 << 20;
}
