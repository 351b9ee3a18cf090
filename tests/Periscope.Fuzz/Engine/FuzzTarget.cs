namespace Periscope.Fuzz.Engine;

/// <summary>What one input did. Anything else — an exception the target does not declare, a hang, an allocation past
/// the per-input limit, a dead process — is a finding.</summary>
public enum Verdict
{
    /// <summary>The input was read (possibly with diagnostics).</summary>
    Accepted,
    /// <summary>The input was refused with the documented one-line error type.</summary>
    Rejected,
}

/// <summary>A named seed: a valid (or deliberately edge-case) input that mutations start from.</summary>
public sealed record Seed(string Name, byte[] Data);

/// <summary>
/// One parser or walker under fuzz. Seeds are built by code (no binaries in git); <see cref="Run"/> feeds one input and
/// returns how it was handled, letting any undeclared exception escape.
/// </summary>
public abstract class FuzzTarget : IDisposable
{
    public abstract string Name { get; }
    public abstract string Description { get; }

    /// <summary>Null when the target can run here; otherwise why not (e.g. no guest dump was made).</summary>
    public virtual string? Unavailable => null;

    /// <summary>Targets whose code another branch is rewriting: fuzzed in campaigns, left out of the CI smoke run.</summary>
    public virtual string? SmokeExclusion => null;

    /// <summary>Inputs per smoke run (deterministic seed). Chosen so the smoke campaign stays within 1–2 minutes.</summary>
    public abstract int SmokeIterations { get; }

    public abstract IReadOnlyList<Seed> Seeds();

    /// <summary>Where mutations should land (offset, length) in inputs derived from <paramref name="seed"/>: structured
    /// regions (headers, tables, kernel objects). Null: anywhere.</summary>
    public virtual IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => null;

    /// <summary>Extra interesting 8-byte values (addresses of real objects, sizes) for the mutator's dictionary.</summary>
    public virtual IReadOnlyList<ulong> Dictionary => [];

    public abstract Verdict Run(byte[] input);

    /// <summary>Called once before the first input (opening a dump, say), outside the per-input limits.</summary>
    public virtual void Prepare() { }

    /// <summary>Removes scratch files; also runs on the watchdog's exit.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);
}
