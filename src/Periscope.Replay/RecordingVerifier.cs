using Periscope.Memory;

namespace Periscope.Replay;

/// <summary>Kinds of problem `recording verify` reports.</summary>
public enum RecordingProblemKind
{
    Missing,
    Truncated,
    Grown,
    HashMismatch,
    ReplayRamDiffers,
    ReplaySerialDiffers,
}

public sealed record RecordingProblem(RecordingProblemKind Kind, string File, string Detail);

/// <summary>What a replay to the end of a recording reproduced.</summary>
public sealed record ReplayCheck(ulong Icount, string RamSha256, bool RamMatches, IReadOnlyList<(string File, bool Matches, long RecordedBytes, long ReplayedBytes)> Serial, TimeSpan Elapsed);

/// <summary>
/// Checks a recording: every file the manifest lists is present with its size and SHA-256 (so an altered or truncated
/// event log is rejected before any replay), and, on request, that a replay from the initial snapshot to the end
/// reproduces the recorded serial output and the RAM hash.
/// </summary>
public static class RecordingVerifier
{
    public static IReadOnlyList<RecordingProblem> CheckFiles(Recording recording)
    {
        var problems = new List<RecordingProblem>();
        foreach (var f in recording.Manifest.Files)
        {
            string path = Path.Combine(recording.Folder, f.Name);
            if (!File.Exists(path)) { problems.Add(new(RecordingProblemKind.Missing, f.Name, "listed in the manifest but missing")); continue; }
            // A recording may link its large files elsewhere: check what the link points at.
            var info = new FileInfo(path);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) info = target;
            long size = info.Length;
            if (size < f.Bytes) problems.Add(new(RecordingProblemKind.Truncated, f.Name, $"truncated: {size} bytes, the manifest says {f.Bytes}"));
            else if (size > f.Bytes) problems.Add(new(RecordingProblemKind.Grown, f.Name, $"{size} bytes, the manifest says {f.Bytes}"));
            else if (Recorder.HashFile(path) is var sha && sha != f.Sha256)
                problems.Add(new(RecordingProblemKind.HashMismatch, f.Name, $"altered: SHA-256 {sha[..16]}…, the manifest says {f.Sha256[..16]}…"));
        }
        return problems;
    }

    /// <summary>Replays the whole run (from the initial snapshot) and compares the end state with the recorded one.</summary>
    public static ReplayCheck Replay(Recording recording, IntrospectionLimits? limits = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var session = ReplaySession.StartAt(recording, recording.Manifest.Snapshots[0], limits);
        session.RunToEndOfLog();
        string ram = Recorder.HashFile(session.RamFile);
        var serial = new List<(string, bool, long, long)>();
        foreach (var (name, replayed) in new[] { (RecordingLayout.ConsoleLogFile, session.Files.ConsoleLog), (RecordingLayout.DataLogFile, session.Files.DataLog) })
        {
            string recorded = Path.Combine(recording.Folder, name);
            long a = File.Exists(recorded) ? new FileInfo(recorded).Length : -1, b = File.Exists(replayed) ? new FileInfo(replayed).Length : -1;
            bool same = a == b && a >= 0 && Recorder.HashFile(recorded) == Recorder.HashFile(replayed);
            serial.Add((name, same, a, b));
        }
        return new ReplayCheck(session.Icount, ram, ram == recording.Manifest.EndRamSha256, serial, sw.Elapsed);
    }
}
