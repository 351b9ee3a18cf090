using Periscope.Integrity.Verification;
using Prometheus;

namespace Periscope.Watch;

public enum SweepOutcome { Clean, Findings, Incomplete, Failed }

/// <summary>What watch reports to a metrics backend. Small on purpose: the loop does not know Prometheus.</summary>
public interface IWatchMetrics
{
    void Attached(string target, bool attached);
    void FindingRaised(string target, Severity severity);
    void Sweep(string target, TimeSpan duration, SweepOutcome outcome);
    void Events(string target, int count, long droppedTotal);
    void JournalRecords(int count);
}

public sealed class NoMetrics : IWatchMetrics
{
    public static readonly NoMetrics Instance = new();
    public void Attached(string target, bool attached) { }
    public void FindingRaised(string target, Severity severity) { }
    public void Sweep(string target, TimeSpan duration, SweepOutcome outcome) { }
    public void Events(string target, int count, long droppedTotal) { }
    public void JournalRecords(int count) { }
}

/// <summary>
/// The metrics as a Prometheus endpoint (prometheus-net's stand-alone MetricServer on HttpListener), on a private
/// registry so only watch's own series are exported. Bind to 127.0.0.1 (or a host name); /metrics serves the text format.
/// </summary>
public sealed class PrometheusWatchMetrics : IWatchMetrics, IDisposable
{
    private readonly MetricServer _server;
    private readonly Counter _findings, _sweeps, _events, _dropped, _journal;
    private readonly Histogram _sweepSeconds;
    private readonly Gauge _attached;
    private readonly Dictionary<string, long> _droppedSeen = new(StringComparer.Ordinal);

    public PrometheusWatchMetrics(string host, int port)
    {
        var registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(registry);
        _findings = factory.CreateCounter("periscope_watch_findings_total", "Findings raised (each once, when first confirmed)", "target", "severity");
        _sweeps = factory.CreateCounter("periscope_watch_sweeps_total", "Verification sweeps by outcome", "target", "outcome");
        _sweepSeconds = factory.CreateHistogram("periscope_watch_sweep_seconds", "Duration of one verification sweep", new HistogramConfiguration
        {
            LabelNames = ["target"], Buckets = Histogram.ExponentialBuckets(0.01, 2, 12),
        });
        _events = factory.CreateCounter("periscope_watch_events_total", "Guest events journaled (live event source)", "target");
        _dropped = factory.CreateCounter("periscope_watch_events_dropped_total", "Guest events the event source lost", "target");
        _journal = factory.CreateCounter("periscope_watch_journal_records_total", "Records committed to the journal");
        _attached = factory.CreateGauge("periscope_watch_attached", "1 while watch is attached to the guest", "target");
        _server = new MetricServer(host, port, "metrics/", registry);
        _server.Start();
    }

    public void Attached(string target, bool attached) => _attached.WithLabels(target).Set(attached ? 1 : 0);
    public void FindingRaised(string target, Severity severity) => _findings.WithLabels(target, severity.ToString().ToLowerInvariant()).Inc();
    public void Sweep(string target, TimeSpan duration, SweepOutcome outcome)
    {
        _sweeps.WithLabels(target, outcome.ToString().ToLowerInvariant()).Inc();
        _sweepSeconds.WithLabels(target).Observe(duration.TotalSeconds);
    }

    public void Events(string target, int count, long droppedTotal)
    {
        _events.WithLabels(target).Inc(count);
        lock (_droppedSeen)
        {
            _droppedSeen.TryGetValue(target, out long seen);
            if (droppedTotal > seen) _dropped.WithLabels(target).Inc(droppedTotal - seen);
            _droppedSeen[target] = Math.Max(seen, droppedTotal);
        }
    }

    public void JournalRecords(int count) => _journal.Inc(count);

    public void Dispose() => _server.Dispose();
}
