using System.Diagnostics;
using System.Security.Cryptography;
using Periscope.Linux;
using Periscope.Linux.Discovery;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Qemu;
using Periscope.Targets;

namespace Periscope.Replay;

public sealed record RecordOptions
{
    public required string OutputFolder { get; init; }
    public required string Kernel { get; init; }
    public required string Initrd { get; init; }
    public string Append { get; init; } = "console=ttyS0 pti=on panic=-1";
    public int MemoryMiB { get; init; } = 256;
    public string Cpu { get; init; } = "max";
    public string IcountShift { get; init; } = "auto";
    /// <summary>Host seconds between periodic snapshots (0: only the initial one).</summary>
    public double SnapshotEverySeconds { get; init; }
    /// <summary>A periodic snapshot is skipped while the guest has run fewer instructions than this since the last
    /// one: replaying that few takes a second or two, so the seek point would not be worth a snapshot's disk space
    /// (each holds the whole vmstate, ~80 MB for a 256 MiB guest) and each seek's copy of the image.</summary>
    public ulong MinSnapshotInstructions { get; init; } = DefaultMinSnapshotInstructions;
    public const ulong DefaultMinSnapshotInstructions = 1_000_000_000;
    /// <summary>Host seconds to record before stopping; the run also ends when the guest powers off.</summary>
    public double DurationSeconds { get; init; } = 60;
    /// <summary>When the console (ttyS0) or the data port (ttyS1) first carries this line, a snapshot named "ready" is taken: a clean point
    /// after boot to start analyses from.</summary>
    public string? ReadyMarker { get; init; }
    /// <summary>End the recording (before the duration) once the console or the data port carries this line.</summary>
    public string? StopMarker { get; init; }
    public IntrospectionLimits Limits { get; init; } = IntrospectionLimits.Default;
}

/// <summary>
/// Records a guest run under QEMU's deterministic record mode into a recording folder (see
/// <see cref="RecordingManifest"/>): event log, kernel and initrd copies, a qcow2 image holding the snapshots, serial
/// output, the exact command line, and checksums. At the end the guest is stopped, its icount and RAM hash noted, and
/// its kernel identified by Periscope's own discovery on the RAM file.
/// </summary>
public static class Recorder
{
    public const string InitialSnapshot = "init";
    public const string ReadySnapshot = "ready";

    public static RecordingManifest Record(RecordOptions o, TextWriter? progress = null)
    {
        string folder = Path.GetFullPath(o.OutputFolder);
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new IOException($"{folder}: the output folder exists and is not empty");
        foreach (var f in new[] { o.Kernel, o.Initrd })
            if (!File.Exists(f)) throw new FileNotFoundException($"{f}: no such file", f);
        Directory.CreateDirectory(folder);
        var layout = new RecordingLayout
        {
            KernelFile = "vmlinuz", InitrdFile = "initrd.img", Append = o.Append, MemoryMiB = o.MemoryMiB, Cpu = o.Cpu, IcountShift = o.IcountShift,
        };
        File.Copy(o.Kernel, Path.Combine(folder, layout.KernelFile));
        File.Copy(o.Initrd, Path.Combine(folder, layout.InitrdFile));
        string ram = Path.Combine("/dev/shm", $"periscope-record-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var files = new RunFiles(folder, folder, ram);
        QemuImage.CreateQcow2(files.Disk, 64);
        var args = RecordReplayCommandLine.Build(layout, files, ReplayMode.Record, InitialSnapshot);
        string version = QemuProcess.Version(RecordReplayCommandLine.QemuBinary);
        var snapshots = new List<RecordingSnapshot> { new(InitialSnapshot, 0) };
        ulong endIcount;
        string endRamHash;
        TimeSpan recordedTime;
        RecordedKernel? kernel = null;
        IReadOnlyList<string> commandLine;
        try
        {
            using var qemu = QemuProcess.Start(RecordReplayCommandLine.QemuBinary, args, files.QmpSocket, folder);
            commandLine = qemu.CommandLine;
            var qmp = qemu.Qmp;
            var clock = Stopwatch.StartNew();
            double nextSnapshot = o.SnapshotEverySeconds > 0 ? o.SnapshotEverySeconds : double.MaxValue;
            bool ready = o.ReadyMarker is null;
            int periodic = 0;
            while (clock.Elapsed.TotalSeconds < o.DurationSeconds && !qemu.HasExited)
            {
                Thread.Sleep(200);
                if (qemu.HasExited) break;
                if (!ready && (SerialLog.HasLine(files.ConsoleLog, o.ReadyMarker!) || SerialLog.HasLine(files.DataLog, o.ReadyMarker!)))
                {
                    ready = true;
                    snapshots.Add(Snapshot(qmp, ReadySnapshot, progress));
                }
                if (o.StopMarker is { } stop && (SerialLog.HasLine(files.ConsoleLog, stop) || SerialLog.HasLine(files.DataLog, stop))) break;
                if (clock.Elapsed.TotalSeconds >= nextSnapshot)
                {
                    ulong ran = qmp.QueryReplayIcount() - snapshots[^1].Icount;
                    if (ran >= o.MinSnapshotInstructions) snapshots.Add(Snapshot(qmp, $"p{++periodic}", progress));
                    else progress?.WriteLine($"snapshot skipped: the guest ran {ran} instructions since the last one");
                    nextSnapshot = clock.Elapsed.TotalSeconds + o.SnapshotEverySeconds;
                }
            }
            if (qemu.HasExited) throw new IOException($"QEMU exited during the recording: {qemu.StandardError}");
            qmp.Stop();
            endIcount = qmp.QueryReplayIcount();
            endRamHash = HashFile(ram);
            kernel = IdentifyKernel(ram, o.Limits, progress);
            recordedTime = clock.Elapsed;
            progress?.WriteLine($"recorded {recordedTime.TotalSeconds:0.0} s, icount {endIcount}");
        }
        finally
        {
            try { File.Delete(ram); } catch (IOException) { }
            try { File.Delete(files.QmpSocket); File.Delete(files.ToolQmpSocket); } catch (IOException) { }
        }
        var recorded = new List<RecordedFile>();
        foreach (string name in new[] { RecordingLayout.EventLogFile, RecordingLayout.DiskFile, layout.KernelFile, layout.InitrdFile, RecordingLayout.ConsoleLogFile, RecordingLayout.DataLogFile })
        {
            string path = Path.Combine(folder, name);
            if (File.Exists(path)) recorded.Add(new RecordedFile(name, new FileInfo(path).Length, HashFile(path)));
        }
        var manifest = new RecordingManifest
        {
            Created = DateTimeOffset.UtcNow,
            QemuVersion = version,
            QemuCommandLine = commandLine,
            Layout = layout,
            Snapshots = snapshots,
            EndIcount = endIcount,
            RecordedTime = recordedTime,
            EndRamSha256 = endRamHash,
            Kernel = kernel,
            Files = recorded,
        };
        File.WriteAllBytes(Path.Combine(folder, RecordingManifest.FileName), manifest.ToJson());
        return manifest;
    }

    /// <summary>Stops the guest so the icount is exact while the snapshot is written, then lets it run on.</summary>
    private static RecordingSnapshot Snapshot(QmpClient qmp, string name, TextWriter? progress)
    {
        var sw = Stopwatch.StartNew();
        qmp.Stop();
        try
        {
            ulong icount = qmp.QueryReplayIcount();
            string reply = qmp.HumanMonitorCommand($"savevm {name}");
            if (!string.IsNullOrWhiteSpace(reply)) throw new IOException($"savevm {name} failed: {reply.Trim()}");
            progress?.WriteLine($"snapshot {name} at icount {icount} ({sw.Elapsed.TotalSeconds:0.00} s paused)");
            return new RecordingSnapshot(name, icount);
        }
        finally { qmp.Continue(); }
    }

    private static RecordedKernel? IdentifyKernel(string ram, IntrospectionLimits limits, TextWriter? progress)
    {
        try
        {
            using var target = Target.AttachLive(ram, null, new TargetOptions { Limits = limits });
            var k = target.Kernel;
            return new RecordedKernel(k.Banner, KernelIdentity.BuildId(k));
        }
        catch (Exception e) when (e is IOException or KernelNotFoundException or KernelModelException or InvalidOperationException or KeyNotFoundException)
        {
            progress?.WriteLine($"kernel not identified at the end of the recording: {e.Message}");
            return null;
        }
    }

    public static string HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

/// <summary>Reads a serial log (a file QEMU appends to) for a marker line; only its last 64 KiB, as it grows.</summary>
internal static class SerialLog
{
    public static bool HasLine(string path, string marker)
    {
        if (!File.Exists(path)) return false;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long start = Math.Max(0, fs.Length - 65536);
        fs.Seek(start, SeekOrigin.Begin);
        using var r = new StreamReader(fs);
        string? line;
        while ((line = r.ReadLine()) is not null)
            if (line.TrimEnd('\r') == marker) return true;
        return false;
    }
}

/// <summary>qcow2 images through qemu-img (Debian package qemu-utils).</summary>
public static class QemuImage
{
    public static void CreateQcow2(string path, int sizeMiB)
    {
        var psi = new ProcessStartInfo("qemu-img", ["create", "-q", "-f", "qcow2", path, $"{sizeMiB}M"]) { RedirectStandardError = true, UseShellExecute = false };
        try
        {
            using var p = Process.Start(psi) ?? throw new IOException("qemu-img did not start");
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new IOException($"qemu-img create {path} failed: {err.Trim()}");
        }
        catch (System.ComponentModel.Win32Exception e) { throw new IOException($"cannot run qemu-img (install qemu-utils): {e.Message}", e); }
    }
}
