using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Periscope.Journal;
using Periscope.Memory;
using Periscope.Watch;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope watch --qemu RAM --qmp SOCK --db BASELINE --journal FILE [--every 10s] [--key KEY] [--gdb SOCK --protect LIST]`: a long-running
/// monitor of one or more live guests. Findings go to the journal (committed first) and then to stdout, one line each;
/// diagnostics go to stderr. Exit codes for a supervisor: 0 stopped on SIGINT/SIGTERM (head signed), 2 bad usage or
/// input, or the journal became unwritable; with --stop-after (a bounded run) the verify scheme: 1 findings raised,
/// 3 sweeps incomplete, 0 clean.
/// </summary>
public sealed class WatchCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var db = BaselineCommand.DbOption();
        var journal = new Option<string>("--journal") { Description = "Journal file (SQLite, created if missing)", Required = true };
        var every = new Option<string>("--every") { Description = "Time between verification sweeps (e.g. 10s, 500ms, 2m)", DefaultValueFactory = _ => "10s" };
        var key = new Option<string?>("--key") { Description = "Private key (journal keygen) that signs the chain head periodically and at stop" };
        var signEvery = new Option<string>("--sign-every") { Description = "Time between periodic signed heads", DefaultValueFactory = _ => "60s" };
        var targets = new Option<string[]>("--target") { Description = "A guest as NAME=RAMFILE,QMPSOCKET[,GDBSOCKET] (repeatable)", AllowMultipleArgumentsPerToken = false };
        var config = new Option<string?>("--config") { Description = "File of targets, one per line: NAME RAMFILE QMPSOCKET" };
        var rebaseline = new Option<bool>("--rebaseline-on-boot") { Description = "On a new boot of a guest (new KASLR), take a new trusted baseline (off: only report it)" };
        var metrics = new Option<string?>("--metrics") { Description = "Serve Prometheus metrics at HOST:PORT/metrics (e.g. 127.0.0.1:9464)" };
        var stopAfter = new Option<string?>("--stop-after") { Description = "Stop by itself after this long (a bounded run; exit code as verify)" };
        var protect = new Option<string?>("--protect") { Description = $"Arm write watchpoints on kernel objects through QEMU's GDB stub: {string.Join(",", ProtectedObjects.Names.Keys)}" };
        var gdb = new Option<string?>("--gdb") { Description = "QEMU's GDB stub socket (-gdb unix:PATH,server=on,wait=off), for --protect with --qemu" };
        var command = new Command("watch", "Monitor live guests: periodic verification against the baseline, findings to a tamper-evident journal")
        {
            db, journal, every, key, signEvery, targets, config, rebaseline, metrics, stopAfter, protect, gdb,
        };
        command.SetAction(r =>
        {
            var limits = IntrospectionLimits.Default;
            var list = Targets(context, r, r.GetValue(targets) ?? [], r.GetValue(config), r.GetValue(gdb), limits);
            IReadOnlyList<ProtectedObjectKind> protectedKinds = [];
            if (r.GetValue(protect) is { } p)
            {
                try { protectedKinds = ProtectedObjects.ParseList(p); }
                catch (ArgumentException e) { throw new CliUsageException(e.Message); }
                if (list.FirstOrDefault(t => t.GdbSocket is null) is { } noStub)
                    throw new CliUsageException($"--protect needs QEMU's GDB stub for every guest: --gdb SOCKET with --qemu, NAME=RAM,QMP,GDB with --target, a 4th field in --config (missing for '{noStub.Name}')");
            }
            var options = new WatchOptions
            {
                BaselineDb = r.GetValue(db)!, Every = Duration(r.GetValue(every)!, "--every"), SignEvery = Duration(r.GetValue(signEvery)!, "--sign-every"),
                RebaselineOnBoot = r.GetValue(rebaseline), Limits = limits, Protect = protectedKinds,
            };
            if (!File.Exists(options.BaselineDb)) throw new CliUsageException($"{options.BaselineDb}: no such baseline database (record one with `periscope baseline create`)");
            using var signing = r.GetValue(key) is { } k ? JournalSigningKey.Load(k, limits) : null;
            using var store = JournalStore.Open(r.GetValue(journal)!, JournalOpenMode.Append, limits);
            using var prometheus = r.GetValue(metrics) is { } m ? StartMetrics(m) : null;
            if (signing is null) context.Error.WriteLine("periscope watch: warning: no --key: chain heads are not signed, so a rewrite of the whole journal cannot be told apart");

            using var cts = new CancellationTokenSource();
            if (r.GetValue(stopAfter) is { } s) cts.CancelAfter(Duration(s, "--stop-after"));
            bool signalled = false;
            void OnSignal(PosixSignalContext c) { c.Cancel = true; signalled = true; cts.Cancel(); }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

            var service = new WatchService(list, options, store, signing, (IWatchMetrics?)prometheus ?? NoMetrics.Instance, context.Output, context.Error);
            long before = store.LastSequence;
            service.Run(cts.Token);
            if (service.Failed is { } failed) throw new IOException($"journal {store.Path}: {failed.Message}", failed);
            context.Error.WriteLine($"periscope watch: stopped; journal {store.Path} holds records 1..{store.LastSequence} ({store.LastSequence - before} this run)");
            if (signalled) return 0;
            var kinds = store.Records(before + 1).Select(x => x.Kind).ToList();
            return kinds.Contains(JournalRecordKind.Finding) || kinds.Contains(JournalRecordKind.ProtectedWrite) ? VerifyCommand.Findings
                : kinds.Contains(JournalRecordKind.SweepIncomplete) || kinds.Contains(JournalRecordKind.SweepFailed) ? VerifyCommand.Incomplete : VerifyCommand.Clean;
        });
        return command;
    }

    private static List<WatchTarget> Targets(CommandContext context, ParseResult r, string[] specs, string? config, string? gdb, IntrospectionLimits limits)
    {
        var list = new List<WatchTarget>();
        string? ram = r.GetValue(context.Options.Qemu), qmp = r.GetValue(context.Options.Qmp);
        if (r.GetValue(context.Options.Dump) is not null) throw new CliUsageException("watch monitors live guests: use --qemu RAMFILE --qmp SOCKET, --target or --config, not --dump");
        if (ram is not null)
        {
            if (qmp is null) throw new CliUsageException("watch needs --qmp SOCKET with --qemu: differences are confirmed with the guest stopped through QMP");
            list.Add(new WatchTarget("guest", ram, qmp, gdb));
        }
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('='), comma = spec.IndexOf(',', Math.Max(eq, 0));
            if (eq <= 0 || comma < 0) throw new CliUsageException($"--target {spec}: expected NAME=RAMFILE,QMPSOCKET[,GDBSOCKET]");
            string rest = spec[(comma + 1)..];
            int second = rest.IndexOf(',');
            list.Add(second < 0 ? new WatchTarget(spec[..eq], spec[(eq + 1)..comma], rest)
                : new WatchTarget(spec[..eq], spec[(eq + 1)..comma], rest[..second], rest[(second + 1)..]));
        }
        if (config is not null) list.AddRange(WatchTarget.ParseConfig(config, limits));
        if (list.Count == 0) throw new CliUsageException("say which guests to watch: --qemu RAMFILE --qmp SOCKET, --target NAME=RAMFILE,QMPSOCKET or --config FILE");
        if (list.Count > limits.MaxWatchTargets) throw new CliUsageException($"{list.Count} targets, more than {limits.MaxWatchTargets} (IntrospectionLimits.MaxWatchTargets)");
        if (list.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1) is { } dup) throw new CliUsageException($"target name '{dup.Key}' used twice");
        return list;
    }

    private static PrometheusWatchMetrics StartMetrics(string endpoint)
    {
        int colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new CliUsageException($"--metrics {endpoint}: expected HOST:PORT, e.g. 127.0.0.1:9464");
        try { return new PrometheusWatchMetrics(endpoint[..colon], port); }
        catch (System.Net.HttpListenerException e) { throw new IOException($"--metrics {endpoint}: cannot listen: {e.Message}", e); }
    }

    /// <summary>"10s", "500ms", "2m", "1h" or plain seconds.</summary>
    public static TimeSpan Duration(string text, string option)
    {
        var t = text.Trim();
        (string digits, double unit) = t.EndsWith("ms", StringComparison.Ordinal) ? (t[..^2], 0.001)
            : t.EndsWith('s') ? (t[..^1], 1) : t.EndsWith('m') ? (t[..^1], 60) : t.EndsWith('h') ? (t[..^1], 3600) : (t, 1);
        if (!double.TryParse(digits, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) || v * unit < 0.01 || v * unit > 86_400 * 366)
            throw new CliUsageException($"{option} {text}: expected a duration such as 10s, 500ms or 2m (10 ms to a year)");
        return TimeSpan.FromSeconds(v * unit);
    }
}
