using Periscope.Journal;

namespace Periscope.Watch;

/// <summary>
/// Runs one <see cref="GuestWatcher"/> per target (each on its own thread: a slow or vanished guest does not hold up the
/// others), one journal for all, and signs the chain head every <see cref="WatchOptions.SignEvery"/> and at the stop.
/// </summary>
public sealed class WatchService(IReadOnlyList<WatchTarget> targets, WatchOptions options, JournalStore journal, JournalSigningKey? key,
    IWatchMetrics metrics, TextWriter console, TextWriter log)
{
    private readonly WatchRecorder _recorder = new(journal, console, metrics);

    public WatchRecorder Recorder => _recorder;

    /// <summary>Watches until <paramref name="stop"/> is cancelled; then records the stop and signs the final head.</summary>
    public void Run(CancellationToken stop)
    {
        _recorder.Record("watch", JournalRecordKind.WatchStarted,
            $"watching {targets.Count} guest(s) every {options.Every.TotalSeconds:0.###} s against {options.BaselineDb}{(key is null ? " (no --key: heads are not signed)" : "")}",
            w =>
            {
                w.WriteStartArray("targets");
                foreach (var t in targets) w.WriteStringValue(t.Name);
                w.WriteEndArray();
            });
        using var inner = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var watchers = targets.Select(t => new GuestWatcher(t, options, _recorder, metrics, log)).ToList();
        var threads = watchers.Select(w => new Thread(() => RunWatcher(w, inner)) { IsBackground = true, Name = $"watch {w.Spec.Name}" }).ToList();
        foreach (var t in threads) t.Start();
        while (!inner.Token.WaitHandle.WaitOne(options.SignEvery)) Sign();
        foreach (var t in threads) t.Join();
        foreach (var w in watchers) w.Dispose();
        if (Failed is not null) return; // the journal is what failed: nothing more can be recorded in it
        _recorder.Record("watch", JournalRecordKind.WatchStopped, "stopped");
        Sign();
    }

    private void RunWatcher(GuestWatcher watcher, CancellationTokenSource stop)
    {
        try { watcher.Run(stop.Token); }
        catch (Exception e) when (e is JournalFormatException or Microsoft.Data.Sqlite.SqliteException)
        {
            // The journal cannot take records: nothing watch sees would be kept. Say so loudly; the service stops.
            log.WriteLine($"periscope watch: journal failure: {e.Message}");
            Failed = e;
            stop.Cancel();
        }
    }

    /// <summary>Set when a watcher hit an error that makes continuing pointless (journal unwritable).</summary>
    public Exception? Failed { get; private set; }

    private void Sign()
    {
        if (key is null) return;
        if (journal.SignHead(key) is { } head) log.WriteLine($"periscope watch: signed head at record {head.Sequence}");
    }
}
