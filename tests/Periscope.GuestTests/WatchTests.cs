using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Periscope.Journal;
using Periscope.Qemu;
using Periscope.Tests.Shared;

namespace Periscope.GuestTests;

/// <summary>
/// `periscope watch` as a child process against a real guest, for the issue's whole story in one run (a guest boot
/// is the expensive part): with --protect syscall-table the hook's write is caught by the GDB-stub watchpoint as it
/// happens (writing RIP inside periscope_tamper, the slot's old and new value, the writing task), journalled before
/// the command that made it returned plus one second, and the periodic sweep raises the same change once (not at
/// every sweep), linked to that watchpoint record; it is cleared once when undone; QEMU
/// killed with SIGKILL is reported as detached; QEMU started again on the same RAM file and sockets is re-attached,
/// the kernel re-discovered, and the new boot (new KASLR base) reported; SIGTERM stops watch with exit 0, a
/// WatchStopped record and a signed head that `journal verify --pubkey` proves.
/// </summary>
public sealed class WatchTests : IDisposable
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(300), Soon = TimeSpan.FromSeconds(120);
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-watch-guest-").FullName;
    private readonly string _ram = $"/dev/shm/periscope-watch-{Environment.ProcessId}";
    private QemuGuest? _guest;
    private Process? _watch;

    public void Dispose()
    {
        if (_watch is { HasExited: false }) { _watch.Kill(); _watch.WaitForExit(); }
        _watch?.Dispose();
        _guest?.Dispose();
        SqliteConnection.ClearAllPools();
        try { File.Delete(_ram); } catch (IOException) { }
        Directory.Delete(_dir, recursive: true);
    }

    private QemuGuest StartGuest()
    {
        string image = GuestImage.Directory();
        var guest = QemuGuest.Start(new QemuGuestOptions
        {
            Kernel = Path.Combine(image, "vmlinuz"), Initrd = Path.Combine(image, "initrd.gz"),
            WorkDirectory = Path.Combine(_dir, "vm"), RamFile = _ram,
        });
        guest.WaitForDataMarker("@@DONE", Boot);
        return guest;
    }

    private string Journal => Path.Combine(_dir, "journal.db");

    private List<JournalRecord> Records()
    {
        if (!File.Exists(Journal)) return [];
        try
        {
            using var j = JournalStore.Open(Journal, JournalOpenMode.ReadOnly);
            return j.Records().ToList();
        }
        catch (JournalFormatException) { return []; } // the writer is creating it right now
    }

    private List<JournalRecord> WaitFor(Func<List<JournalRecord>, bool> condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var records = Records();
            if (condition(records)) return records;
            if (sw.Elapsed > timeout || _watch!.HasExited)
                Assert.Fail($"{what} not seen within {sw.Elapsed.TotalSeconds:0} s (watch exited: {_watch!.HasExited}); journal:\n" +
                            string.Join('\n', records.Select(r => $"{r.Sequence} {r.Kind} {r.PayloadText}")));
            Thread.Sleep(500);
        }
    }

    private static JsonElement Payload(JournalRecord r) => JsonDocument.Parse(r.Payload).RootElement;

    private static string TextOf(JournalRecord attached) => Payload(attached).GetProperty("textVa").GetString()!;

    /// <summary>A 64-bit value as the hex of its little-endian bytes (how the journal shows memory).</summary>
    private static string LittleEndianHex(string hexValue)
    {
        var bytes = BitConverter.GetBytes(Convert.ToUInt64(hexValue, 16));
        if (!BitConverter.IsLittleEndian) Array.Reverse(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    private static int Count(List<JournalRecord> records, JournalRecordKind kind) => records.Count(r => r.Kind == kind);

    [Fact]
    public void Tamper_raised_once_QEMU_killed_and_restarted_reattaches_and_reports_the_new_boot()
    {
        _guest = StartGuest();
        // The module is loaded before the baseline: its presence is trusted, its attack is not.
        var (code, output) = _guest.RunCommand("insmod /lib/modules/periscope_tamper.ko && echo loaded", TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
        string db = Path.Combine(_dir, "trusted.db"), key = Path.Combine(_dir, "journal.key");
        var created = CliRun.Run("baseline", "create", "--qemu", _ram, "--qmp", _guest.ToolQmpSocketPath, "--db", db);
        Assert.True(created.Code == 0, created.Err);
        Assert.Equal(0, CliRun.Run("journal", "keygen", "--out", key).Code);

        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "periscope.dll"), "watch", "--qemu", _ram,
            "--qmp", _guest.ToolQmpSocketPath, "--db", db, "--journal", Journal, "--every", "2s", "--key", key, "--sign-every", "5s",
            "--gdb", _guest.GdbSocketPath, "--protect", "syscall-table"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var stdout = new System.Text.StringBuilder();
        _watch = Process.Start(psi)!;
        _watch.OutputDataReceived += (_, e) => { lock (stdout) stdout.AppendLine(e.Data); };
        _watch.ErrorDataReceived += (_, e) => { lock (stdout) stdout.AppendLine("stderr: " + e.Data); };
        _watch.BeginOutputReadLine();
        _watch.BeginErrorReadLine();

        // Attach, then the watchpoints: two appends, so wait for the second.
        var records = WaitFor(r => Count(r, JournalRecordKind.Attached) == 1 && r.Any(x => x.Kind is JournalRecordKind.WatchpointsArmed or JournalRecordKind.WatchpointsFailed),
                              Soon, "first attach with watchpoints armed");
        string firstText = Payload(records.First(r => r.Kind == JournalRecordKind.Attached)).GetProperty("textVa").GetString()!;
        var armed = Assert.Single(records, r => r.Kind == JournalRecordKind.WatchpointsArmed);
        var armedObject = Assert.Single(Payload(armed).GetProperty("objects").EnumerateArray().ToList());
        Assert.Equal("sys_call_table", armedObject.GetProperty("name").GetString());

        // A hook in the syscall table: raised once, with the guest stopped for the confirmation, then left in place
        // for several more sweeps, which must not raise it again.
        var commandStarted = DateTimeOffset.UtcNow;
        (code, output) = _guest.RunCommand("echo syscall 139 > /proc/periscope_tamper && cat /proc/periscope_tamper", TimeSpan.FromSeconds(60));
        var commandReturned = DateTimeOffset.UtcNow;
        Assert.True(code == 0, output);
        // The module's own report: "syscall 139 slot=0x... old=0x... new=0x..."
        var reported = System.Text.RegularExpressions.Regex.Match(output, @"syscall 139 slot=0x([0-9a-f]+) old=0x([0-9a-f]+) new=0x([0-9a-f]+)");
        Assert.True(reported.Success, output);
        records = WaitFor(r => r.Any(x => x.Kind == JournalRecordKind.Finding), Soon, "the syscall hook finding");
        // The watchpoint saw the write as it happened: journalled (guest already continued) within a second of the write,
        // which happened before the command returned.
        var write = Assert.Single(records, r => r.Kind == JournalRecordKind.ProtectedWrite);
        var w = Payload(write);
        Assert.True(write.Time >= commandStarted && write.Time <= commandReturned + TimeSpan.FromSeconds(1),
            $"write record at {write.Time:O}, command ran {commandStarted:O} .. {commandReturned:O}");
        Assert.Equal("sys_call_table[139]", w.GetProperty("location").GetString());
        Assert.Equal($"0x{reported.Groups[1].Value}", w.GetProperty("address").GetString());
        var change = Assert.Single(w.GetProperty("changes").EnumerateArray().ToList());
        Assert.Equal(LittleEndianHex(reported.Groups[2].Value), change.GetProperty("old").GetString());
        Assert.Equal(LittleEndianHex(reported.Groups[3].Value), change.GetProperty("new").GetString());
        Assert.True(w.GetProperty("ripOwner").GetString() == "ListedModule" && w.GetProperty("ripModule").GetString() == "periscope_tamper", w.ToString());
        Assert.Equal("sh", w.GetProperty("comm").GetString()); // the guest shell's builtin echo wrote /proc/periscope_tamper
        Assert.True(w.GetProperty("pid").GetInt32() > 1, w.ToString());
        Assert.Contains("WRITE write to protected sys_call_table[139]", stdout.ToString());
        // The sweep reports the same change once, as a finding that names the watchpoint record.
        var finding = Assert.Single(records, r => r.Kind == JournalRecordKind.Finding);
        Assert.Equal("sys_call_table[139]", Payload(finding).GetProperty("location").GetString());
        Assert.Equal(write.Sequence, Payload(finding).GetProperty("protectedWriteRecord").GetInt64());
        Assert.True(finding.Sequence > write.Sequence);
        long seen = finding.Sequence;
        Thread.Sleep(TimeSpan.FromSeconds(8)); // 4 more sweeps at --every 2s
        records = Records();
        Assert.Single(records, r => r.Kind == JournalRecordKind.Finding);
        Assert.Single(records, r => r.Kind == JournalRecordKind.ProtectedWrite);
        (code, output) = _guest.RunCommand("echo restore > /proc/periscope_tamper", TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
        records = WaitFor(r => r.Any(x => x.Kind == JournalRecordKind.FindingCleared), Soon, "the hook cleared");
        Assert.Single(records, r => r.Kind == JournalRecordKind.FindingCleared);

        // QEMU dies without warning.
        using (var qemu = Process.GetProcessById(_guest.ProcessId)) qemu.Kill();
        WaitFor(r => r.Any(x => x.Kind == JournalRecordKind.Detached), Soon, "detach after QEMU was killed");
        _guest.Dispose();
        _guest = null;

        // QEMU comes back on the same RAM file and sockets: a new boot of the same kernel.
        _guest = StartGuest();
        // The attach record and the new-boot record are two appends: wait for the second when the base moved.
        records = WaitFor(r => Count(r, JournalRecordKind.Attached) == 2 &&
                               (r.Any(x => x.Kind == JournalRecordKind.GuestRebooted) ||
                                TextOf(r.Last(x => x.Kind == JournalRecordKind.Attached)) == firstText),
                          Boot, "re-attach after QEMU restarted");
        string secondText = Payload(records.Last(r => r.Kind == JournalRecordKind.Attached)).GetProperty("textVa").GetString()!;
        if (secondText != firstText)
        {
            var reboot = Assert.Single(records, r => r.Kind == JournalRecordKind.GuestRebooted);
            Assert.Contains($"{firstText} -> {secondText}", Payload(reboot).GetProperty("message").GetString());
            // The old baseline does not match the new boot: said once, not at every sweep.
            records = WaitFor(r => r.Any(x => x.Kind == JournalRecordKind.SweepFailed), Soon, "no baseline for the new boot");
            Thread.Sleep(TimeSpan.FromSeconds(5));
            // Sweeps during the new guest's boot may also fail for other reasons (a walk caught mid-update); each
            // reason is said once until a sweep succeeds, however the failures alternate.
            records = Records();
            var failures = records.Where(r => r.Kind == JournalRecordKind.SweepFailed).Select(r => Payload(r).GetProperty("message").GetString()!).ToList();
            string journal = string.Join('\n', records.Select(r => $"{r.Sequence} {r.Kind} {r.PayloadText}"));
            Assert.True(failures.Count(m => m.Contains("no baseline", StringComparison.Ordinal)) == 1, journal);
            Assert.True(failures.Distinct().Count() == failures.Count, journal);
        }
        else Assert.DoesNotContain(records, r => r.Kind == JournalRecordKind.GuestRebooted); // KASLR chose the same base (rare)

        // SIGTERM: a clean stop.
        using (var kill = Process.Start("kill", ["-TERM", _watch.Id.ToString()])) kill.WaitForExit();
        Assert.True(_watch.WaitForExit(60_000), "watch did not stop on SIGTERM");
        _watch.WaitForExit();
        Assert.True(_watch.ExitCode == 0, $"exit {_watch.ExitCode}; output:\n{stdout}");
        records = Records();
        Assert.Equal(JournalRecordKind.WatchStopped, records[^1].Kind);
        // Its watchpoints removed, watch leaves the guest running as it found it (QEMU's stub had stopped it on connect).
        Assert.Equal("running", _guest.Qmp.QueryStatus());
        Assert.Contains("FINDING CRITICAL", stdout.ToString());
        var verify = CliRun.Run("journal", "verify", "--db", Journal, "--pubkey", key + ".pub", "--json");
        Assert.True(verify.Code == 0, verify.Out + verify.Err);
        Assert.Contains($"\"provenThrough\": {records[^1].Sequence}", verify.Out);
        Assert.True(seen > 0);
    }
}
