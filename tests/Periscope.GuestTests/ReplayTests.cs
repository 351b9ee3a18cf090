using System.Buffers.Binary;
using System.Globalization;
using System.Text.RegularExpressions;
using Periscope.Memory.Formats;
using Periscope.Replay;
using Periscope.Targets;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// One recorded run of the demo guest with a delayed attack (guest/start.d/50-replay.sh, enabled by
/// periscope.replay_attack=NR): after a random sleep the tamper module replaces sys_call_table[NR]. The recording
/// ends a few seconds after the guest says it attacked. Kept short: record/replay is CPU-heavy on a shared machine.
/// </summary>
public sealed class RecordedAttack : IDisposable
{
    public const int SyscallNr = 39; // getpid: harmless, this kernel dispatches through x64_sys_call anyway

    public RecordedAttack()
    {
        string image = GuestImage.Directory();
        Folder = Path.Combine(Path.GetTempPath(), $"periscope-recording-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Manifest = Recorder.Record(new RecordOptions
        {
            OutputFolder = Folder,
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            Append = $"console=ttyS0 pti=on panic=-1 periscope.replay_attack={SyscallNr}",
            SnapshotEverySeconds = 20,
            DurationSeconds = 600,
            ReadyMarker = "PERISCOPE-GUEST-READY",
            StopMarker = "periscope-replay: attacked",
        });
        Recording = Recording.Open(Folder);
        string console = File.ReadAllText(Path.Combine(Folder, RecordingLayout.ConsoleLogFile));
        // The module's own report of what it did (printk on the console): the ground truth of the attack.
        var m = Regex.Match(console, @"periscope_tamper: syscall (\d+) slot=0x([0-9a-f]+) old=0x([0-9a-f]+) new=0x([0-9a-f]+)");
        if (!m.Success) throw new InvalidOperationException($"the guest did not report the attack; console tail: {console[^Math.Min(1500, console.Length)..]}");
        Slot = ulong.Parse(m.Groups[2].Value, NumberStyles.HexNumber);
        OldValue = ulong.Parse(m.Groups[3].Value, NumberStyles.HexNumber);
        NewValue = ulong.Parse(m.Groups[4].Value, NumberStyles.HexNumber);
        Truth = GroundTruth.Parse(File.ReadAllText(Path.Combine(Folder, RecordingLayout.DataLogFile)));
    }

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
        // The copy is a `rep movsb`: each iteration is one instruction for icount, so the first change is a partial
        // write (the slot's low bytes new, the rest old); the module's value is complete a few instructions later.
        ulong firstChanged = BinaryPrimitives.ReadUInt64LittleEndian(found.After);
        Assert.NotEqual(run.OldValue, firstChanged);
        Assert.Equal(run.NewValue & 0xff, firstChanged & 0xff);
        // The module's write_ro calls the kernel's memcpy (memcpy_erms, a `rep movsb`, on this CPU model); the writer is
        // the attack's subshell, a fork of /init (comm "init", not PID 1), running `echo syscall N > /proc/...`.
        Assert.StartsWith("memcpy", found.RipSymbol);
        Assert.Null(found.Module);
        Assert.Equal("init", found.Comm);
        Assert.NotEqual(1, found.Pid);

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
    }

    [Fact]
    public void VerifyAcceptsTheRecordingAndReproducesTheRun()
    {
        var (code, text, err) = CliRun.Run("recording", "verify", run.Folder, "--replay", "--json");
        output.WriteLine(text + err);
        Assert.Equal(0, code);
        Assert.Contains("\"ramMatches\": true", text);
        Assert.Contains("\"console.logMatches\": true", text);
        Assert.Contains("\"data.logMatches\": true", text);
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
    }
}
