using System.Diagnostics;
using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Memory;
using Periscope.Replay;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope replay DIR --at ICOUNT|end -- COMMAND...`: replays a recording to an exact instruction count in a new
/// QEMU process (from the nearest snapshot, forward only), pauses, and runs any periscope command on the paused guest
/// (its RAM file and QMP, as --qemu/--qmp). `--every N` repeats the command every N instructions and prints what
/// changed; `--find-write ADDR` finds the first instruction count at which the bytes at ADDR changed, and what wrote them.
/// </summary>
public sealed class ReplayCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var dir = new Argument<string>("DIR") { Description = "Recording folder (periscope record --out)" };
        var inner = new Argument<string[]>("COMMAND") { Description = "The periscope command to run at each point, after --", Arity = ArgumentArity.ZeroOrMore };
        var at = new Option<string?>("--at") { Description = "Point to replay to: an icount, a snapshot name, or 'end'" };
        var atEnd = new Option<bool>("--at-end") { Description = "Replay to the end of the recording (same as --at end)" };
        var every = new Option<ulong>("--every") { Description = "Run the command every N instructions from --at (or the first snapshot) to --to, and print how its output changed" };
        var to = new Option<string>("--to") { Description = "Last point of --every and --find-write (default: end)", DefaultValueFactory = _ => "end" };
        var from = new Option<string?>("--from") { Description = "Start point of --find-write: the reference bytes are read here (default: the 'ready' snapshot, else the first)" };
        var findWrite = new Option<string?>("--find-write") { Description = "Address to watch: a kernel virtual address or symbol[+offset] (or physical with --physical)" };
        var len = new Option<int>("--len") { Description = "Bytes watched by --find-write", DefaultValueFactory = _ => 8 };
        var physical = new Option<bool>("--physical") { Description = "--find-write ADDR is a guest physical address" };
        var command = new Command("replay", "Replay a recording to an exact instruction count and run a periscope command there; timelines; first write to an address")
            { dir, inner, at, atEnd, every, to, from, findWrite, len, physical };
        command.SetAction(r =>
        {
            var limits = IntrospectionLimits.Default;
            var recording = Recording.Open(r.GetValue(dir)!, limits);
            try
            {
                if (r.GetValue(findWrite) is { } address)
                    return FindWrite(context, r, recording, limits, address, r.GetValue(len), r.GetValue(physical),
                        r.GetValue(from) is { } f ? recording.ParsePoint(f) : DefaultStart(recording), recording.ParsePoint(r.GetValue(to)!));
                string[] args = r.GetValue(inner) ?? [];
                if (args.Length == 0) throw new CliUsageException("say what to run at the replayed point: periscope replay DIR --at ICOUNT -- COMMAND...");
                if (args.Any(a => a is "--qemu" or "--dump" or "--qmp")) throw new CliUsageException("the replayed guest is the target: leave --qemu, --qmp and --dump out of the command");
                // --pause ends with `cont`, which would let the replay run on past the point asked for.
                if (args.Contains("--pause")) throw new CliUsageException("the replayed guest is already paused: leave --pause out of the command");
                string? point = r.GetValue(atEnd) ? "end" : r.GetValue(at);
                ulong stepSize = r.GetValue(every);
                if (stepSize > 0)
                    return Timeline(context, context.Json(r), recording, limits, args, point is null ? recording.Manifest.Snapshots[0].Icount : recording.ParsePoint(point), recording.ParsePoint(r.GetValue(to)!), stepSize);
                if (point is null) throw new CliUsageException("say where to stop: --at ICOUNT|end, --at-end, or --every N");
                ulong icount = recording.ParsePoint(point);
                using var session = ReplaySession.StartNear(recording, icount, limits);
                var replayed = Stopwatch.StartNew();
                // "end" is the state the recorder left and hashed: the whole log, with the events logged at the end
                // icount itself; a break there would stop before them (ReplaySession.RunToEndOfLog).
                if (point == "end") session.RunToEndOfLog();
                else session.RunTo(icount);
                // Where a seek's time goes (stderr, so the command's own output stays as it is).
                context.Error.WriteLine($"replay: snapshot {session.Start.Name} loaded in {session.StartTime.TotalSeconds:0.00} s (image copy, QEMU start, load); " +
                    $"{icount - session.Start.Icount} instructions replayed in {replayed.Elapsed.TotalSeconds:0.00} s");
                return RunInner(args, session, context.Output, context.Error);
            }
            catch (ArgumentException e) { throw new CliUsageException(e.Message); }
        });
        return command;
    }

    private static ulong DefaultStart(Recording recording) =>
        recording.Manifest.Snapshots.FirstOrDefault(s => s.Name == Recorder.ReadySnapshot) is { Name: not null } ready ? ready.Icount : recording.Manifest.Snapshots[0].Icount;

    /// <summary>Runs a periscope command against the paused replay, as if the user had typed it with --qemu/--qmp.</summary>
    private static int RunInner(string[] args, ReplaySession session, TextWriter output, TextWriter error)
    {
        int code = CliApp.Run([.. args, "--qemu", session.RamFile, "--qmp", session.ToolQmpSocket], output, error);
        session.CheckStillPaused();
        return code;
    }

    private static int Timeline(CommandContext context, bool json, Recording recording, IntrospectionLimits limits, string[] args, ulong start, ulong end, ulong step)
    {
        if (start > end) throw new CliUsageException($"the first point {start} is after the last {end}");
        ulong count = (end - start) / step + 1;
        if (count > (ulong)limits.MaxTimelinePoints) throw new CliUsageException($"--every {step} gives {count} points, more than the limit of {limits.MaxTimelinePoints}");
        using var session = ReplaySession.StartNear(recording, start, limits);
        string[]? previous = null;
        int worst = 0;
        var points = new List<(ulong Icount, int Code, string[] Added, string[] Removed, string[] Output)>();
        for (ulong p = start; p <= end; p = p + step < p ? end + 1 : p + step)
        {
            session.RunTo(p);
            var outText = new StringWriter();
            var errText = new StringWriter();
            int code = RunInner(args, session, outText, errText);
            worst = Math.Max(worst, code == 2 ? 3 : code);
            string[] lines = outText.ToString().Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToArray();
            if (code == 2) lines = [.. lines, .. errText.ToString().Split('\n').Where(l => l.Length > 0).Select(l => "error: " + l)];
            var added = previous is null ? lines : lines.Except(previous).ToArray();
            var removed = previous is null ? [] : previous.Except(lines).ToArray();
            points.Add((p, code, added, removed, lines));
            previous = lines;
        }
        if (json)
        {
            Json.WriteArray(context.Output, points, (w, x) =>
            {
                w.WriteNumber("icount", x.Icount);
                w.WriteNumber("exitCode", x.Code);
                w.WriteStartArray("added");
                foreach (var l in x.Added) w.WriteStringValue(l);
                w.WriteEndArray();
                w.WriteStartArray("removed");
                foreach (var l in x.Removed) w.WriteStringValue(l);
                w.WriteEndArray();
            });
            return worst;
        }
        var o = context.Output;
        foreach (var (icount, code, added, removed, lines) in points)
        {
            o.WriteLine($"== icount {icount} (exit {code}){(added.Length == 0 && removed.Length == 0 ? ": no change" : "")}");
            foreach (var l in removed) o.WriteLine("- " + l);
            foreach (var l in added) o.WriteLine("+ " + l);
        }
        return worst;
    }

    private static int FindWrite(CommandContext context, ParseResult r, Recording recording, IntrospectionLimits limits, string address, int length, bool isPhysical, ulong from, ulong to)
    {
        var finder = new WriteFinder(recording, limits, context.Json(r) ? null : context.Error);
        ulong? va = null;
        ulong pa;
        if (isPhysical) pa = WriteFinder.ParseNumber(address) ?? throw new CliUsageException($"'{address}': not a physical address (0x... or decimal)");
        else
        {
            var resolved = finder.ResolveKernelAddress(address, to);
            (va, pa) = (resolved.Virtual, resolved.Physical);
        }
        var found = finder.Find(pa, length, from, to);
        if (context.Json(r))
        {
            Json.Write(context.Output, w =>
            {
                w.WriteStartObject();
                w.WriteString("address", address);
                w.Address("virtual", va);
                w.Address("physical", pa);
                w.WriteNumber("length", length);
                w.WriteNumber("from", from);
                w.WriteNumber("to", to);
                w.WriteBoolean("changed", found is not null);
                if (found is not null)
                {
                    w.WriteNumber("icount", found.Icount);
                    w.WriteString("before", Convert.ToHexStringLower(found.Before));
                    w.WriteString("after", Convert.ToHexStringLower(found.After));
                    w.Address("rip", found.Rip);
                    w.WriteString("ripSymbol", found.RipSymbol);
                    w.WriteString("module", found.Module);
                    if (found.Pid is { } pid) w.WriteNumber("pid", pid); else w.WriteNull("pid");
                    w.WriteString("comm", found.Comm);
                    w.WriteNumber("replays", found.Sessions);
                    w.WriteNumber("stops", found.Stops);
                }
                w.WriteEndObject();
            });
        }
        else if (found is null)
            context.Output.WriteLine($"{TerminalText.Escape(address)} (physical 0x{pa:x}, {length} bytes) did not change between icount {from} and {to}");
        else
        {
            var t = TableWriter.Plain("", "");
            t.AddRow("address", TableWriter.Esc(address) + (va is { } v ? $" = 0x{v:x}" : "") + $" (physical 0x{pa:x}, {length} bytes)");
            t.AddRow("first changed at icount", found.Icount.ToString());
            t.AddRow("before", Convert.ToHexStringLower(found.Before));
            t.AddRow("after", Convert.ToHexStringLower(found.After));
            t.AddRow("writing instruction", found.Rip is { } rip ? $"0x{rip:x} {TableWriter.Esc(found.RipSymbol ?? "")}" : "?");
            t.AddRow("module", TableWriter.Esc(found.Module ?? "-"));
            t.AddRow("process", found.Pid is { } pid ? $"{pid} {TableWriter.Esc(found.Comm ?? "")}" : "?");
            t.AddRow("replays / stops", $"{found.Sessions} / {found.Stops}");
            TableWriter.Write(context.Output, t);
        }
        return found is null ? 0 : 1;
    }
}
