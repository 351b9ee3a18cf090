using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux;
using Periscope.Linux.Discovery;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Targets;

namespace Periscope.Cli.Commands;

/// <summary>`periscope info`: what the guest kernel is, where it lives, how each fact was found, and how long it took.</summary>
public sealed class InfoCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var offsetsOption = new Option<bool>("--offsets") { Description = "List every struct offset used, where it came from (BTF, inferred, cache) and, for inferred ones, the candidates and the rule that decided" };
        var command = new Command("info", "Kernel version, paging mode, KASLR bases, memory layout, how each was found, and timings") { offsetsOption };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            if (r.GetValue(offsetsOption)) return OffsetsView.Run(context, r, target);
            var k = target.Kernel;
            if (context.Json(r)) Json.Write(context.Output, w => WriteJson(w, target, k));
            else WriteText(context.Output, target, k);
            Warnings.Print(context, k);
            return 0;
        }));
        return command;
    }

    private static IEnumerable<(string Name, string Value)> Summary(Target target, LinuxKernel k)
    {
        var l = k.Layout;
        yield return ("target", target.Description);
        yield return ("physical memory", $"{target.Memory.Map.RamBytes >> 20} MiB RAM in {target.Memory.Map.Ram.Count()} ranges; {target.Memory.Map.Ranges.Count(x => x.Kind == Periscope.Memory.PhysicalRangeKind.Device)} device ranges");
        yield return ("vCPU state", target.Cpus.Count == 0 ? "none (memory only)" : $"{target.Cpus.Count} CPU(s) from {target.Cpus[0].Source}");
        yield return ("kernel", k.Banner);
        yield return ("release", k.Release);
        yield return ("paging", $"{(int)l.Mode}-level");
        yield return ("kernel PGD", $"0x{l.KernelPgd:x}");
        yield return ("discovery", $"{l.FoundBy.Describe()}, {l.DiscoveryPagesRead} pages read{(l.FoundBy == DiscoveryMethod.FullScan ? " (fallback: CR3, VMCOREINFO and the low-memory search failed)" : "")}");
        yield return ("_text", $"0x{l.TextVa:x} (physical 0x{l.TextPa:x})");
        yield return ("KASLR slide", $"virtual 0x{l.VirtualSlide:x}, physical {(l.PhysicalSlide < 0 ? "-" : "")}0x{Math.Abs(l.PhysicalSlide):x}");
        yield return ("page_offset_base", l.PageOffsetBase is { } p ? $"0x{p:x}" : "?");
        yield return ("vmalloc_base", l.VmallocBase is { } v ? $"0x{v:x}" : "?");
        yield return ("vmemmap_base", l.VmemmapBase is { } m ? $"0x{m:x}" : "?");
        yield return ("symbols", $"{k.Symbols.Count}");
        yield return ("BTF types", k.Btf is { } btf ? $"{btf.Count}" : "none: offsets " + (k.OffsetSource == OffsetSource.Cache ? "from the offsets cache" : "inferred"));
    }

    private static void WriteText(TextWriter output, Target target, LinuxKernel k)
    {
        var table = TableWriter.Plain("", "");
        foreach (var (name, value) in Summary(target, k)) table.AddRow(name, TableWriter.Esc(value));
        TableWriter.Write(output, table);
        output.WriteLine();
        output.WriteLine("How it was found:");
        var facts = TableWriter.Plain("FACT", "VALUE", "HOW");
        foreach (var f in k.Log.Facts) facts.AddRow(TableWriter.Esc(f.Name), TableWriter.Esc(Shorten(f.Value)), TableWriter.Esc(f.How));
        TableWriter.Write(output, facts);
        output.WriteLine();
        output.WriteLine("Timings:");
        var timings = TableWriter.Plain("STAGE", "MS");
        foreach (var (stage, ms) in k.Log.Timings) timings.AddRow(stage, ms.ToString("0.00"));
        TableWriter.Write(output, timings);
    }

    private static string Shorten(string s) => s.Length > 90 ? s[..87] + "..." : s;

    private static void WriteJson(System.Text.Json.Utf8JsonWriter w, Target target, LinuxKernel k)
    {
        var l = k.Layout;
        w.WriteStartObject();
        w.WriteString("target", target.Description);
        w.WriteString("banner", k.Banner);
        w.WriteString("release", k.Release);
        w.WriteNumber("pagingLevels", (int)l.Mode);
        w.Address("kernelPgd", l.KernelPgd);
        w.WriteString("discoveryMethod", l.FoundBy.ToString());
        w.WriteNumber("discoveryPagesRead", l.DiscoveryPagesRead);
        w.Address("textVirtual", l.TextVa);
        w.Address("textPhysical", l.TextPa);
        w.Address("virtualSlide", l.VirtualSlide);
        w.WriteNumber("physicalSlide", l.PhysicalSlide);
        w.Address("pageOffsetBase", l.PageOffsetBase);
        w.Address("vmallocBase", l.VmallocBase);
        w.Address("vmemmapBase", l.VmemmapBase);
        w.WriteNumber("symbols", k.Symbols.Count);
        if (k.Btf is { } btf) w.WriteNumber("btfTypes", btf.Count); else w.WriteNull("btfTypes");
        w.WriteString("offsetSource", k.OffsetSource.ToString());
        w.WriteNumber("ramBytes", target.Memory.Map.RamBytes);
        w.WriteNumber("cpus", target.Cpus.Count);
        w.WriteStartArray("facts");
        foreach (var f in k.Log.Facts)
        {
            w.WriteStartObject();
            w.WriteString("name", f.Name);
            w.WriteString("value", f.Value);
            w.WriteString("how", f.How);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartObject("timingsMs");
        foreach (var (stage, ms) in k.Log.Timings) w.WriteNumber(stage, Math.Round(ms, 3));
        w.WriteEndObject();
        w.WriteStartArray("warnings");
        foreach (var warn in k.Log.Warnings) w.WriteStringValue(warn);
        w.WriteEndArray();
        w.WriteEndObject();
    }
}

/// <summary>`periscope info --offsets`: every offset the model uses, its source, and the inference evidence.</summary>
internal static class OffsetsView
{
    public static int Run(CommandContext context, System.CommandLine.ParseResult r, Target target)
    {
        LinuxKernel k;
        try { k = target.Kernel; }
        catch (OffsetInferenceException e)
        {
            // The search failed for some member: show all it found, then fail as any open does.
            Write(context, r, null, e.Report, OffsetSource.Inferred, null);
            throw;
        }
        Write(context, r, k.Offsets, k.Inference, k.OffsetSource, TimelineLayout.For(k));
        Warnings.Print(context, k);
        return 0;
    }

    private static IEnumerable<(string Name, int? Offset, string Source, string Decision, string Candidates, string Rule)> Rows(
        Periscope.Linux.Model.KernelOffsets? offsets, InferenceReport? report, OffsetSource source, TimelineLayout? timeline)
    {
        var seen = new HashSet<string>();
        if (report is not null)
            foreach (var m in report.Members)
            {
                seen.Add(m.Name);
                string decision = m.Decision switch { InferenceDecision.NotFound => "unknown (no candidate)", InferenceDecision.Ambiguous => "unknown (ambiguous)", _ => m.Decision.ToString() };
                yield return (m.Name, m.Offset, source.ToString(), decision, string.Join(" ", m.Candidates.Select(c => $"0x{c:x}")), m.Rule);
            }
        if (offsets is not null)
            foreach (var e in OffsetTable.Of(offsets))
                if (seen.Add(e.Name))
                    yield return (e.Name, e.Offset, report is null ? source.ToString() : "constant", report is null ? "BTF" : "Structural", "", report is null ? "read from BTF" : "a fixed layout fact (StructuralFacts)");
        if (timeline is not null)
            foreach (var row in TimelineRows(timeline)) yield return row;
    }

    /// <summary>What `timeline` and `ps --full` read: inferred when first asked, not at attach (nothing else needs them), so
    /// never from the offsets cache; listed here with their evidence like the rest.</summary>
    private static IEnumerable<(string Name, int? Offset, string Source, string Decision, string Candidates, string Rule)> TimelineRows(TimelineLayout t)
    {
        const string whenAsked = " (inferred when a view asks, not cached)";
        string source = t.StartTimeEvidence is null ? OffsetSource.Btf.ToString() : OffsetSource.Inferred.ToString();
        string Decision(int? offset) => offset is null ? "unknown" : t.StartTimeEvidence is null ? "BTF" : "Unique";
        string candidates = t.StartTimeEvidence is { } e ? string.Join(" ", e.Candidates.Select(c => $"0x{c:x}")) : "";
        string startRule = t.StartTimeEvidence is { } ev ? ev.Rule + whenAsked : t.StartTimeMissing ?? "read from BTF";
        yield return ("task_struct.start_time", t.StartTime, source, Decision(t.StartTime), candidates, startRule);
        if (t.StartTimeEvidence is { } d) yield return ("task_struct.start_boottime", d.StartBootTime, source, Decision(d.StartBootTime), candidates, startRule);
        string tkRule = t.Timekeeper is { } tk ? $"timekeeper at 0x{tk.Address:x}: {tk.How}" + (t.StartTimeEvidence is null ? "" : whenAsked) : t.TimekeeperMissing ?? "";
        yield return ("timekeeper.tkr_mono.base", t.Timekeeper?.MonoBase, source, Decision(t.Timekeeper?.MonoBase), "", tkRule);
        yield return ("timekeeper.offs_real", t.Timekeeper?.OffsReal, source, Decision(t.Timekeeper?.OffsReal), "", tkRule);
    }

    private static void Write(CommandContext context, System.CommandLine.ParseResult r, Periscope.Linux.Model.KernelOffsets? offsets, InferenceReport? report, OffsetSource source,
        TimelineLayout? timeline)
    {
        var rows = Rows(offsets, report, source, timeline).ToList();
        if (context.Json(r))
        {
            Json.Write(context.Output, w =>
            {
                w.WriteStartObject();
                w.WriteString("source", source.ToString());
                w.WriteStartArray("offsets");
                foreach (var x in rows)
                {
                    w.WriteStartObject();
                    w.WriteString("name", x.Name);
                    if (x.Offset is { } o) w.WriteNumber("offset", o); else w.WriteNull("offset");
                    w.WriteString("source", x.Source);
                    w.WriteString("decision", x.Decision);
                    w.WriteString("candidates", x.Candidates);
                    w.WriteString("rule", x.Rule);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                if (report is not null)
                {
                    w.WriteStartObject("evidence");
                    w.WriteNumber("tasks", report.Tasks); w.WriteNumber("threads", report.Threads); w.WriteNumber("mms", report.Mms);
                    w.WriteNumber("vmas", report.Vmas); w.WriteNumber("files", report.Files); w.WriteNumber("modules", report.Modules);
                    w.WriteNumber("tests", report.Steps);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            });
            return;
        }
        context.Output.WriteLine($"Offsets: {source switch { OffsetSource.Btf => "from the kernel's BTF", OffsetSource.Cache => "from the offsets cache (inferred at an earlier attach)", _ => "inferred from the data (no BTF used)" }}");
        if (report is not null)
            context.Output.WriteLine($"Evidence: {report.Tasks} tasks, {report.Threads} threads, {report.Mms} mms, {report.Vmas} VMAs, {report.Files} files, {report.Modules} modules; {report.Steps} candidate tests; {report.Unknown.Count()} member(s) unknown");
        var table = TableWriter.Plain("MEMBER", "OFFSET", "SOURCE", "DECISION", "CANDIDATES", "RULE");
        foreach (var x in rows)
            table.AddRow(TableWriter.Esc(x.Name), x.Offset is { } o ? $"0x{o:x}" : "-", x.Source, x.Decision, x.Candidates, TableWriter.Esc(x.Rule));
        TableWriter.Write(context.Output, table);
    }
}
