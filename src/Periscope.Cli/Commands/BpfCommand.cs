using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Linux.Bpf;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope bpf`: loaded eBPF programs, maps and links from the kernel's ID lists, and the programs found where they are
/// attached (socket filters, cgroups, XDP, tcx, kprobe/tracepoint/perf events, trace events, trampolines, links). A program attached but missing from the ID list is CRITICAL; one
/// calling a helper that writes user memory or overrides return values is a WARNING (both exit 1).
/// </summary>
public sealed class BpfCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var command = new Command("bpf", "List eBPF programs (id, type, name, tag, helpers, JIT code, where attached), maps and links; flag hidden and dangerous programs");
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var report = new BpfView(target.Kernel).Read();
            if (context.Json(r)) Json.Write(context.Output, w => WriteJson(w, report));
            else WriteTables(context.Output, report);
            foreach (var u in report.Unavailable) context.Error.WriteLine($"periscope: unavailable: {TerminalText.Escape(u)}");
            foreach (var g in report.Gaps) context.Error.WriteLine($"periscope: incomplete: {TerminalText.Escape(g)}");
            Warnings.Print(context, target.Kernel);
            return report.HasFinding ? 1 : report.IsIncomplete ? 3 : 0;
        }));
        return command;
    }

    private static void WriteJson(Utf8JsonWriter w, BpfReport report)
    {
        w.WriteStartObject();
        w.WriteStartArray("attachPointsRead");
        foreach (var p in report.AttachPointsRead) w.WriteStringValue(p.ToString());
        w.WriteEndArray();
        w.WriteNumber("classicSocketFilters", report.ClassicSocketFilters);
        w.WriteStartArray("programs");
        foreach (var p in report.Programs)
        {
            w.WriteStartObject();
            w.WriteNumber("id", p.Id);
            w.WriteNumber("type", p.Type);
            w.WriteString("typeName", p.TypeName);
            w.WriteString("name", p.Name);
            w.WriteString("tag", p.Tag);
            w.WriteNumber("instructions", p.InstructionCount);
            w.Address("jitAddress", p.JitAddress);
            w.WriteNumber("jitLength", p.JitLength);
            w.WriteNumber("loadTimeNs", p.LoadTimeNs);
            w.WriteStartArray("mapIds");
            foreach (uint m in p.MapIds) w.WriteNumberValue(m);
            w.WriteEndArray();
            w.WriteStartArray("helpers");
            foreach (var h in p.Helpers) w.WriteStringValue(h);
            w.WriteEndArray();
            w.WriteStartArray("riskyHelpers");
            foreach (var f in Enum.GetValues<BpfRiskyHelpers>().Where(f => f != BpfRiskyHelpers.None && p.Risky.HasFlag(f))) w.WriteStringValue(f.ToString());
            w.WriteEndArray();
            w.WriteBoolean("inIdList", p.Seen.HasFlag(BpfProgramViews.IdList));
            w.WriteStartArray("attachments");
            foreach (var a in p.Attachments)
            {
                w.WriteStartObject();
                w.WriteString("point", a.Point.ToString());
                w.WriteString("target", a.Target);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("finding", p.Finding.ToString());
            w.Address("prog", p.Address);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("maps");
        foreach (var m in report.Maps)
        {
            w.WriteStartObject();
            w.WriteNumber("id", m.Id);
            w.WriteNumber("type", m.Type);
            w.WriteString("typeName", m.TypeName);
            w.WriteString("name", m.Name);
            w.WriteNumber("keySize", m.KeySize);
            w.WriteNumber("valueSize", m.ValueSize);
            w.WriteNumber("maxEntries", m.MaxEntries);
            w.Address("map", m.Address);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("links");
        foreach (var l in report.Links)
        {
            w.WriteStartObject();
            w.WriteNumber("id", l.Id);
            w.WriteNumber("type", l.Type);
            w.WriteString("typeName", l.TypeName);
            w.WriteNumber("progId", l.ProgramId);
            w.Address("link", l.Address);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteTables(TextWriter output, BpfReport report)
    {
        static string N(long v) => v.ToString(CultureInfo.InvariantCulture);
        var progs = TableWriter.Plain("ID", "TYPE", "NAME", "TAG", "INSNS", "JIT", "MAPS", "LISTED", "ATTACHED", "HELPERS", "FINDING");
        foreach (var p in report.Programs)
            progs.AddRow(N(p.Id), p.TypeName, TableWriter.Esc(p.Name), p.Tag, N(p.InstructionCount), p.JitLength > 0 ? $"{TableWriter.Hex(p.JitAddress)}+{p.JitLength}" : "-",
                string.Join(",", p.MapIds), p.Seen.HasFlag(BpfProgramViews.IdList) ? "x" : "-",
                p.Attachments.Count == 0 ? "-" : TableWriter.Esc(string.Join("; ", p.Attachments.Select(a => a.Target))), string.Join(",", p.Helpers),
                p.Finding != BpfProgramFinding.None ? p.Finding.ToString() : p.Risky != BpfRiskyHelpers.None ? p.Risky.ToString() : "");
        TableWriter.Write(output, progs);
        output.WriteLine();
        var maps = TableWriter.Plain("MAP", "TYPE", "NAME", "KEY", "VALUE", "MAX");
        foreach (var m in report.Maps) maps.AddRow(N(m.Id), m.TypeName, TableWriter.Esc(m.Name), N(m.KeySize), N(m.ValueSize), N(m.MaxEntries));
        TableWriter.Write(output, maps);
        output.WriteLine();
        var links = TableWriter.Plain("LINK", "TYPE", "PROG");
        foreach (var l in report.Links) links.AddRow(N(l.Id), l.TypeName, N(l.ProgramId));
        TableWriter.Write(output, links);
        output.WriteLine($"attach points read: {string.Join(", ", report.AttachPointsRead)}");
        if (report.ClassicSocketFilters > 0)
            output.WriteLine($"classic (cBPF) socket filters: {report.ClassicSocketFilters} (SO_ATTACH_FILTER; no ID list holds them)");
        foreach (var p in report.Programs)
        {
            if (p.Finding == BpfProgramFinding.AttachedButNotListed)
                output.WriteLine($"CRITICAL: bpf program {p.Id} ({TableWriter.Esc(p.Name)}, {p.TypeName}) is attached ({TableWriter.Esc(string.Join("; ", p.Attachments.Select(a => a.Target)))}) but missing from prog_idr: hidden from bpftool");
            if (p.Risky.HasFlag(BpfRiskyHelpers.WritesUserMemory))
                output.WriteLine($"WARNING: bpf program {p.Id} ({TableWriter.Esc(p.Name)}) calls bpf_probe_write_user: it can write any process's memory");
            if (p.Risky.HasFlag(BpfRiskyHelpers.OverridesReturn))
                output.WriteLine($"WARNING: bpf program {p.Id} ({TableWriter.Esc(p.Name)}) calls bpf_override_return: it can change what kernel functions return");
        }
    }
}
