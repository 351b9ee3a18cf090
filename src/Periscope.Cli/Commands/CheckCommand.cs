using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;

namespace Periscope.Cli.Commands;

/// <summary>`periscope check`: invariant checks that need no baseline. Exit 0 when nothing critical, 1 otherwise.</summary>
public sealed class CheckCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var command = new Command("check", "Baseline-free checks: syscall/IDT handlers outside kernel text, hidden modules, hidden tasks");
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var findings = new InvariantChecks(target.Kernel).Run();
            if (context.Json(r))
                Json.WriteArray(context.Output, findings, (w, f) =>
                {
                    w.WriteString("check", f.Check);
                    w.WriteString("severity", f.Severity.ToString().ToLowerInvariant());
                    w.WriteString("subject", f.Subject);
                    w.Address("address", f.Address);
                    w.WriteString("detail", f.Detail);
                });
            else
            {
                var table = TableWriter.Plain("SEVERITY", "CHECK", "SUBJECT", "ADDRESS", "DETAIL");
                foreach (var f in findings)
                    table.AddRow(f.Severity.ToString().ToUpperInvariant(), TableWriter.Esc(f.Check), TableWriter.Esc(f.Subject), TableWriter.Hex(f.Address), TableWriter.Esc(f.Detail));
                TableWriter.Write(context.Output, table);
                context.Output.WriteLine($"{findings.Count(f => f.Severity == Severity.Critical)} critical, {findings.Count} in all");
            }
            return findings.Any(f => f.Severity == Severity.Critical) ? 1 : 0;
        }));
        return command;
    }
}
