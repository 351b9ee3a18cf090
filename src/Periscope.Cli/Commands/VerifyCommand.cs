using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Verification;
using Periscope.Targets;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope verify --db FILE`: re-measure against the newest matching baseline and judge every difference with the
/// baseline's evidence. Exit codes (shared with `check`): 0 clean and complete, 1 findings (warning or critical),
/// 2 error (bad input, usage), 3 no findings but incomplete (the output says what could not be done and why).
/// On a live guest, differences are re-read under QMP stop before being reported (see TargetVerification).
/// </summary>
public sealed class VerifyCommand : ICliCommand
{
    public const int Clean = 0, Findings = 1, Incomplete = 3;

    public Command Build(CommandContext context)
    {
        var db = BaselineCommand.DbOption();
        var stats = StageStats.Option();
        var command = new Command("verify", "Re-measure and report every difference from the trusted baseline") { db, stats };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            using var store = BaselineStore.Open(r.GetValue(db)!, BaselineOpenMode.Existing);
            var (baseline, result, code) = TargetVerification.Verify(target, store);
            int exit = ExitCode(result);
            if (r.GetValue(stats))
            {
                StageStats.WriteAttach(context.Error, target.Kernel);
                StageStats.WriteVerify(context.Error, result, code);
            }
            if (context.Json(r)) WriteJson(context.Output, baseline.Info, result, exit);
            else
            {
                context.Output.WriteLine($"process code: {code.ResidentMappings} resident pages in all processes ({code.SharedMappings} shared with another process, measured once), {code.Compared} distinct pages compared, {code.FirstSeen} seen for the first time (recorded), {code.NotResident} not resident, {code.Bytes / 1024} KiB");
                WriteText(context.Output, baseline.Info, result);
            }
            return exit;
        }));
        return command;
    }

    /// <summary>1 when any warning or critical finding exists, else 3 when something could not be checked, else 0.</summary>
    public static int ExitCode(VerificationResult result) =>
        result.Findings.Any(f => f.Severity != Severity.Info) ? Findings : result.Incomplete.Count > 0 ? Incomplete : Clean;

    /// <summary>Guest-controlled text (module and symbol names, comms, paths) with control characters shown as \xNN,
    /// so that no escape sequence from the guest reaches the operator's terminal.</summary>
    public static string Safe(string s)
    {
        var writer = new StringWriter();
        TerminalText.Write(writer, s, keepLayout: true);
        return writer.ToString();
    }

    private static void WriteText(TextWriter output, BaselineInfo baseline, VerificationResult result)
    {
        output.WriteLine($"baseline {baseline.Id} ({baseline.Created:u}): {result.RegionsChecked} regions, {result.PagesChecked} pages, {result.BytesChecked / 1024} KiB checked in {result.Milliseconds:0} ms");
        foreach (var f in result.Findings)
        {
            output.WriteLine();
            output.WriteLine(Safe($"[{f.Severity.ToString().ToUpperInvariant()}] {f.Classification.Text()}: {f.Location} at 0x{f.VirtualAddress:x}{(f.PhysicalAddress is { } pa ? $" (physical 0x{pa:x})" : "")} in {f.Region}"));
            if (f.Detail.Length > 0) output.WriteLine(Safe($"  {f.Detail}"));
            if (f.Expected.Length > 0) output.WriteLine($"  expected {Convert.ToHexStringLower(f.Expected)}");
            if (f.Found.Length > 0) output.WriteLine($"  found    {Convert.ToHexStringLower(f.Found)}");
            if (f.ExpectedDisassembly is { Length: > 0 } e) output.WriteLine("  expected code:\n    " + Safe(e).Replace("\n", "\n    "));
            if (f.FoundDisassembly is { Length: > 0 } x) output.WriteLine("  found code:\n    " + Safe(x).Replace("\n", "\n    "));
        }
        if (result.Incomplete.Count > 0)
        {
            output.WriteLine();
            output.WriteLine($"incomplete: {result.Incomplete.Count} check(s) could not be done:");
            foreach (var reason in result.Incomplete) output.WriteLine(Safe($"  - {reason}"));
        }
        output.WriteLine();
        output.WriteLine(result.Findings.Count == 0
            ? result.Incomplete.Count == 0 ? "no differences" : "no differences in what could be checked (incomplete)"
            : $"{result.Findings.Count} finding(s): {result.Findings.Count(f => f.Severity == Severity.Critical)} critical");
    }

    private static void WriteJson(TextWriter output, BaselineInfo baseline, VerificationResult result, int exit) => Json.Write(output, w =>
    {
        w.WriteStartObject();
        w.WriteNumber("baseline", baseline.Id);
        w.WriteNumber("exitCode", exit);
        w.WriteBoolean("clean", result.Clean);
        w.WriteBoolean("complete", result.Complete);
        w.WriteNumber("regions", result.RegionsChecked);
        w.WriteNumber("pages", result.PagesChecked);
        w.WriteNumber("bytes", result.BytesChecked);
        w.WriteNumber("milliseconds", Math.Round(result.Milliseconds, 1));
        w.WriteStartArray("findings");
        foreach (var f in result.Findings)
        {
            w.WriteStartObject();
            w.WriteString("severity", f.Severity.ToString().ToLowerInvariant());
            w.WriteString("classification", f.Classification.JsonName());
            w.WriteString("region", f.Region);
            w.WriteString("location", f.Location);
            w.Address("address", f.VirtualAddress);
            w.Address("physical", f.PhysicalAddress);
            w.WriteString("expected", Convert.ToHexStringLower(f.Expected));
            w.WriteString("found", Convert.ToHexStringLower(f.Found));
            w.WriteString("expectedCode", f.ExpectedDisassembly);
            w.WriteString("foundCode", f.FoundDisassembly);
            if (f.Destination is { } d)
            {
                w.WriteStartObject("destination");
                w.Address("address", d.Address);
                w.WriteString("owner", d.Owner.ToString());
                w.WriteString("module", d.Module?.Name);
                w.WriteString("description", d.Description);
                w.WriteEndObject();
            }
            w.WriteString("detail", f.Detail);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("incomplete");
        foreach (var reason in result.Incomplete) w.WriteStringValue(reason);
        w.WriteEndArray();
        w.WriteEndObject();
    });
}
