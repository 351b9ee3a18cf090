using System.Net;
using System.Net.Sockets;
using Microsoft.Data.Sqlite;
using Periscope.Integrity.Verification;
using Periscope.Journal;
using Periscope.Watch;

namespace Periscope.UnitTests.Watch;

/// <summary>The Prometheus endpoint scraped by a real HTTP client: series exist, and counters move with what watch does.</summary>
public sealed class WatchMetricsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-watch-metrics-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static double Value(string scrape, string series)
    {
        var line = scrape.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? double.NaN : double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task ScrapedCountersMoveWithFindingsSweepsAndJournalRecords()
    {
        int port = FreePort();
        using var metrics = new PrometheusWatchMetrics("127.0.0.1", port);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        string url = $"http://127.0.0.1:{port}/metrics";

        metrics.Attached("vm1", true);
        metrics.FindingRaised("vm1", Severity.Critical);
        metrics.Sweep("vm1", TimeSpan.FromMilliseconds(120), SweepOutcome.Findings);
        metrics.Events("vm1", 10, droppedTotal: 2);
        string first = await http.GetStringAsync(url);
        Assert.Equal(1, Value(first, "periscope_watch_findings_total{target=\"vm1\",severity=\"critical\"}"));
        Assert.Equal(1, Value(first, "periscope_watch_attached{target=\"vm1\"}"));
        Assert.Equal(10, Value(first, "periscope_watch_events_total{target=\"vm1\"}"));
        Assert.Equal(2, Value(first, "periscope_watch_events_dropped_total{target=\"vm1\"}"));
        Assert.Equal(1, Value(first, "periscope_watch_sweep_seconds_count{target=\"vm1\"}"));

        metrics.FindingRaised("vm1", Severity.Critical);
        metrics.FindingRaised("vm1", Severity.Warning);
        metrics.Events("vm1", 5, droppedTotal: 7);
        metrics.Attached("vm1", false);
        string second = await http.GetStringAsync(url);
        Assert.Equal(2, Value(second, "periscope_watch_findings_total{target=\"vm1\",severity=\"critical\"}"));
        Assert.Equal(1, Value(second, "periscope_watch_findings_total{target=\"vm1\",severity=\"warning\"}"));
        Assert.Equal(0, Value(second, "periscope_watch_attached{target=\"vm1\"}"));
        Assert.Equal(15, Value(second, "periscope_watch_events_total{target=\"vm1\"}"));
        Assert.Equal(7, Value(second, "periscope_watch_events_dropped_total{target=\"vm1\"}")); // a source's running total, not re-added
    }

    [Fact]
    public async Task WatchServiceReportsAttachStateAndJournalRecordsWhileRunning()
    {
        int port = FreePort();
        using var metrics = new PrometheusWatchMetrics("127.0.0.1", port);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        string db = Path.Combine(_dir, "journal.db");
        using var journal = JournalStore.Open(db, JournalOpenMode.Append);
        // A guest that is not there: watch keeps trying to attach, and says so through the metrics.
        var target = new WatchTarget("absent", Path.Combine(_dir, "no-such-ram"), Path.Combine(_dir, "no-such.sock"));
        var options = new WatchOptions { BaselineDb = Path.Combine(_dir, "baseline.db"), Poll = TimeSpan.FromMilliseconds(50), SignEvery = TimeSpan.FromMilliseconds(100) };
        var console = new StringWriter();
        var service = new WatchService([target], options, journal, key: null, metrics, TextWriter.Synchronized(console), TextWriter.Null);
        using var stop = new CancellationTokenSource();
        var run = Task.Run(() => service.Run(stop.Token));
        string scrape = "";
        for (int i = 0; i < 100 && !(Value(scrape, "periscope_watch_journal_records_total") >= 1); i++)
        {
            await Task.Delay(100);
            scrape = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        }
        Assert.Equal(1, Value(scrape, "periscope_watch_journal_records_total")); // WatchStarted
        stop.Cancel();
        await run;
        string after = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        Assert.Equal(2, Value(after, "periscope_watch_journal_records_total")); // + WatchStopped
        Assert.True(Value(after, "periscope_watch_attached{target=\"absent\"}") == 0, after);
        Assert.Equal([JournalRecordKind.WatchStarted, JournalRecordKind.WatchStopped], journal.Records().Select(r => r.Kind));
        Assert.Contains("watchstarted", console.ToString());
    }
}
