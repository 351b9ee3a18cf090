using System.Diagnostics;

namespace Periscope.Linux.Discovery;

/// <summary>What was found, how it was found, what went wrong and how long each stage took. Shown by `periscope info`.</summary>
public sealed class DiscoveryLog
{
    private readonly List<DiscoveryFact> _facts = [];
    private readonly List<string> _warnings = [];
    private readonly List<(string Stage, double Milliseconds)> _timings = [];

    public IReadOnlyList<DiscoveryFact> Facts => _facts;
    public IReadOnlyList<string> Warnings => _warnings;
    public IReadOnlyList<(string Stage, double Milliseconds)> Timings => _timings;

    public void Fact(string name, string value, string how) { lock (_facts) _facts.Add(new DiscoveryFact(name, value, how)); }
    public void Warn(string message) { lock (_warnings) _warnings.Add(message); }

    /// <summary>Times a stage in a using block (for work that touches spans and cannot sit in a lambda).</summary>
    public StageTimer Stage(string stage) => new(this, stage, Stopwatch.GetTimestamp());

    public readonly struct StageTimer(DiscoveryLog log, string stage, long start) : IDisposable
    {
        public void Dispose() { lock (log._timings) log._timings.Add((stage, Stopwatch.GetElapsedTime(start).TotalMilliseconds)); }
    }

    public T Time<T>(string stage, Func<T> work)
    {
        long start = Stopwatch.GetTimestamp();
        try { return work(); }
        finally { lock (_timings) _timings.Add((stage, Stopwatch.GetElapsedTime(start).TotalMilliseconds)); }
    }
}

public sealed record DiscoveryFact(string Name, string Value, string How);
