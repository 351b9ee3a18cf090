using System.Text.Json;
using Periscope.Journal;

namespace Periscope.Watch;

/// <summary>
/// Where everything watch sees goes: first the journal (committed, fsynced), then one line on the console, so that a
/// line an operator saw is always in the journal. Shared by every target's loop; journal appends are serialized.
/// </summary>
public sealed class WatchRecorder(JournalStore journal, TextWriter console, IWatchMetrics metrics)
{
    private readonly object _consoleLock = new();

    public JournalStore Journal => journal;

    public JournalRecord Record(string target, JournalRecordKind kind, string line, Action<Utf8JsonWriter>? fields = null)
    {
        var record = journal.Append(kind, Payload(target, line, fields));
        metrics.JournalRecords(1);
        Console(target, kind, line);
        return record;
    }

    /// <summary>Many records in one commit (guest events); printed as one summary line.</summary>
    public void RecordBatch(IReadOnlyList<(JournalRecordKind Kind, byte[] Payload)> items)
    {
        if (items.Count == 0) return;
        journal.AppendBatch(items);
        metrics.JournalRecords(items.Count);
    }

    public void Console(string target, JournalRecordKind kind, string line)
    {
        lock (_consoleLock)
        {
            console.WriteLine($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} [{target}] {KindLabel(kind)} {line}");
            console.Flush();
        }
    }

    private static string KindLabel(JournalRecordKind kind) => kind switch
    {
        JournalRecordKind.Finding => "FINDING",
        JournalRecordKind.ProtectedWrite => "WRITE",
        JournalRecordKind.GuestPanicked => "PANIC",
        JournalRecordKind.GuestRebooted => "REBOOT",
        _ => kind.ToString().ToLowerInvariant(),
    };

    public static byte[] Payload(string target, string line, Action<Utf8JsonWriter>? fields)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("target", target);
            w.WriteString("message", line);
            fields?.Invoke(w);
            w.WriteEndObject();
        }
        return stream.ToArray();
    }
}
