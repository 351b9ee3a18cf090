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
        var qmp = _qemu.Qmp;
        qmp.ReplayBreak(icount);
        qmp.Continue();
        var sw = Stopwatch.StartNew();
        int sleepMs = 5;
        while (qmp.QueryStatus() != "paused")
        {
            if (_qemu.HasExited) throw new IOException($"replay QEMU exited before icount {icount}: {_qemu.StandardError}");
            if (sw.Elapsed.TotalSeconds > _limits.MaxReplaySeekSeconds)
                throw new TimeoutException($"replay did not reach icount {icount} within {_limits.MaxReplaySeekSeconds} s (at {qmp.QueryReplayIcount()})");
            Thread.Sleep(sleepMs);
            sleepMs = Math.Min(sleepMs * 2, 200);
        }
        ulong reached = qmp.QueryReplayIcount();
        if (reached != icount) throw new IOException($"replay stopped at icount {reached}, not at the break point {icount}");
        Icount = icount;
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
