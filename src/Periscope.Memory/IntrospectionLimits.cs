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

    // Trusted-state database (baseline store) and process code (sweep, import-files)
    /// <summary>Largest baseline database file opened (quick_check reads all of it).</summary>
    public long MaxBaselineDatabaseBytes { get; init; } = 8L << 30;
    /// <summary>Longest single text or blob read from a baseline database (also SQLite's length limit on that connection).</summary>
    public int MaxBaselineValueBytes { get; init; } = 1 << 20;
    /// <summary>SQLite virtual-machine instructions one store connection may execute in all, so no query on a hostile file runs unbounded.</summary>
    public long MaxBaselineQuerySteps { get; init; } = 4_000_000_000;
    /// <summary>Most page rows loaded from one baseline (16 GiB of measured memory).</summary>
    public int MaxBaselinePages { get; init; } = 4_194_304;
    /// <summary>Largest executable VMA the process-code sweep measures; a larger one is measured up to this size and the sweep marked incomplete.</summary>
    public ulong MaxProcessCodeVmaBytes { get; init; } = 1UL << 30;
    /// <summary>Most page-table leaves the process-code sweep visits in one pass, over all processes.</summary>
    public long MaxProcessCodePagesPerPass { get; init; } = 4_194_304;
    /// <summary>Largest file `baseline import-files` reads.</summary>
    public long MaxImportFileBytes { get; init; } = 512L << 20;
}
