using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Memory;

namespace Periscope.Cli.Commands;

/// <summary>`periscope baseline create|list|import-files --db FILE`: record the trusted state of a guest kernel.</summary>
public sealed class BaselineCommand : ICliCommand
{
    public static Option<string> DbOption() => new("--db") { Description = "Trusted-state database (SQLite file)", Required = true };

    public Command Build(CommandContext context)
    {
        var db = DbOption();
        var stats = StageStats.Option();
        var create = new Command("create", "Measure kernel text, rodata, syscall table and dispatcher, IDT, module code and process code into the database; an unchanged guest adds nothing") { db, stats };
        create.SetAction(r =>
        {
            // The database is checked before the guest is read: a bad --db costs nothing.
            using var store = BaselineStore.Open(r.GetValue(db)!, BaselineOpenMode.CreateIfMissing);
            return context.WithTarget(r, target => Create(context, r, store, target, r.GetValue(stats)));
        });

        var listDb = DbOption();
        var list = new Command("list", "List the baselines in the database") { listDb };
        list.SetAction(r =>
        {
            using var store = BaselineStore.Open(r.GetValue(listDb)!, BaselineOpenMode.Existing);
            var baselines = store.List();
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, baselines, (w, b) =>
                {
                    w.WriteNumber("id", b.Id);
                    w.WriteString("created", b.Created.ToUniversalTime().ToString("O"));
                    w.WriteString("buildId", b.BuildId);
                    w.WriteString("banner", b.Banner);
                    w.Address("textVa", b.TextVa);
                    w.WriteNumber("regions", b.Regions);
                    w.WriteNumber("pages", b.Pages);
                    w.WriteString("target", b.Target);
                });
                return 0;
            }
            var table = TableWriter.Plain("ID", "CREATED", "BUILD ID", "TEXT", "REGIONS", "PAGES", "TARGET");
            foreach (var b in baselines)
                table.AddRow(b.Id.ToString(), b.Created.ToString("u"), TableWriter.Esc(b.BuildId[..Math.Min(16, b.BuildId.Length)]), TableWriter.Hex(b.TextVa), b.Regions.ToString(), b.Pages.ToString(), TableWriter.Esc(b.Target));
            TableWriter.Write(context.Output, table);
            return 0;
        });

        var importDb = DbOption();
        var root = new Option<string?>("--root") { Description = "Guest root folder: files are keyed by their path below it (default: the path as given)" };
        var paths = new Argument<string[]>("paths") { Description = "Executables, shared libraries or folders of them (regular files only)", Arity = ArgumentArity.OneOrMore };
        var import = new Command("import-files", "Expected per-page hashes of executable code, computed from the ELF files themselves") { importDb, root, paths };
        import.SetAction(r =>
        {
            using var store = BaselineStore.Open(r.GetValue(importDb)!, BaselineOpenMode.CreateIfMissing);
            return ImportFiles(context, r, store, r.GetValue(root), r.GetValue(paths)!, IntrospectionLimits.Default);
        });
        return new Command("baseline", "Trusted-state baselines") { create, list, import };
    }

    private static int Create(CommandContext context, ParseResult r, BaselineStore store, Targets.Target target, bool stats)
    {
        // The process code is swept on the other core while the kernel regions' page contents compress.
        var (summary, sweep) = BaselineRecorder.Record(target.Kernel, store, target.Description, kernel => ProcessCodeMeasurer.Sweep(kernel));
        if (stats)
        {
            StageStats.WriteAttach(context.Error, target.Kernel);
            StageStats.WriteCreate(context.Error, summary, sweep);
        }
        // One row per distinct page of the pass, not per process mapping it.
        int codePages = store.AddCodePages(sweep.Pages.Select(p => (p.File, p.FileOffset, p.Sha256)), "first use at baseline");
        // Anonymous executable memory present now belongs to the trusted state: verify reports only what is new.
        int anonymous = store.AddAnonymousCode(summary.Id, sweep.Anonymous.Select(a => a.Key));
        foreach (var reason in sweep.Incomplete) context.Error.WriteLine($"periscope: warning: incomplete: {reason}");
        if (context.Json(r))
        {
            Json.Write(context.Output, w =>
            {
                w.WriteStartObject();
                w.WriteNumber("id", summary.Id);
                w.WriteBoolean("alreadyStored", summary.AlreadyStored);
                w.WriteString("buildId", summary.BuildId);
                w.WriteNumber("regions", summary.Regions);
                w.WriteNumber("pages", summary.Pages);
                w.WriteNumber("bytes", summary.Bytes);
                w.WriteNumber("milliseconds", Math.Round(summary.Milliseconds, 1));
                w.WriteNumber("processCodePages", codePages);
                w.WriteNumber("processCodePagesNotResident", sweep.NotResident);
                w.WriteNumber("processCodeResidentMappings", sweep.Mappings.Count);
                w.WriteNumber("processCodeSharedMappings", sweep.SharedMappings);
                w.WriteNumber("processCodePagesHashed", sweep.Measured);
                w.WriteNumber("anonymousCode", sweep.Anonymous.Count);
                w.WriteNumber("anonymousCodeNew", anonymous);
                w.WriteStartArray("incomplete");
                foreach (var reason in sweep.Incomplete) w.WriteStringValue(reason);
                w.WriteEndArray();
                w.WriteStartArray("skipped");
                foreach (var reason in summary.Skipped) w.WriteStringValue(reason);
                w.WriteEndArray();
                w.WriteEndObject();
            });
            return 0;
        }
        string head = summary.AlreadyStored
            ? $"baseline {summary.Id} already holds these measurements (unchanged guest): not stored again; {summary.Regions} regions, {summary.Pages} pages checked in {summary.Milliseconds:0} ms"
            : $"baseline {summary.Id}: {summary.Regions} regions, {summary.Pages} pages, {summary.Bytes / 1024} KiB measured in {summary.Milliseconds:0} ms (kernel build {summary.BuildId})";
        context.Output.WriteLine($"{head}; process code: {sweep.Mappings.Count} resident pages in all processes ({sweep.SharedMappings} shared with another process), {sweep.Measured} distinct pages hashed, {codePages} new references, {sweep.NotResident} not resident yet; {sweep.Anonymous.Count} anonymous executable mappings ({anonymous} new)");
        // What the baseline could not cover (a region refused by a limit, evidence that could not be read).
        foreach (var reason in summary.Skipped) context.Output.WriteLine(VerifyCommand.Safe($"  not in the baseline: {reason}"));
        return 0;
    }

    /// <summary>Imports expected code-page hashes from ELF files. Only regular files are read (never a FIFO or device,
    /// which could block or never end), each up to <see cref="IntrospectionLimits.MaxImportFileBytes"/>; others are
    /// skipped with one line each. A path named on the command line that cannot be imported makes the exit code 2.</summary>
    private static int ImportFiles(CommandContext context, ParseResult r, BaselineStore store, string? rootOption, string[] paths, IntrospectionLimits limits)
    {
        string? rootDir = rootOption is { } rd ? Path.GetFullPath(rd) : null;
        int files = 0, pages = 0, added = 0;
        bool namedSkipped = false;
        var skipped = new List<string>();
        // Symbolic links are skipped: their targets are imported under their own names, and a link cannot make the walk cycle.
        var walk = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        foreach (var (file, named) in paths.SelectMany(p => HostFile.Stat(p).Kind == HostFileKind.Directory
                     ? Directory.EnumerateFiles(p, "*", walk).Select(f => (f, false)) : [(p, true)]))
        {
            if (HostFile.Stat(file, followLinks: false).Kind == HostFileKind.Symlink) continue;
            var bytes = HostFile.TryReadRegular(file, limits.MaxImportFileBytes, out string? why);
            if (bytes is null)
            {
                skipped.Add(why!);
                namedSkipped |= named;
                continue;
            }
            var codePages = ElfCodePages.Read(bytes);
            if (codePages.Count == 0) continue;
            string full = Path.GetFullPath(file);
            string key = rootDir is not null && full.StartsWith(rootDir, StringComparison.Ordinal) ? "/" + Path.GetRelativePath(rootDir, full) : full;
            added += store.AddCodePages(codePages.Select(c => (key, c.Offset, c.Sha256)), "imported from file", authoritative: true);
            files++;
            pages += codePages.Count;
        }
        if (context.Json(r))
        {
            Json.Write(context.Output, w =>
            {
                w.WriteStartObject();
                w.WriteNumber("files", files);
                w.WriteNumber("pages", pages);
                w.WriteNumber("new", added);
                w.WriteStartArray("skipped");
                foreach (var s in skipped) w.WriteStringValue(s);
                w.WriteEndArray();
                w.WriteEndObject();
            });
        }
        else
        {
            foreach (var s in skipped) context.Error.WriteLine($"periscope: {Escape(s)}");
            context.Output.WriteLine($"imported {pages} code pages of {files} ELF files ({added} new){(skipped.Count > 0 ? $", {skipped.Count} skipped" : "")}");
        }
        return namedSkipped ? 2 : 0;
    }

    /// <summary>File names are the operator's, but may hold control characters: keep them off the terminal.</summary>
    private static string Escape(string s) => string.Concat(s.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
}
