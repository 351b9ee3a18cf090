namespace Periscope.Replay;

/// <summary>Whether QEMU records the run or replays it from the event log.</summary>
public enum ReplayMode
{
    Record,
    Replay,
}

/// <summary>Where one QEMU run of a recording keeps its files (the recording folder itself when recording).</summary>
public sealed record RunFiles(string RecordingFolder, string WorkFolder, string RamFile)
{
    public string QmpSocket => Path.Combine(WorkFolder, "qmp.sock");
    /// <summary>A second QMP server for the periscope command run on the paused guest (QEMU serves one client per socket).</summary>
    public string ToolQmpSocket => Path.Combine(WorkFolder, "qmp-tools.sock");
    public string ConsoleLog => Path.Combine(WorkFolder, RecordingLayout.ConsoleLogFile);
    public string DataLog => Path.Combine(WorkFolder, RecordingLayout.DataLogFile);
    /// <summary>The recording's disk holds the snapshots; a replay works on its own copy, since loading a snapshot
    /// rewrites the image's tables and the recording must stay as hashed.</summary>
    public string Disk => Path.Combine(WorkFolder, RecordingLayout.DiskFile);
}

/// <summary>
/// The QEMU command line of a deterministic record or replay run (QEMU 7.2, TCG). Everything non-deterministic is left
/// out or made replay-aware: no network, the only block device goes through blkreplay (it also holds the snapshots
/// savevm needs), the serial ports write to files and the third port is null (its input would be recorded).
/// </summary>
public static class RecordReplayCommandLine
{
    public const string QemuBinary = "qemu-system-x86_64";

    public static IReadOnlyList<string> Build(RecordingLayout layout, RunFiles files, ReplayMode mode, string startSnapshot)
    {
        string rr = mode == ReplayMode.Record ? "record" : "replay";
        var args = new List<string>
        {
            "-accel", "tcg", "-cpu", layout.Cpu, "-smp", "1", "-m", $"{layout.MemoryMiB}M",
            "-machine", "q35,memory-backend=mem",
            "-object", $"memory-backend-file,id=mem,size={layout.MemoryMiB}M,mem-path={files.RamFile},share=on",
            "-kernel", Path.Combine(files.RecordingFolder, layout.KernelFile),
            "-initrd", Path.Combine(files.RecordingFolder, layout.InitrdFile),
            "-append", layout.Append,
            "-serial", $"file:{files.ConsoleLog}", "-serial", $"file:{files.DataLog}", "-serial", "null",
            "-qmp", $"unix:{files.QmpSocket},server=on,wait=off",
            "-qmp", $"unix:{files.ToolQmpSocket},server=on,wait=off",
            "-nic", "none", "-display", "none", "-monitor", "none", "-no-reboot",
            "-drive", $"file={files.Disk},if=none,id=img-direct,format=qcow2",
            "-drive", "driver=blkreplay,if=none,image=img-direct,id=img-blkreplay",
            "-device", "virtio-blk-pci,drive=img-blkreplay",
            "-icount", $"shift={layout.IcountShift},rr={rr},rrfile={Path.Combine(files.RecordingFolder, RecordingLayout.EventLogFile)},rrsnapshot={startSnapshot}",
        };
        if (mode == ReplayMode.Replay)
        {
            // A replay starts paused: the snapshot is loaded at start-up, and nothing runs before the first replay-break
            // is set (loading a snapshot after the vCPU ran deadlocks QEMU 7.2).
            args.Add("-S");
            // The log ends with the recorder's own quit, a shutdown request QEMU replays once it reaches the end icount
            // (from the vCPU, or from a host-clock timer while paused there): with the default action it would exit under
            // the command running at the end. Paused in state "shutdown", the guest stays readable at that icount.
            args.AddRange(["-action", "shutdown=pause"]);
        }
        return args;
    }
}
