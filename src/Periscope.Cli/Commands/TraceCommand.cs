using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Events;
using Periscope.Events.Ring;
using Periscope.Events.Tasks;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope trace syscalls|exec --qemu RAM [--ring RING]`: live guest events from the QEMU trace plugin's ring
/// (QEMU started with -plugin libperiscope-trace.so,ring=RING,ram=RAM). Human output reads like strace -f; --json
/// writes one JSON object per line and a totals line at the end. Exit 0, or 3 when events were lost.
/// </summary>
public sealed class TraceCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var trace = new Command("trace", "Live guest events captured in QEMU by the Periscope trace plugin (syscalls, process starts)");
        trace.Subcommands.Add(BuildSyscalls(context));
        trace.Subcommands.Add(BuildExec(context));
        return trace;
    }

    private sealed class CommonTraceOptions
    {
        public Option<string?> Ring { get; } = new("--ring") { Description = "The plugin's ring file (default: the RAM file's path + \".ring\")" };
        public Option<int?> Pid { get; } = new("--pid") { Description = "Only this process (its tgid) and its threads" };
        public Option<string?> Comm { get; } = new("--comm") { Description = "Only tasks with this comm" };
        public Option<long?> Limit { get; } = new("--limit") { Description = "Stop after this many events" };
        public Option<double?> Seconds { get; } = new("--seconds") { Description = "Stop after this many seconds" };
        public Option<bool> Measure { get; } = new("--measure") { Description = "Measure each started process's resident code pages against the baseline (--db) after exec and at its later syscalls" };
        public Option<string?> Db { get; } = new("--db") { Description = "Trusted-state database for --measure (SQLite; pages seen first are recorded, trust on first use)" };
        public Option<bool> Backlog { get; } = new("--backlog") { Description = "Also show events already waiting in the ring (from before this trace; their task may be unknown)" };

        public void AddTo(Command c)
        {
            c.Options.Add(Ring);
            c.Options.Add(Pid);
            c.Options.Add(Comm);
            c.Options.Add(Limit);
            c.Options.Add(Seconds);
            c.Options.Add(Backlog);
        }
    }

    private static Command BuildSyscalls(CommandContext context)
    {
        var o = new CommonTraceOptions();
        var command = new Command("syscalls", "Every guest syscall: time, vCPU, pid/tid, comm, name, decoded arguments, return value");
        o.AddTo(command);
        command.SetAction(r => Run(context, r, o, jsonLines: context.Json(r), exec: false));
        return command;
    }

    private static Command BuildExec(CommandContext context)
    {
        var o = new CommonTraceOptions();
        var command = new Command("exec", "Process starts (successful execve/execveat), forks and exits: pid, parent, path, argv, uid");
        o.AddTo(command);
        command.Options.Add(o.Measure);
        command.Options.Add(o.Db);
        command.SetAction(r => Run(context, r, o, jsonLines: context.Json(r), exec: true));
        return command;
    }

    private static int Run(CommandContext context, ParseResult r, CommonTraceOptions o, bool jsonLines, bool exec)
    {
        string ram = r.GetValue(context.Options.Qemu) ?? throw new CliUsageException("trace needs a live guest: --qemu RAMFILE (and the plugin on QEMU's command line)");
        string ringPath = r.GetValue(o.Ring) ?? ram + ".ring";
        // The ring first: a missing plugin is the likely mistake, and costs nothing to report.
        using var ring = TraceRingReader.Open(ringPath);
        using var target = context.OpenTarget(r);
        var limits = target.Limits;
        var tracer = new SyscallTracer(ring, target.Kernel, limits, r.GetValue(o.Backlog));
        int? pid = r.GetValue(o.Pid);
        string? comm = r.GetValue(o.Comm);
        tracer.Filter = t => (pid is null || t.Tgid == pid) && (comm is null || t.Comm == comm);
        bool measure = exec && r.GetValue(o.Measure);
        string? dbPath = r.GetValue(o.Db);
        if (measure && dbPath is null) throw new CliUsageException("--measure needs --db FILE (the baseline's code-page references)");
        using var store = measure ? Periscope.Integrity.Baselines.BaselineStore.Open(dbPath!, Periscope.Integrity.Baselines.BaselineOpenMode.CreateIfMissing) : null;
        using var measurer = store is null ? null : new Periscope.Events.Measurement.ExecCodeMeasurer(target.Kernel, store, limits);
        long findings = 0;
        if (exec && !measure) tracer.Calls = ProcessTracker.Wants;
        long limit = r.GetValue(o.Limit) ?? long.MaxValue;
        if (limit < 1) throw new CliUsageException("--limit must be at least 1");
        double? seconds = r.GetValue(o.Seconds);
        var clock = Stopwatch.StartNew();
        long firstTimestamp = 0;
        long shown = 0;
        var tracker = new ProcessTracker(limits.MaxTracedTasks, tracer.Tasks);
        using var batch = TraceOutputBatch.ForCommandOutput(context.Output);
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            void Show(SyscallEvent e)
            {
                if (shown >= limit) return;
                if (firstTimestamp == 0) firstTimestamp = e.Timestamp;
                long ticks = e.Timestamp - firstTimestamp;
                double t = ticks / (double)Stopwatch.Frequency;
                if (exec)
                {
                    var p = ProcessTracker.Wants(e.Name) ? tracker.Observe(e) : null;
                    if (measurer is not null)
                    {
                        var found = p is { Kind: ProcessEventKind.Exec } && (e.ExitTask ?? e.Task) is { } started ? measurer.OnExec(started, e.Timestamp) : measurer.OnSyscall(e);
                        foreach (var f in found)
                        {
                            findings++;
                            if (jsonLines) { WriteFinding(batch.BeginJsonLine(), f, t); batch.EndJsonLine(); }
                            else batch.Line(FindingLine(f, t));
                        }
                    }
                    if (p is null) return;
                    shown++;
                    if (jsonLines) { WriteProcess(batch.BeginJsonLine(), p, t); batch.EndJsonLine(); }
                    else batch.Line(ProcessLine(p, t));
                    return;
                }
                shown++;
                if (jsonLines) TraceSyscallLines.WriteJson(batch.Bytes, e, t);
                else TraceSyscallLines.WriteText(batch.Bytes, e, ticks, Stopwatch.Frequency);
                batch.EndLine();
            }
            if (target.Kernel.Layout.PageOffsetBase is null)
                context.Error.WriteLine("periscope: warning: direct map not found: the calling task is read when the event is decoded, not when it happened");
            tracer.Run(Show, () => shown >= limit || (seconds is { } s && clock.Elapsed.TotalSeconds >= s), cancel.Token, batch.Flush);
            tracer.DrainOnce(Show);   // what arrived while stopping
            if (!exec) foreach (var e in tracer.Unfinished) Show(e);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            batch.Flush();
        }
        var totals = tracer.Totals;
        var rt = totals.Ring;
        if (measurer is { } m)
        {
            int recorded = m.Flush();
            var c = m.Counts;
            if (jsonLines)
                context.Output.WriteLine($"{{\"measurement\":{{\"processes\":{c.Processes},\"measured\":{c.Measured},\"skipped\":{c.Skipped},\"caughtUp\":{c.CaughtUp},\"firstSeen\":{c.FirstSeen},\"recorded\":{recorded},\"findings\":{findings}}}}}");
            else
                context.Error.WriteLine($"periscope: code pages: {c.Measured} measured, {c.Skipped} skipped (not resident), {c.CaughtUp} caught up later, {c.FirstSeen} seen first (recorded {recorded}); {findings} modified");
        }
        if (jsonLines)
            context.Output.WriteLine($"{{\"totals\":{{\"produced\":{rt.Produced},\"delivered\":{rt.Delivered},\"dropped\":{rt.Dropped},\"gaps\":{rt.Gaps},\"events\":{totals.Events},\"shown\":{shown},\"unknownTask\":{totals.UnknownTask},\"unmatchedExits\":{totals.UnmatchedExits}}}}}");
        else
            context.Error.WriteLine($"periscope: {rt.Produced} produced, {rt.Delivered} delivered, {rt.Dropped} dropped, {rt.Gaps} gaps; {totals.Events} syscalls decoded, {shown} shown, {totals.UnknownTask} with no known task, {totals.UnmatchedExits} returns without entry; names from {tracer.Names.Source}");
        if (findings > 0) return 1;
        return rt.Dropped > 0 || rt.Gaps > 0 ? 3 : 0;
    }

    private static string Who(TracedTask? t) =>
        t is null ? "[pid     ?]" : $"[pid {t.Tgid,5}{(t.Pid != t.Tgid ? $"/{t.Pid}" : "")} {TerminalText.Escape(t.Comm)}]";

    internal static string ProcessLine(ProcessEvent p, double seconds)
    {
        string who = $"pid {p.Pid} ppid {p.ParentPid} uid {(p.Uid is { } u ? u.ToString() : "?")} {TerminalText.Escape(p.Comm)}";
        return p.Kind switch
        {
            ProcessEventKind.Exec => $"{seconds,10:F6} EXEC {who} {TerminalText.Escape(p.Path ?? "?")} [{string.Join(", ", (p.Argv ?? []).Select(a => TerminalText.Escape(Periscope.Events.Syscalls.SyscallFormatter.Quote(a))))}]",
            ProcessEventKind.Fork => $"{seconds,10:F6} FORK {who}",
            _ => $"{seconds,10:F6} EXIT {who} code {p.ExitCode}",
        };
    }

    internal static string FindingLine(Periscope.Events.Measurement.CodePageFinding f, double seconds) =>
        $"{seconds,10:F6} MODIFIED pid {f.Pid} {TerminalText.Escape(f.Comm)} {TerminalText.Escape(f.File)}+0x{f.FileOffset:x} at 0x{f.VirtualAddress:x} (physical 0x{f.PhysicalAddress:x}): sha256 {Convert.ToHexStringLower(f.Found)[..16]}…, {TerminalText.Escape(f.ReferenceSource)} reference {Convert.ToHexStringLower(f.Expected)[..16]}…";

    internal static string FindingJson(Periscope.Events.Measurement.CodePageFinding f, double seconds) => Line(w => WriteFinding(w, f, seconds));

    private static void WriteFinding(Utf8JsonWriter w, Periscope.Events.Measurement.CodePageFinding f, double seconds)
    {
        w.WriteNumber("time", Math.Round(seconds, 6));
        w.WriteString("event", "modified");
        w.WriteNumber("pid", f.Pid);
        w.WriteString("comm", f.Comm);
        w.WriteString("file", f.File);
        w.Address("fileOffset", f.FileOffset);
        w.Address("address", f.VirtualAddress);
        w.Address("physical", f.PhysicalAddress);
        w.WriteString("expected", Convert.ToHexStringLower(f.Expected));
        w.WriteString("found", Convert.ToHexStringLower(f.Found));
        w.WriteString("reference", f.ReferenceSource);
    }

    private static readonly JsonWriterOptions s_lineJson = new() { Indented = false, Encoder = JavaScriptEncoder.Default };

    private static string Line(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, s_lineJson))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    internal static string ProcessJson(ProcessEvent p, double seconds) => Line(w => WriteProcess(w, p, seconds));

    private static void WriteProcess(Utf8JsonWriter w, ProcessEvent p, double seconds)
    {
        w.WriteNumber("time", Math.Round(seconds, 6));
        w.WriteString("event", p.Kind.ToString().ToLowerInvariant());
        w.WriteNumber("vcpu", p.Vcpu);
        w.WriteNumber("pid", p.Pid);
        w.WriteNumber("ppid", p.ParentPid);
        if (p.Uid is { } uid) w.WriteNumber("uid", uid);
        w.WriteString("comm", p.Comm);
        if (p.Path is { } path) w.WriteString("path", path);
        if (p.Argv is { } argv)
        {
            w.WriteStartArray("argv");
            foreach (var s in argv) w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (p.ExitCode is { } code) w.WriteNumber("exitCode", code);
        w.Address("task", p.Task);
    }
}
