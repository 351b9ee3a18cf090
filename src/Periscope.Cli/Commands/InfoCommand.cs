using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux;
using Periscope.Linux.Discovery;
using Periscope.Targets;

namespace Periscope.Cli.Commands;

/// <summary>`periscope info`: what the guest kernel is, where it lives, how each fact was found, and how long it took.</summary>
public sealed class InfoCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var command = new Command("info", "Kernel version, paging mode, KASLR bases, memory layout, how each was found, and timings");
        command.SetAction(r => context.WithTarget(r, target =>
        {
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
        yield return ("BTF types", $"{k.Btf.Count}");
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
        w.WriteNumber("btfTypes", k.Btf.Count);
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
