using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.Replay;
using Periscope.Targets;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// Two recordings, both of a guest that prints almost nothing (every serial byte is an event in the log; /init's full
/// ground truth made the old recordings minutes long): (1) the attack run (guest/start.d/10-replay.sh, enabled by
/// periscope.replay_attack=NR): the guest prints two symbols and a ready marker, then after a random 4-15 s the tamper
/// module replaces sys_call_table[NR]; the recording ends when the guest reports it. Periodic snapshots every few
/// seconds keep every replay of a test near its target. (2) A few seconds of boot, short enough to replay whole for
/// `recording verify --replay`. Every replay is bounded by a time limit derived from the recording's length.
/// </summary>
public sealed class RecordedAttack : IDisposable
{
    public const int SyscallNr = 39; // getpid: harmless, this kernel dispatches through x64_sys_call anyway
    private static readonly string Append = $"console=ttyS0 quiet pti=on panic=-1 periscope.replay_attack={SyscallNr}";

    public RecordedAttack()
    {
        string image = GuestImage.Directory();
        string stem = Path.Combine(Path.GetTempPath(), $"periscope-recording-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Folder = stem + "-attack";
        ShortFolder = stem + "-short";
        Manifest = Recorder.Record(new RecordOptions
        {
            OutputFolder = Folder,
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            Append = Append,
            SnapshotEverySeconds = 8,
            // A bound, not a wait: the run ends at the stop marker (boot plus at most 15 s of waiting: about a minute on a
            // loaded machine); if the guest never reports, the fixture fails after this many seconds instead of hanging.
            DurationSeconds = 300,
            ReadyMarker = "PERISCOPE-GUEST-READY",
            StopMarker = "periscope-replay: attacked",
        });
        Recording = Recording.Open(Folder);
        string data = File.ReadAllText(Path.Combine(Folder, RecordingLayout.DataLogFile));
        // The module's own report of what it did (its printk, copied from dmesg to ttyS1): the ground truth of the attack.
        var m = Regex.Match(data, @"periscope_tamper: syscall (\d+) slot=0x([0-9a-f]+) old=0x([0-9a-f]+) new=0x([0-9a-f]+)");
        if (!m.Success) throw new InvalidOperationException($"the guest did not report the attack; ttyS1: {data[^Math.Min(1500, data.Length)..]}");
        Slot = ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber);
        OldValue = ulong.Parse(m.Groups[3].Value, NumberStyles.HexNumber);
        NewValue = ulong.Parse(m.Groups[4].Value, NumberStyles.HexNumber);
        Truth = GroundTruth.Parse(data);
        ShortManifest = Recorder.Record(new RecordOptions
        {
            OutputFolder = ShortFolder,
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            Append = Append,
            DurationSeconds = 6,
        });
    }

    public string ShortFolder { get; }
    public RecordingManifest ShortManifest { get; }
    public string Folder { get; }
    public RecordingManifest Manifest { get; }
    public Recording Recording { get; }
    public GroundTruth Truth { get; }
    public ulong Slot { get; }
    public ulong OldValue { get; }
    public ulong NewValue { get; }

    public ulong ReadyIcount => Manifest.Snapshots.Single(s => s.Name == Recorder.ReadySnapshot).Icount;

    /// <summary>A copy of the recording whose event log is replaced by <paramref name="alter"/>'s output; other files are links.</summary>
    public string AlteredCopy(Action<string> alter)
    {
        string copy = Folder + "-altered-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(Folder))
        {
            string name = Path.GetFileName(f);
            if (name == RecordingLayout.EventLogFile) File.Copy(f, Path.Combine(copy, name));
            else if (!name.EndsWith(".sock", StringComparison.Ordinal)) File.CreateSymbolicLink(Path.Combine(copy, name), f);
        }
        alter(Path.Combine(copy, RecordingLayout.EventLogFile));
        return copy;
    }

    public void Dispose()
    {
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
        try { Directory.Delete(ShortFolder, recursive: true); } catch (IOException) { }
        foreach (var d in Directory.GetDirectories(Path.GetTempPath(), Path.GetFileName(Folder) + "-altered-*"))
            try { Directory.Delete(d, recursive: true); } catch (IOException) { }
    }
}

public sealed class ReplayTests(RecordedAttack run, ITestOutputHelper output) : IClassFixture<RecordedAttack>
{
    /// <summary>
    /// The test does not know when the attack happened: find-write over the syscall table slot (from the clean "ready"
    /// point to the end) must give one exact icount, and fresh replays confirm the slot holds the original handler at
    /// icount-1 and the module's function at icount.
    /// </summary>
    [Fact]
    public void FindWriteLocatesTheSyscallTableChangeToTheInstruction()
    {
        var symbols = run.Truth.Symbols;
        ulong table = symbols.First(s => s.Name == "sys_call_table").Address;
        Assert.Equal(table + 8 * RecordedAttack.SyscallNr, run.Slot);
        Assert.Equal(symbols.First(s => s.Name == "__x64_sys_getpid").Address, run.OldValue);

        var finder = new WriteFinder(run.Recording, Periscope.Memory.IntrospectionLimits.Default);
        var (va, pa) = finder.ResolveKernelAddress($"sys_call_table+0x{8 * RecordedAttack.SyscallNr:x}", run.Manifest.EndIcount);
        Assert.Equal(run.Slot, va);
        var found = finder.Find(pa, 8, run.ReadyIcount, run.Manifest.EndIcount);
        Assert.NotNull(found);
        output.WriteLine($"first write at icount {found.Icount} (ready {run.ReadyIcount}, end {run.Manifest.EndIcount}), rip 0x{found.Rip:x} {found.RipSymbol} module {found.Module} pid {found.Pid} {found.Comm}; {found.Sessions} replays, {found.Stops} stops");
        Assert.InRange(found.Icount, run.ReadyIcount + 1, run.Manifest.EndIcount);
        Assert.Equal(run.OldValue, BinaryPrimitives.ReadUInt64LittleEndian(found.Before));
        // The module writes the aligned slot with one 8-byte store (as a rootkit does; write_ro in tamper/), so the first
        // change is the whole new value, made by an instruction of the module itself. The writer is PID 1: the start.d
        // hook is sourced by /init, and its `echo syscall N > /proc/...` is a shell builtin.
        ulong firstChanged = BinaryPrimitives.ReadUInt64LittleEndian(found.After);
        Assert.Equal(run.NewValue, firstChanged);
        Assert.Equal("periscope_tamper", found.Module);
        Assert.Equal("init", found.Comm);
        Assert.Equal(1, found.Pid);

        // Independent confirmation, through the kernel's virtual mapping this time: clean at icount-1, tampered at icount.
        using var session = ReplaySession.StartNear(run.Recording, found.Icount - 1);
        session.RunTo(found.Icount - 1);
        Assert.Equal(run.OldValue, ReadSlot(session));
        session.RunTo(found.Icount);
        Assert.Equal(firstChanged, ReadSlot(session));
        session.RunTo(run.Manifest.EndIcount);
        Assert.Equal(run.NewValue, ReadSlot(session));
    }

    private ulong ReadSlot(ReplaySession session)
    {
        using var target = Target.AttachLive(session.RamFile, null);
        Assert.True(target.Kernel.KernelSpace.TryReadUInt64(run.Slot, out ulong value));
        return value;
    }

    /// <summary>Any periscope command runs on the replayed guest: at the end the tamper module is loaded, at "ready" it is not.</summary>
    [Fact]
    public void ReplayRunsACommandAtTheEndAndAtASnapshot()
    {
        var (code, text, err) = CliRun.Run("replay", run.Folder, "--at-end", "--", "modules");
        Assert.True(code == 0, err);
        Assert.Contains("periscope_tamper", text);
        (code, text, err) = CliRun.Run("replay", run.Folder, "--at", Recorder.ReadySnapshot, "--", "modules");
        Assert.True(code == 0, err);
        Assert.DoesNotContain("periscope_tamper", text);
        Assert.Contains("omfs", text);
        // The seek's cost is reported: at a snapshot itself, nothing is replayed.
        Assert.Contains($"replay: snapshot {Recorder.ReadySnapshot} loaded in ", err);
        Assert.Contains(" s (image copy, QEMU start, load); 0 instructions replayed in ", err);
    }

    /// <summary>
    /// The log ends with the recorder's quit. Replayed to its very end with no break point, QEMU replays that shutdown
    /// request: it must stay up, stopped at the end icount, with the guest readable there (it used to exit, racing the
    /// command that `replay --at-end` runs).
    /// </summary>
    [Fact]
    public void AReplayRunPastTheLastEventStaysUpAtTheEnd()
    {
        using var session = ReplaySession.StartNear(run.Recording, run.Manifest.EndIcount);
        session.Qmp.Continue();
        // A bound, not a wait: the replay stops by itself at the end of the log.
        var limit = ReplaySession.SeekTimeLimit(run.Manifest, IntrospectionLimits.Default);
        var clock = Stopwatch.StartNew();
        string status;
        while ((status = session.Qmp.QueryStatus()) == "running" && clock.Elapsed < limit) Thread.Sleep(100);
        Assert.Equal("shutdown", status);
        Assert.Equal(run.Manifest.EndIcount, session.Qmp.QueryReplayIcount());
        var (code, text, err) = CliRun.Run("modules", "--qemu", session.RamFile, "--qmp", session.ToolQmpSocket);
        Assert.True(code == 0, err);
        Assert.DoesNotContain("warning", err);
        Assert.Contains("periscope_tamper", text);
    }

    /// <summary>A whole replay of the short recording reproduces the recorded serial output and the RAM hash at its end.</summary>
    [Fact]
    public void VerifyReplayReproducesAShortRecording()
    {
        var (code, text, err) = CliRun.Run("recording", "verify", run.ShortFolder, "--replay", "--json");
        output.WriteLine(text + err);
        Assert.Equal(0, code);
        Assert.Contains("\"ramMatches\": true", text);
        Assert.Contains("\"console.logMatches\": true", text);
        Assert.Contains("\"data.logMatches\": true", text);
        Assert.Contains($"\"icount\": {run.ShortManifest.EndIcount}", text);
    }

    [Fact]
    public void VerifyAcceptsTheAttackRecordingsFiles()
    {
        var (code, _, err) = CliRun.Run("recording", "verify", run.Folder);
        Assert.True(code == 0, err);
    }

    [Fact]
    public void VerifyRejectsATruncatedEventLog()
    {
        string copy = run.AlteredCopy(path => { using var f = File.OpenWrite(path); f.SetLength(f.Length - 1000); });
        var (code, _, err) = CliRun.Run("recording", "verify", copy);
        Assert.Equal(2, code);
        Assert.Contains(RecordingLayout.EventLogFile, err);
        Assert.Contains("truncated", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void VerifyRejectsAnAlteredEventLog()
    {
        string copy = run.AlteredCopy(path =>
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            f.Position = f.Length / 2;
            int b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 0x40));
        });
        var (code, _, err) = CliRun.Run("recording", "verify", copy);
        Assert.Equal(2, code);
        Assert.Contains(RecordingLayout.EventLogFile, err);
        Assert.Contains("altered", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void ABadManifestIsOneLineNamingTheFile()
    {
        string copy = run.AlteredCopy(_ => { });
        string manifest = Path.Combine(copy, RecordingManifest.FileName);
        string json = File.ReadAllText(manifest);
        File.Delete(manifest); // a link to the original: replaced, not written through
        File.WriteAllText(manifest, json.Replace("\"endIcount\"", "\"endIcountX\""));
        var (code, _, err) = CliRun.Run("recording", "verify", copy);
        Assert.Equal(2, code);
        Assert.Contains(RecordingManifest.FileName, err);
        Assert.Contains("endIcount", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
