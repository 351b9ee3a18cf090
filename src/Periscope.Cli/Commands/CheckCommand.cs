using System.CommandLine;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope check`: invariant checks that need no baseline. Exit 0 clean and complete, 1 warning or critical
/// findings, 2 error, 3 no findings but some check skipped or incomplete (the output says which and why).
/// </summary>
public sealed class CheckCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var command = new Command("check", "Baseline-free checks: syscall/IDT handlers outside kernel text, hidden modules, hidden tasks " +
            "(pid namespace, children lists, run queues, thread groups), undefined task flags. Exit 0 clean, 1 findings, 3 incomplete");
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var report = new InvariantChecks(target.Kernel).Run();
            if (context.Json(r)) Json.Write(context.Output, w => WriteJson(w, report));
            else WriteText(context.Output, report);
            return (int)report.Verdict;
        }));
        return command;
    }

    private static void WriteJson(Utf8JsonWriter w, CheckReport report)
    {
        w.WriteStartObject();
        w.WriteString("verdict", report.Verdict.ToString().ToLowerInvariant());
        w.WriteBoolean("complete", report.IsComplete);
        w.WriteStartArray("checks");
        foreach (var o in report.Outcomes)
        {
            w.WriteStartObject();
            w.WriteString("check", o.Check.Name());
            w.WriteString("status", o.Status.Name());
            w.WriteNumber("findings", o.FindingCount);
            w.WriteStartArray("gaps");
            foreach (var g in o.Gaps)
            {
                w.WriteStartObject();
                w.WriteString("kind", g.Kind.Name());
                w.WriteString("detail", g.Detail);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("findings");
        foreach (var f in report.Findings)
        {
            w.WriteStartObject();
            w.WriteString("check", f.Check.Name());
            w.WriteString("kind", f.Kind.Name());
            w.WriteString("severity", f.Severity.ToString().ToLowerInvariant());
            w.WriteString("subject", f.Subject);
            w.Address("address", f.Address);
            w.WriteString("detail", f.Detail);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteText(TextWriter output, CheckReport report)
    {
        if (report.Findings.Count > 0)
        {
            var table = TableWriter.Plain("SEVERITY", "CHECK", "KIND", "SUBJECT", "ADDRESS", "DETAIL");
            foreach (var f in report.Findings)
                table.AddRow(f.Severity.ToString().ToUpperInvariant(), f.Check.Name(), f.Kind.Name(), TableWriter.Esc(f.Subject), TableWriter.Hex(f.Address), TableWriter.Esc(f.Detail));
            TableWriter.Write(output, table);
        }
        var unfinished = report.Outcomes.Where(o => o.Status != CheckStatus.Complete).ToList();
        if (unfinished.Count > 0)
        {
            var gaps = TableWriter.Plain("CHECK", "STATUS", "WHY", "DETAIL");
            foreach (var o in unfinished)
                foreach (var g in o.Gaps)
                    gaps.AddRow(o.Check.Name(), o.Status.Name(), g.Kind.Name(), TableWriter.Esc(g.Detail));
            TableWriter.Write(output, gaps);
        }
        int critical = report.Findings.Count(f => f.Severity == Severity.Critical);
        int complete = report.Outcomes.Count(o => o.Status == CheckStatus.Complete);
        int skipped = report.Outcomes.Count(o => o.Status == CheckStatus.Skipped);
        int unavailable = report.Outcomes.Count(o => o.Status == CheckStatus.Unavailable);
        output.WriteLine($"{critical} critical, {report.Findings.Count} findings in all; {report.Outcomes.Count} checks: {complete} complete, " +
            $"{report.Outcomes.Count - complete - skipped - unavailable} incomplete, {skipped} skipped" + (unavailable > 0 ? $", {unavailable} unavailable on this kernel" : "") +
            $"; verdict {report.Verdict.ToString().ToLowerInvariant()}");
    }
}
