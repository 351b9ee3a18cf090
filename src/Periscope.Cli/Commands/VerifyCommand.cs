using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Verification;
using Periscope.Targets;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope verify --db FILE`: re-measure against the newest matching baseline. Exit 0 clean, 1 findings, 2 error.
/// On a live guest, differences are re-read under QMP stop before being reported (see TargetVerification).
/// </summary>
public sealed class VerifyCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var db = BaselineCommand.DbOption();
        var command = new Command("verify", "Re-measure and report every difference from the trusted baseline") { db };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            using var store = BaselineStore.Open(r.GetValue(db)!, BaselineOpenMode.Existing);
            var (baseline, result, code) = TargetVerification.Verify(target, store);
            if (!context.Json(r))
                context.Output.WriteLine($"process code: {code.Compared} resident pages compared, {code.FirstSeen} seen for the first time (recorded), {code.NotResident} not resident, {code.Bytes / 1024} KiB");
            if (context.Json(r)) WriteJson(context.Output, baseline.Info, result);
            else WriteText(context.Output, baseline.Info, result);
            return result.Findings.Any(f => f.Severity != Severity.Info) ? 1 : 0;
        }));
        return command;
    }

    private static void WriteText(TextWriter output, BaselineInfo baseline, VerificationResult result)
    {
        output.WriteLine($"baseline {baseline.Id} ({baseline.Created:u}): {result.RegionsChecked} regions, {result.PagesChecked} pages, {result.BytesChecked / 1024} KiB checked in {result.Milliseconds:0} ms");
        if (result.Findings.Count == 0) { output.WriteLine("no differences"); return; }
        foreach (var f in result.Findings)
        {
            output.WriteLine();
            output.WriteLine($"[{f.Severity.ToString().ToUpperInvariant()}] {f.Classification}: {f.Location} at 0x{f.VirtualAddress:x}{(f.PhysicalAddress is { } pa ? $" (physical 0x{pa:x})" : "")} in {f.Region}");
            if (f.Detail.Length > 0) output.WriteLine($"  {f.Detail}");
            if (f.Expected.Length > 0) output.WriteLine($"  expected {Convert.ToHexStringLower(f.Expected)}");
            if (f.Found.Length > 0) output.WriteLine($"  found    {Convert.ToHexStringLower(f.Found)}");
            if (f.ExpectedDisassembly is { Length: > 0 } e) output.WriteLine("  expected code:\n    " + e.Replace("\n", "\n    "));
            if (f.FoundDisassembly is { Length: > 0 } x) output.WriteLine("  found code:\n    " + x.Replace("\n", "\n    "));
        }
        output.WriteLine();
        output.WriteLine($"{result.Findings.Count} finding(s): {result.Findings.Count(f => f.Severity == Severity.Critical)} critical");
    }

    private static void WriteJson(TextWriter output, BaselineInfo baseline, VerificationResult result) => Json.Write(output, w =>
    {
        w.WriteStartObject();
        w.WriteNumber("baseline", baseline.Id);
        w.WriteNumber("regions", result.RegionsChecked);
        w.WriteNumber("pages", result.PagesChecked);
        w.WriteNumber("bytes", result.BytesChecked);
        w.WriteNumber("milliseconds", Math.Round(result.Milliseconds, 1));
        w.WriteStartArray("findings");
        foreach (var f in result.Findings)
        {
            w.WriteStartObject();
            w.WriteString("severity", f.Severity.ToString().ToLowerInvariant());
            w.WriteString("classification", f.Classification);
            w.WriteString("region", f.Region);
            w.WriteString("location", f.Location);
            w.Address("address", f.VirtualAddress);
            w.Address("physical", f.PhysicalAddress);
            w.WriteString("expected", Convert.ToHexStringLower(f.Expected));
            w.WriteString("found", Convert.ToHexStringLower(f.Found));
            w.WriteString("expectedCode", f.ExpectedDisassembly);
            w.WriteString("foundCode", f.FoundDisassembly);
            w.WriteString("detail", f.Detail);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });
}
