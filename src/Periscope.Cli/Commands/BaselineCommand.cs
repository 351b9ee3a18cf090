using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Integrity.Baselines;

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
                    w.WriteEndObject();
                });
            else
                context.Output.WriteLine($"baseline {summary.Id}: {summary.Regions} regions, {summary.Pages} pages, {summary.Bytes / 1024} KiB measured in {summary.Milliseconds:0} ms (kernel build {summary.BuildId})");
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
        return new Command("baseline", "Trusted-state baselines") { create, list };
    }
}
