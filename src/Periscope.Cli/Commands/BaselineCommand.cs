using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;

namespace Periscope.Cli.Commands;

/// <summary>`periscope baseline create|list --db FILE`: record the trusted state of a guest kernel.</summary>
public sealed class BaselineCommand : ICliCommand
{
    public static Option<string> DbOption() => new("--db") { Description = "Trusted-state database (SQLite file)", Required = true };

    public Command Build(CommandContext context)
    {
        var db = DbOption();
        var create = new Command("create", "Measure kernel text, rodata, syscall table and dispatcher, IDT and module code into the database") { db };
        create.SetAction(r => context.WithTarget(r, target =>
        {
            using var store = BaselineStore.Open(r.GetValue(db)!);
            var summary = BaselineRecorder.Record(target.Kernel, store, target.Description);
            var sweep = ProcessCodeMeasurer.Sweep(target.Kernel);
            int codePages = store.AddCodePages(sweep.Resident.Select(p => (p.File, p.FileOffset, p.Sha256)), "first use at baseline");
            if (context.Json(r))
                Json.Write(context.Output, w =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", summary.Id);
                    w.WriteString("buildId", summary.BuildId);
                    w.WriteNumber("regions", summary.Regions);
                    w.WriteNumber("pages", summary.Pages);
                    w.WriteNumber("bytes", summary.Bytes);
                    w.WriteNumber("milliseconds", Math.Round(summary.Milliseconds, 1));
                    w.WriteNumber("processCodePages", codePages);
                    w.WriteNumber("processCodePagesNotResident", sweep.NotResident);
                    w.WriteStartArray("skipped");
                    foreach (var reason in summary.Skipped) w.WriteStringValue(reason);
                    w.WriteEndArray();
                    w.WriteEndObject();
                });
            else
            {
                context.Output.WriteLine($"baseline {summary.Id}: {summary.Regions} regions, {summary.Pages} pages, {summary.Bytes / 1024} KiB measured in {summary.Milliseconds:0} ms (kernel build {summary.BuildId}); {codePages} new process code pages, {sweep.NotResident} not resident yet");
                // What the baseline could not cover (a region refused by a limit, evidence that could not be read).
                foreach (var reason in summary.Skipped) context.Output.WriteLine(VerifyCommand.Safe($"  not in the baseline: {reason}"));
            }
            return 0;
        }));

        var listDb = DbOption();
        var list = new Command("list", "List the baselines in the database") { listDb };
        list.SetAction(r =>
        {
            using var store = BaselineStore.Open(r.GetValue(listDb)!);
            var table = TableWriter.Plain("ID", "CREATED", "BUILD ID", "TEXT", "REGIONS", "PAGES", "TARGET");
            foreach (var b in store.List())
                table.AddRow(b.Id.ToString(), b.Created.ToString("u"), b.BuildId[..Math.Min(16, b.BuildId.Length)], TableWriter.Hex(b.TextVa), b.Regions.ToString(), b.Pages.ToString(), TableWriter.Esc(b.Target));
            TableWriter.Write(context.Output, table);
            return 0;
        });
        var importDb = DbOption();
        var root = new Option<string?>("--root") { Description = "Guest root folder: files are keyed by their path below it (default: the path as given)" };
        var paths = new Argument<string[]>("paths") { Description = "Executables, shared libraries or folders of them", Arity = ArgumentArity.OneOrMore };
        var import = new Command("import-files", "Expected per-page hashes of executable code, computed from the ELF files themselves") { importDb, root, paths };
        import.SetAction(r =>
        {
            using var store = BaselineStore.Open(r.GetValue(importDb)!);
            string? rootDir = r.GetValue(root) is { } rd ? Path.GetFullPath(rd) : null;
            int files = 0, pages = 0, added = 0;
            foreach (var file in r.GetValue(paths)!.SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories) : [p]))
            {
                if (new FileInfo(file).LinkTarget is not null) continue; // the target is imported under its own name
                var codePages = ElfCodePages.Read(file);
                if (codePages.Count == 0) continue;
                string full = Path.GetFullPath(file);
                string key = rootDir is not null && full.StartsWith(rootDir, StringComparison.Ordinal) ? "/" + Path.GetRelativePath(rootDir, full) : full;
                added += store.AddCodePages(codePages.Select(c => (key, c.Offset, c.Sha256)), "imported from file", authoritative: true);
                files++;
                pages += codePages.Count;
            }
            context.Output.WriteLine($"imported {pages} code pages of {files} ELF files ({added} new)");
            return 0;
        });
        return new Command("baseline", "Trusted-state baselines") { create, list, import };
    }
}
