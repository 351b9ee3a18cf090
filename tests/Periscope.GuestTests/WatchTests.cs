using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Periscope.Journal;
using Periscope.Qemu;
using Periscope.Tests.Shared;

namespace Periscope.GuestTests;

/// <summary>
/// `periscope watch` as a child process against a real guest, for the whole story in one run (a guest boot
/// is the expensive part): a syscall-table hook is raised once (not at every sweep) and cleared once when undone; QEMU
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
            "--qmp", _guest.ToolQmpSocketPath, "--db", db, "--journal", Journal, "--every", "2s", "--key", key, "--sign-every", "5s"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var stdout = new System.Text.StringBuilder();
        _watch = Process.Start(psi)!;
        _watch.OutputDataReceived += (_, e) => { lock (stdout) stdout.AppendLine(e.Data); };
        _watch.ErrorDataReceived += (_, e) => { lock (stdout) stdout.AppendLine("stderr: " + e.Data); };
        _watch.BeginOutputReadLine();
        _watch.BeginErrorReadLine();

        var records = WaitFor(r => Count(r, JournalRecordKind.Attached) == 1, Soon, "first attach");
        string firstText = Payload(records.First(r => r.Kind == JournalRecordKind.Attached)).GetProperty("textVa").GetString()!;

        // A hook in the syscall table: raised once, with the guest stopped for the confirmation, then left in place
        // for several more sweeps, which must not raise it again.
        (code, output) = _guest.RunCommand("echo syscall 139 > /proc/periscope_tamper && cat /proc/periscope_tamper", TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
        records = WaitFor(r => r.Any(x => x.Kind == JournalRecordKind.Finding), Soon, "the syscall hook finding");
        var finding = Assert.Single(records, r => r.Kind == JournalRecordKind.Finding);
        Assert.Equal("sys_call_table[139]", Payload(finding).GetProperty("location").GetString());
        long seen = finding.Sequence;
        Thread.Sleep(TimeSpan.FromSeconds(8)); // 4 more sweeps at --every 2s
        records = Records();
        Assert.Single(records, r => r.Kind == JournalRecordKind.Finding);
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
            Assert.Single(Records(), r => r.Kind == JournalRecordKind.SweepFailed);
        }
        else Assert.DoesNotContain(records, r => r.Kind == JournalRecordKind.GuestRebooted); // KASLR chose the same base (rare)

        // SIGTERM: a clean stop.
        using (var kill = Process.Start("kill", ["-TERM", _watch.Id.ToString()])) kill.WaitForExit();
        Assert.True(_watch.WaitForExit(60_000), "watch did not stop on SIGTERM");
        _watch.WaitForExit();
        Assert.True(_watch.ExitCode == 0, $"exit {_watch.ExitCode}; output:\n{stdout}");
        records = Records();
        Assert.Equal(JournalRecordKind.WatchStopped, records[^1].Kind);
        Assert.Contains("FINDING CRITICAL", stdout.ToString());
        var verify = CliRun.Run("journal", "verify", "--db", Journal, "--pubkey", key + ".pub", "--json");
        Assert.True(verify.Code == 0, verify.Out + verify.Err);
        Assert.Contains($"\"provenThrough\": {records[^1].Sequence}", verify.Out);
        Assert.True(seen > 0);
    }
}
