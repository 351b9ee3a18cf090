using System.Text;
using Periscope.Memory;
using Periscope.Replay;

namespace Periscope.UnitTests.Replay;

public sealed class RecordingManifestTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"periscope-manifest-{Guid.NewGuid():N}");

    public RecordingManifestTests() => Directory.CreateDirectory(_folder);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static RecordingManifest Sample() => new()
    {
        Created = new DateTimeOffset(2026, 11, 29, 23, 0, 0, TimeSpan.Zero),
        QemuVersion = "QEMU emulator version 7.2.22",
        QemuCommandLine = ["qemu-system-x86_64", "-icount", "shift=auto,rr=record"],
        Layout = new RecordingLayout { KernelFile = "vmlinuz", InitrdFile = "initrd.img", Append = "console=ttyS0", MemoryMiB = 256, Cpu = "max", IcountShift = "auto" },
        Snapshots = [new("init", 0), new("ready", 5_000_000_000), new("p1", 9_000_000_000)],
        EndIcount = 12_345_678_901,
        RecordedTime = TimeSpan.FromSeconds(42.5),
        EndRamSha256 = new string('a', 64),
        Kernel = new RecordedKernel("Linux version 6.1.0", "0123abcd"),
        Files = [F(RecordingLayout.EventLogFile), F(RecordingLayout.DiskFile), F("vmlinuz"), F("initrd.img")],
    };

    private static RecordedFile F(string name) => new(name, 10, new string('b', 64));

    private void Write(string json) => File.WriteAllText(Path.Combine(_folder, RecordingManifest.FileName), json);

    [Fact]
    public void RoundTripsEveryField()
    {
        var m = Sample();
        File.WriteAllBytes(Path.Combine(_folder, RecordingManifest.FileName), m.ToJson());
        var back = RecordingManifest.Load(_folder, IntrospectionLimits.Default);
        Assert.Equal(m.EndIcount, back.EndIcount);
        Assert.Equal(m.Snapshots, back.Snapshots);
        Assert.Equal(m.Files, back.Files);
        Assert.Equal(m.QemuCommandLine, back.QemuCommandLine);
        Assert.Equal(m.Layout, back.Layout);
        Assert.Equal(m.Kernel, back.Kernel);
        Assert.Equal(m.Created, back.Created);
        Assert.Equal(m.RecordedTime, back.RecordedTime);
    }

    [Theory]
    [InlineData(0UL, "init")]
    [InlineData(4_999_999_999UL, "init")]
    [InlineData(5_000_000_000UL, "ready")]
    [InlineData(9_000_000_001UL, "p1")]
    public void NearestSnapshotIsTheLatestAtOrBefore(ulong icount, string expected) =>
        Assert.Equal(expected, Sample().NearestSnapshot(icount).Name);

    [Theory]
    [InlineData("\"name\": \"vmlinuz\"", "\"name\": \"../../etc/passwd\"", "not a plain file name")]
    [InlineData("\"endIcount\": 12345678901", "\"endIcount\": -1", "endIcount")]
    [InlineData("\"name\": \"ready\"", "\"name\": \"re;ady\"", "bad snapshot name")]
    [InlineData("periscope-recording/1", "periscope-recording/9", "unknown format")]
    [InlineData("\"icountShift\": \"auto\"", "\"icountShift\": \"auto,rr=off\"", "icountShift")]
    [InlineData("\"recordedMilliseconds\": 42500", "\"recordedMilliseconds\": 0", "recordedMilliseconds")]
    [InlineData("\"recordedMilliseconds\": 42500", "\"recordedMilliseconds\": 99999999999999", "recordedMilliseconds")]
    public void RejectsMalformedFieldsWithOneLineNamingTheFile(string from, string to, string expected)
    {
        string json = Encoding.UTF8.GetString(Sample().ToJson());
        Assert.Contains(from, json);
        Write(json.Replace(from, to));
        var e = Assert.Throws<RecordingFormatException>(() => RecordingManifest.Load(_folder, IntrospectionLimits.Default));
        Assert.Contains(expected, e.Message);
        Assert.Contains(RecordingManifest.FileName, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void RejectsAnOversizedManifestBeforeReadingIt()
    {
        Write(new string(' ', 2000) + "{}");
        var e = Assert.Throws<RecordingFormatException>(() => RecordingManifest.Load(_folder, IntrospectionLimits.Default with { MaxRecordingManifestBytes = 1000 }));
        Assert.Contains("more than the limit of 1000", e.Message);
    }

    [Fact]
    public void RejectsAListedFileSizeAboveItsCap()
    {
        string json = Encoding.UTF8.GetString(Sample().ToJson());
        // The event log is listed first: its cap applies, not the general file cap.
        Write(json.Replace("\"bytes\": 10,", "\"bytes\": 5000,"));
        var limits = IntrospectionLimits.Default with { MaxRecordingEventLogBytes = 4096 };
        var e = Assert.Throws<RecordingFormatException>(() => RecordingManifest.Load(_folder, limits));
        Assert.Contains("bytes", e.Message);
        Assert.Contains(RecordingManifest.FileName, e.Message);
    }

    [Fact]
    public void RejectsAnEventLogOnDiskAboveItsCapBeforeHashingIt()
    {
        File.WriteAllBytes(Path.Combine(_folder, RecordingManifest.FileName), Sample().ToJson());
        foreach (var f in Sample().Files) File.WriteAllBytes(Path.Combine(_folder, f.Name), new byte[10]);
        File.WriteAllBytes(Path.Combine(_folder, RecordingLayout.EventLogFile), new byte[5000]);
        var e = Assert.Throws<RecordingFormatException>(() => Recording.Open(_folder, IntrospectionLimits.Default with { MaxRecordingEventLogBytes = 4096 }));
        Assert.Contains(RecordingLayout.EventLogFile, e.Message);
        Assert.Contains("more than the limit of 4096", e.Message);
    }

    [Fact]
    public void SeekTimeLimitFollowsTheRecordedRunAndIsCapped()
    {
        var m = Sample(); // recorded in 42.5 s
        Assert.Equal(TimeSpan.FromSeconds(42.5 * 4 + 60), ReplaySession.SeekTimeLimit(m, IntrospectionLimits.Default));
        var hour = m with { RecordedTime = TimeSpan.FromHours(1) };
        Assert.Equal(TimeSpan.FromSeconds(IntrospectionLimits.Default.MaxReplaySeekSeconds), ReplaySession.SeekTimeLimit(hour, IntrospectionLimits.Default));
    }

    [Fact]
    public void RejectsInvalidJson()
    {
        Write("{\"format\": ");
        Assert.Throws<RecordingFormatException>(() => RecordingManifest.Load(_folder, IntrospectionLimits.Default));
    }

    [Fact]
    public void ReplayCommandLineStartsPausedFromTheSnapshotAndRecordDoesNot()
    {
        var layout = Sample().Layout;
        var files = new RunFiles("/rec", "/work", "/dev/shm/ram");
        var record = RecordReplayCommandLine.Build(layout, files, ReplayMode.Record, "init");
        var replay = RecordReplayCommandLine.Build(layout, files, ReplayMode.Replay, "p1");
        Assert.Contains("shift=auto,rr=record,rrfile=/rec/events.rr,rrsnapshot=init", record);
        Assert.Contains("shift=auto,rr=replay,rrfile=/rec/events.rr,rrsnapshot=p1", replay);
        Assert.DoesNotContain("-S", record);
        Assert.Contains("-S", replay);
        // The recorded quit at the end of the log must pause a replay, not end it.
        int action = replay.ToList().IndexOf("-action");
        Assert.Equal("shutdown=pause", replay[action + 1]);
        Assert.DoesNotContain("-action", record);
        Assert.Contains("driver=blkreplay,if=none,image=img-direct,id=img-blkreplay", replay);
        Assert.Contains("file=/work/snapshots.qcow2,if=none,id=img-direct,format=qcow2", replay);
        int nic = replay.ToList().IndexOf("-nic");
        Assert.Equal("none", replay[nic + 1]);
    }
}
