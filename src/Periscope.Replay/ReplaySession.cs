using System.Diagnostics;
using Periscope.Memory;
using Periscope.Qemu;

namespace Periscope.Replay;

/// <summary>
/// One replay process of a recording: QEMU started paused from a snapshot, then moved forward only, with
/// replay-break, to the points asked for. Going back means a new session (reverse execution and backward seeks
/// deadlock QEMU 7.2). While paused, the guest's RAM file and the tool QMP socket serve any periscope command, as a
/// live guest does. Dispose ends this QEMU and removes its work folder.
/// </summary>
public sealed class ReplaySession : IDisposable
{
    private readonly QemuProcess _qemu;
    private readonly IntrospectionLimits _limits;

    private ReplaySession(Recording recording, RunFiles files, QemuProcess qemu, RecordingSnapshot start, IntrospectionLimits limits)
    {
        Recording = recording;
        Files = files;
        _qemu = qemu;
        Start = start;
        _limits = limits;
        Icount = start.Icount;
    }

    public Recording Recording { get; }
    public RunFiles Files { get; }
    public RecordingSnapshot Start { get; }
    /// <summary>Where the paused guest stands now.</summary>
    public ulong Icount { get; private set; }
    public string RamFile => Files.RamFile;
    public string ToolQmpSocket => Files.ToolQmpSocket;
    public QmpClient Qmp => _qemu.Qmp;
    /// <summary>Host time spent starting QEMU and loading the snapshot.</summary>
    public TimeSpan StartTime { get; private init; }

    /// <summary>Starts a replay from the latest snapshot at or before <paramref name="icount"/> (no instruction run yet).</summary>
    public static ReplaySession StartNear(Recording recording, ulong icount, IntrospectionLimits? limits = null) =>
        StartAt(recording, recording.Manifest.NearestSnapshot(icount), limits);

    public static ReplaySession StartAt(Recording recording, RecordingSnapshot snapshot, IntrospectionLimits? limits = null)
    {
        var sw = Stopwatch.StartNew();
        string work = Path.Combine(Path.GetTempPath(), $"periscope-replay-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        var files = new RunFiles(recording.Folder, work, Path.Combine("/dev/shm", Path.GetFileName(work)));
        QemuProcess? qemu = null;
        try
        {
            File.Copy(Path.Combine(recording.Folder, RecordingLayout.DiskFile), files.Disk);
            var args = RecordReplayCommandLine.Build(recording.Manifest.Layout, files, ReplayMode.Replay, snapshot.Name);
            qemu = QemuProcess.Start(RecordReplayCommandLine.QemuBinary, args, files.QmpSocket, work);
            var qmp = qemu.Qmp;
            ulong at = qmp.QueryReplayIcount();
            if (at != snapshot.Icount)
                throw new RecordingFormatException(Path.Combine(recording.Folder, RecordingManifest.FileName), 0,
                    $"snapshot {snapshot.Name} is listed at icount {snapshot.Icount} but loads at {at}");
            return new ReplaySession(recording, files, qemu, snapshot, limits ?? IntrospectionLimits.Default) { StartTime = sw.Elapsed };
        }
        catch
        {
            qemu?.Dispose();
            Cleanup(files);
            throw;
        }
    }

    /// <summary>Runs the replay forward to exactly <paramref name="icount"/> and leaves the guest paused there.</summary>
    public void RunTo(ulong icount)
    {
        if (icount < Icount) throw new InvalidOperationException($"replay is at icount {Icount}; it cannot go back to {icount} (start a new session)");
        if (icount > Recording.Manifest.EndIcount)
            throw new InvalidOperationException($"icount {icount} is past the end of the recording ({Recording.Manifest.EndIcount})");
        if (icount == Icount) return;
        _qemu.Qmp.ReplayBreak(icount);
        ulong reached = ContinueUntilStopped(icount, out _);
        if (reached != icount) throw new IOException($"replay stopped at icount {reached}, not at the break point {icount}");
        Icount = icount;
    }

    /// <summary>
    /// Replays the whole rest of the log, with no break point: up to the recorder's quit, the last event, which leaves
    /// the replay in state "shutdown" at the end icount. A break at the end icount stops the vCPU there before the
    /// events logged at that same count (what the devices did while the recorded guest idled at its last instruction,
    /// and the drain when the recorder stopped it) are replayed; the RAM the recorder hashed after its stop holds them.
    /// </summary>
    public void RunToEndOfLog()
    {
        ulong end = Recording.Manifest.EndIcount;
        ulong reached = ContinueUntilStopped(end, out string status);
        if (status != "shutdown" || reached != end)
            throw new IOException($"{Recording.Folder}: the replay stopped ({status}) at icount {reached}, not at the recorded quit at the end icount {end}");
        Icount = end;
    }

    /// <summary>Resumes the replay and waits, bounded by the seek time limit and the stall check, until it stops.</summary>
    private ulong ContinueUntilStopped(ulong target, out string status)
    {
        var qmp = _qemu.Qmp;
        qmp.Continue();
        TimeSpan limit = SeekTimeLimit(Recording.Manifest, _limits);
        var sw = Stopwatch.StartNew();
        ulong lastIcount = Icount;
        var lastProgress = sw.Elapsed;
        int sleepMs = 5;
        while (!IsStopped(status = qmp.QueryStatus()))
        {
            if (_qemu.HasExited) throw new IOException($"{Recording.Folder}: replay QEMU exited before icount {target}: {_qemu.StandardError}");
            ulong now = qmp.QueryReplayIcount();
            if (now != lastIcount) { lastIcount = now; lastProgress = sw.Elapsed; }
            else if ((sw.Elapsed - lastProgress).TotalSeconds > _limits.MaxReplayStallSeconds)
                throw new TimeoutException($"{Recording.Folder}: replay stuck at icount {now} for {_limits.MaxReplayStallSeconds} s on its way to {target}");
            if (sw.Elapsed > limit)
                throw new TimeoutException($"{Recording.Folder}: replay did not reach icount {target} within {limit.TotalSeconds:0} s (at icount {now}; the whole recording took {Recording.Manifest.RecordedTime.TotalSeconds:0} s)");
            Thread.Sleep(sleepMs);
            sleepMs = Math.Min(sleepMs * 2, 200);
        }
        return qmp.QueryReplayIcount();
    }

    /// <summary>
    /// "paused" after a replay-break; "shutdown" once the recorded quit at the end of the log was replayed (QEMU runs
    /// with shutdown=pause, see <see cref="RecordReplayCommandLine"/>): the replay stops at the end icount either way.
    /// </summary>
    private static bool IsStopped(string status) => status is "paused" or "shutdown";

    /// <summary>A command given the tool QMP socket could resume the guest; the replay must still stand where it was left.</summary>
    public void CheckStillPaused()
    {
        var qmp = _qemu.Qmp;
        string status = qmp.QueryStatus();
        ulong now = qmp.QueryReplayIcount();
        // "prelaunch" when the session stands at its snapshot and never ran; "paused" after a replay-break.
        if (status == "running" || now != Icount)
            throw new IOException($"{Recording.Folder}: the replay was resumed behind Periscope's back (now {status} at icount {now}, left paused at {Icount})");
    }

    /// <summary>
    /// How long one forward run of a replay may take: replay runs at about the speed of recording, so a stretch of the
    /// run taking several times the whole recording's host time is stuck, not slow; never more than MaxReplaySeekSeconds.
    /// The extra minute covers QEMU's start and snapshot load on a loaded machine.
    /// </summary>
    public static TimeSpan SeekTimeLimit(RecordingManifest manifest, IntrospectionLimits limits)
    {
        double seconds = manifest.RecordedTime.TotalSeconds * limits.MaxReplayToRecordTimeRatio + 60;
        return TimeSpan.FromSeconds(Math.Min(seconds, limits.MaxReplaySeekSeconds));
    }

    public void Dispose()
    {
        try { _qemu.Dispose(); }
        finally { Cleanup(Files); }
    }

    private static void Cleanup(RunFiles files)
    {
        try { File.Delete(files.RamFile); } catch (IOException) { }
        try { Directory.Delete(files.WorkFolder, recursive: true); } catch (IOException) { }
    }
}
