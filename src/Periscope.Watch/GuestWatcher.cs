using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Journal;
using Periscope.Linux;
using Periscope.Linux.Btf;
using Periscope.Linux.Discovery;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Qemu;
using Periscope.Targets;

namespace Periscope.Watch;

/// <summary>Which boot of a guest watch is looking at: kernel build and KASLR text base.</summary>
public sealed record BootIdentity(string BuildId, ulong TextVa)
{
    public override string ToString() => $"build {BuildId[..Math.Min(16, BuildId.Length)]}, _text 0x{TextVa:x}";
}

/// <summary>
/// Watches one guest: attaches (RAM file + its own QMP connection), polls QMP for the guest's state and events every
/// <see cref="WatchOptions.Poll"/>, verifies against the baseline every <see cref="WatchOptions.Every"/> without pausing
/// (TargetVerification re-reads differences under QMP stop before they count), and journals what changes: each finding
/// once when it appears and once when it goes away. QEMU going away is a detach; coming back, a re-attach that
/// re-discovers the kernel and says whether this is a new boot.
/// </summary>
public sealed class GuestWatcher(WatchTarget spec, WatchOptions options, WatchRecorder recorder, IWatchMetrics metrics, TextWriter log) : IDisposable
{
    private QmpClient? _qmp;
    private BaselineStore? _store; // opened once (its checks read the whole file), kept across re-attaches
    private Target? _target;
    private IGuestEventSource? _events;
    private SharedStopControl? _control;
    private ProtectedWriteMonitor? _protect;
    private BootIdentity? _boot;
    private DateTime _nextSweep = DateTime.MinValue;
    private string? _lastAttachFailure, _lastIncomplete;
    // Each distinct reason a sweep could not run is journalled once until a sweep succeeds again: a guest whose
    // failures alternate (a walk caught mid-update during boot, then the missing baseline, and so on) must not add a
    // record at every sweep. Bounded: a guest that invents a new failure text each sweep is said to do so once.
    private readonly HashSet<string> _sweepFailuresSinceSuccess = new(StringComparer.Ordinal);
    private const int MaxDistinctSweepFailures = 16;
    private bool _everAttached;
    private readonly Dictionary<string, Finding> _raised = new(StringComparer.Ordinal);
    private readonly List<GuestEvent> _eventBuffer = [];
    private const int MaxEventsPerPoll = 100_000;

    public WatchTarget Spec => spec;
    public bool IsAttached => _target is not null;
    public BootIdentity? Boot => _boot;
    /// <summary>Findings raised and not cleared, by key.</summary>
    public IReadOnlyCollection<string> RaisedKeys => _raised.Keys;
    /// <summary>The --protect watchpoint handler while attached with it armed.</summary>
    public ProtectedWriteMonitor? Protection => _protect;

    public void Run(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try { Step(); }
            catch (Exception e) when (IsGuestGone(e))
            {
                Detach($"lost the guest: {e.Message}");
            }
            catch (Exception e) when (!IsJournalFailure(e))
            {
                // A monitor left running for weeks must survive one bad read of a guest (mid-boot, hostile): say what
                // happened, drop the target and attach afresh on the next poll. The journal failing is not survivable.
                log.WriteLine($"periscope watch: [{spec.Name}] internal error, re-attaching: {e.GetType().Name}: {e.Message}");
                Detach($"re-attaching after an error: {e.GetType().Name}: {e.Message}");
            }
            stop.WaitHandle.WaitOne(options.Poll);
        }
        if (_target is not null) Detach("watch stopping", record: false);
    }

    /// <summary>One poll: attach if needed, take QMP events, drain guest events, sweep when due.</summary>
    public void Step()
    {
        if (_target is null && !TryAttach()) return;
        string status = _qmp!.QueryStatus(); // also collects pending events; throws when QEMU is gone
        foreach (var e in _qmp.TakeEvents()) OnQmpEvent(e);
        if (_target is null) return; // an event (reset) dropped the target: re-attach on the next poll
        DrainGuestEvents();
        if (DateTime.UtcNow >= _nextSweep && status is "running" or "paused")
        {
            _nextSweep = DateTime.UtcNow + options.Every;
            Sweep(reason: null);
        }
    }

    private bool TryAttach()
    {
        try
        {
            if (!File.Exists(spec.RamFile)) throw new IOException($"{spec.RamFile}: RAM file not present (QEMU not running?)");
            _qmp = QmpClient.Connect(spec.QmpSocket, TimeSpan.FromSeconds(10), options.Limits.MaxQmpLineBytes);
            _control = new SharedStopControl(_qmp);
            _target = Target.AttachLive(spec.RamFile, _control, new TargetOptions { Limits = options.Limits });
            var kernel = _target.Kernel;
            var boot = new BootIdentity(KernelIdentity.BuildId(kernel), kernel.Layout.TextVa);
            _lastAttachFailure = null;
            metrics.Attached(spec.Name, true);
            recorder.Record(spec.Name, JournalRecordKind.Attached, $"attached: {boot} ({kernel.Banner.Trim()})", w =>
            {
                w.WriteString("buildId", boot.BuildId);
                w.WriteString("textVa", $"0x{boot.TextVa:x}");
                w.WriteString("ram", spec.RamFile);
            });
            if (_boot is not null && _boot != boot) OnNewBoot(_boot, boot);
            _boot = boot;
            _everAttached = true;
            _nextSweep = DateTime.MinValue;
            _events = options.EventSources?.Invoke(spec);
            if (options.Protect.Count > 0) ArmWatchpoints();
            return true;
        }
        catch (Exception e) when (!IsJournalFailure(e))
        {
            // Gone, still booting (no kernel yet), or unreadable: try again on the next poll.
            CloseTarget();
            metrics.Attached(spec.Name, false);
            // Once per distinct reason: a guest that stays away for an hour is one line, not 3,600.
            string why = e.Message;
            if (why != _lastAttachFailure)
            {
                _lastAttachFailure = why;
                log.WriteLine($"periscope watch: [{spec.Name}] not attached: {why}");
            }
            return false;
        }
    }

    private void ArmWatchpoints()
    {
        var missing = new List<string>();
        try
        {
            if (spec.GdbSocket is null) throw new InvalidOperationException("no GDB stub socket for this guest (--gdb, or a 4th field in --target/--config)");
            string status = _qmp!.QueryStatus();
            _protect = ProtectedWriteMonitor.Start(spec, options.Protect, status, _control!.Gate, options, recorder, log, missing);
        }
        catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException or Periscope.Qemu.Gdb.GdbProtocolException
                                      or System.Net.Sockets.SocketException || IsGuestUnreadable(e))
        {
            recorder.Record(spec.Name, JournalRecordKind.WatchpointsFailed, $"--protect: watchpoints not armed: {e.Message}");
            return;
        }
        var objects = _protect.Objects;
        recorder.Record(spec.Name, JournalRecordKind.WatchpointsArmed,
            $"write watchpoints armed on {string.Join(", ", objects.Select(o => $"{o.Name} (0x{o.Start:x}, {o.Length} bytes)"))}"
            + (missing.Count > 0 ? $"; not armed: {string.Join("; ", missing)}" : ""), w =>
            {
                w.WriteStartArray("objects");
                foreach (var o in objects)
                {
                    w.WriteStartObject();
                    w.WriteString("name", o.Name);
                    w.WriteString("kind", o.Kind.ToString());
                    w.WriteString("start", $"0x{o.Start:x}");
                    w.WriteNumber("length", o.Length);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("missing");
                foreach (var m in missing) w.WriteStringValue(m);
                w.WriteEndArray();
            });
    }

    private void OnNewBoot(BootIdentity before, BootIdentity now)
    {
        // Findings of the previous boot belong to it; the new boot starts from nothing raised.
        _raised.Clear();
        _sweepFailuresSinceSuccess.Clear();
        _lastIncomplete = null;
        recorder.Record(spec.Name, JournalRecordKind.GuestRebooted,
            $"new boot: kernel {(before.BuildId == now.BuildId ? "build unchanged" : "build changed")}, _text 0x{before.TextVa:x} -> 0x{now.TextVa:x} (KASLR); {(options.RebaselineOnBoot ? "taking a new trusted baseline (--rebaseline-on-boot)" : "the baseline of the previous boot no longer matches; take a new one, or run with --rebaseline-on-boot")}",
            w =>
            {
                w.WriteString("previousBuildId", before.BuildId);
                w.WriteString("previousTextVa", $"0x{before.TextVa:x}");
                w.WriteString("buildId", now.BuildId);
                w.WriteString("textVa", $"0x{now.TextVa:x}");
            });
        if (options.RebaselineOnBoot) Rebaseline();
    }

    private void Rebaseline()
    {
        var target = _target!;
        var store = Store(BaselineOpenMode.CreateIfMissing);
        BaselineSummary summary;
        int codePages;
        using (target.Pause())
        {
            target.Kernel.Refresh();
            summary = BaselineRecorder.Record(target.Kernel, store, $"watch {spec.Name}: {target.Description}");
            var sweep = ProcessCodeMeasurer.Sweep(target.Kernel);
            codePages = store.AddCodePages(sweep.Pages.Select(p => (p.File, p.FileOffset, p.Sha256)), "first use at baseline (watch --rebaseline-on-boot)");
            store.AddAnonymousCode(summary.Id, sweep.Anonymous.Select(a => a.Key));
        }
        recorder.Record(spec.Name, JournalRecordKind.Rebaselined,
            $"new trusted baseline {summary.Id}: {summary.Regions} regions, {summary.Pages} pages, {codePages} process code pages", w =>
            {
                w.WriteNumber("baseline", summary.Id);
                w.WriteNumber("regions", summary.Regions);
                w.WriteNumber("pages", summary.Pages);
            });
    }

    private void OnQmpEvent(JsonObject e)
    {
        string name = e["event"]?.GetValue<string>() ?? "?";
        switch (name)
        {
            case "GUEST_PANICKED":
                string action = (e["data"] as JsonObject)?["action"]?.GetValue<string>() ?? "?";
                var last = Sweep(reason: "guest panicked");
                recorder.Record(spec.Name, JournalRecordKind.GuestPanicked,
                    $"guest panicked (action {action}); last verification: {Describe(last)}", w =>
                    {
                        w.WriteString("action", action);
                        w.WriteString("lastVerification", last?.ToString().ToLowerInvariant() ?? "failed");
                        w.WriteNumber("findingsRaised", _raised.Count);
                    });
                break;
            case "RESET":
                // A reboot inside the same QEMU: the kernel will be a new one (new KASLR); discover it afresh.
                recorder.Record(spec.Name, JournalRecordKind.Detached, "guest reset (reboot): re-discovering the kernel");
                CloseTarget();
                metrics.Attached(spec.Name, false);
                break;
            case "SHUTDOWN":
                log.WriteLine($"periscope watch: [{spec.Name}] guest shut down");
                break;
        }
    }

    private static string Describe(SweepOutcome? o) => o switch
    {
        SweepOutcome.Clean => "no differences",
        SweepOutcome.Findings => "findings present (see the findings raised)",
        SweepOutcome.Incomplete => "no differences in what could be checked (incomplete)",
        _ => "could not verify",
    };

    /// <summary>One verification; journals new and cleared findings. Null when it could not run.</summary>
    public SweepOutcome? Sweep(string? reason)
    {
        var target = _target;
        if (target is null) return null;
        var clock = Stopwatch.StartNew();
        TargetVerificationResult verified;
        try
        {
            target.Kernel.Refresh();
            verified = TargetVerification.Verify(target, Store(BaselineOpenMode.Existing));
        }
        catch (Exception e) when (IsGuestUnreadable(e) || e is BaselineFormatException or Periscope.Integrity.Evidence.EvidenceFormatException
                                      || e is InvalidOperationException && e.Message.StartsWith("no baseline", StringComparison.Ordinal))
        {
            metrics.Sweep(spec.Name, clock.Elapsed, SweepOutcome.Failed);
            if (e is BaselineFormatException) { _store?.Dispose(); _store = null; }
            if (_sweepFailuresSinceSuccess.Count < MaxDistinctSweepFailures && _sweepFailuresSinceSuccess.Add(e.Message))
                recorder.Record(spec.Name, JournalRecordKind.SweepFailed, _sweepFailuresSinceSuccess.Count == MaxDistinctSweepFailures
                    ? $"verification failed: {e.Message} (further distinct failures are not journalled until a sweep succeeds)"
                    : $"verification failed: {e.Message}");
            return SweepOutcome.Failed;
        }
        _sweepFailuresSinceSuccess.Clear();
        var result = verified.Result;
        var now = new Dictionary<string, Finding>(StringComparer.Ordinal);
        foreach (var f in result.Findings) now.TryAdd(Key(f), f);
        foreach (var (key, f) in now)
        {
            if (_raised.ContainsKey(key)) continue;
            _raised[key] = f;
            if (f.Severity != Severity.Info) metrics.FindingRaised(spec.Name, f.Severity);
            RecordFinding(f, reason);
        }
        foreach (var key in _raised.Keys.Where(k => !now.ContainsKey(k)).ToList())
        {
            var gone = _raised[key];
            _raised.Remove(key);
            recorder.Record(spec.Name, JournalRecordKind.FindingCleared, $"no longer present: {gone.Classification.Text()}: {gone.Location} at 0x{gone.VirtualAddress:x} in {gone.Region}",
                w => w.WriteString("key", key));
        }
        string incomplete = string.Join("; ", result.Incomplete);
        if (incomplete.Length > 0 && incomplete != _lastIncomplete)
            recorder.Record(spec.Name, JournalRecordKind.SweepIncomplete, $"incomplete: {incomplete}", w =>
            {
                w.WriteStartArray("reasons");
                foreach (var r in result.Incomplete) w.WriteStringValue(r);
                w.WriteEndArray();
            });
        _lastIncomplete = incomplete.Length > 0 ? incomplete : null;
        var outcome = result.Findings.Any(f => f.Severity != Severity.Info) ? SweepOutcome.Findings
            : result.Incomplete.Count > 0 ? SweepOutcome.Incomplete : SweepOutcome.Clean;
        metrics.Sweep(spec.Name, clock.Elapsed, outcome);
        return outcome;
    }

    /// <summary>What makes two sightings of a difference the same finding: where it is and what kind it is.</summary>
    public static string Key(Finding f) => $"{f.Classification.JsonName()}|{f.Region}|{f.Location}|0x{f.VirtualAddress:x}";

    private void RecordFinding(Finding f, string? reason)
    {
        string line = $"{f.Severity.ToString().ToUpperInvariant()} {f.Classification.Text()}: {f.Location} at 0x{f.VirtualAddress:x} in {f.Region}"
                      + (f.Found.Length > 0 ? $"; found {Convert.ToHexStringLower(f.Found.AsSpan(0, Math.Min(32, f.Found.Length)))}" : "")
                      + (f.Destination is { } d ? $"; now goes to 0x{d.Address:x} ({d.Description})" : "")
                      + (reason is not null ? $" ({reason})" : "");
        recorder.Record(spec.Name, JournalRecordKind.Finding, line, w =>
        {
            w.WriteString("key", Key(f));
            w.WriteString("severity", f.Severity.ToString().ToLowerInvariant());
            w.WriteString("classification", f.Classification.JsonName());
            w.WriteString("region", f.Region);
            w.WriteString("location", f.Location);
            w.WriteString("address", $"0x{f.VirtualAddress:x}");
            w.WriteString("expected", Convert.ToHexStringLower(f.Expected));
            w.WriteString("found", Convert.ToHexStringLower(f.Found));
            if (f.Destination is { } dest)
            {
                w.WriteString("destination", $"0x{dest.Address:x}");
                w.WriteString("destinationOwner", dest.Owner.ToString());
                w.WriteString("destinationModule", dest.Module?.Name);
            }
            w.WriteString("detail", f.Detail);
            // The same change caught as it happened by a --protect watchpoint: its record, so the two are one story.
            if (_protect?.WritesByLocation.TryGetValue(f.Location, out long write) == true) w.WriteNumber("protectedWriteRecord", write);
        });
    }

    private void DrainGuestEvents()
    {
        if (_events is null) return;
        _eventBuffer.Clear();
        int n = _events.Drain(_eventBuffer, MaxEventsPerPoll);
        if (n > 0)
            recorder.RecordBatch(_eventBuffer.Select(e => (JournalRecordKind.GuestEvent,
                WatchRecorder.Payload(spec.Name, e.Kind, w => { w.WriteString("time", e.Time.ToString("O")); w.WritePropertyName("event"); w.WriteRawValue(e.Detail); }))).ToList());
        metrics.Events(spec.Name, n, _events.Dropped);
    }

    /// <summary>
    /// Removes the watchpoints and leaves the guest as it found it: QEMU's stub stopped the guest when watch connected,
    /// and a guest that ran before the detach was seen still stopped after it (a bench round hung on a paused guest), so
    /// a guest running before is resumed through QMP when it is not running after. A guest an operator paused stays so.
    /// </summary>
    private void StopProtecting()
    {
        if (_protect is null) return;
        string? before = null;
        try { before = _qmp?.QueryStatus(); } catch (Exception e) when (e is IOException or TimeoutException or QmpException or ObjectDisposedException) { }
        _protect.Dispose();
        _protect = null;
        try
        {
            if (before is "running" && _qmp?.QueryStatus() is "paused" or "debug") _qmp.Continue();
        }
        catch (Exception e) when (e is IOException or TimeoutException or QmpException or ObjectDisposedException) { }
    }

    private void Detach(string why, bool record = true)
    {
        bool was = _target is not null || _qmp is not null;
        CloseTarget();
        metrics.Attached(spec.Name, false);
        if (was && record && _everAttached) recorder.Record(spec.Name, JournalRecordKind.Detached, why);
    }

    private void CloseTarget()
    {
        StopProtecting();
        _events?.Dispose();
        _events = null;
        _target?.Dispose();
        _target = null;
        _qmp?.Dispose();
        _qmp = null;
        _control = null;
    }

    private static bool IsJournalFailure(Exception e) => e is JournalFormatException or Microsoft.Data.Sqlite.SqliteException;

    /// <summary>QEMU went away or does not answer: detach and try again later.</summary>
    private static bool IsGuestGone(Exception e) => e is IOException or TimeoutException or QmpException or UnauthorizedAccessException
        or System.Net.Sockets.SocketException or ObjectDisposedException;

    /// <summary>The guest's memory does not (yet) hold a kernel we can read: booting, or hostile.</summary>
    private static bool IsGuestUnreadable(Exception e) => e is KernelNotFoundException or KernelModelException or BtfFormatException or MemoryFormatException
        or IOException or TimeoutException or QmpException
        || e is KeyNotFoundException or InvalidOperationException && e.StackTrace?.TrimStart().StartsWith("at Periscope.", StringComparison.Ordinal) == true;

    private BaselineStore Store(BaselineOpenMode mode) => _store ??= BaselineStore.Open(options.BaselineDb, mode, options.Limits);

    public void Dispose()
    {
        CloseTarget();
        _store?.Dispose();
    }
}
