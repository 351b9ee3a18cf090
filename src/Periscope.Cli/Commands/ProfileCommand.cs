using System.CommandLine;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Linux;
using Periscope.Linux.Inference;
using Periscope.Targets;

namespace Periscope.Cli.Commands;

/// <summary>Output formats of `profile export`.</summary>
public enum ProfileFormat { Json, Isf }

/// <summary>
/// `periscope profile export`: what Periscope learned about this kernel (offsets and where each came from, the symbols
/// it uses, the kernel's identity, the inference evidence) as JSON, or as a Volatility 3 symbol table (ISF) subset.
/// </summary>
public sealed class ProfileCommand : ICliCommand
{
    /// <summary>The kernel symbols the model reads (data and anchors), exported with the offsets.</summary>
    private static readonly string[] SymbolsUsed =
        ["_text", "init_task", "init_mm", "init_cred", "init_top_pgt", "modules", "gate_vma", "gate_vma_ops", "special_mapping_vmops",
         "legacy_special_mapping_vmops", "vsyscall_mode", "linux_banner", "init_pid_ns", "sys_call_table", "idt_table", "page_offset_base",
         "vmalloc_base", "vmemmap_base"];

    public Command Build(CommandContext context)
    {
        var format = new Option<ProfileFormat>("--format") { Description = "json (Periscope's profile) or isf (Volatility 3 symbol table subset)", DefaultValueFactory = _ => ProfileFormat.Json };
        var output = new Option<string?>("--output", "-o") { Description = "Write to this file instead of standard output" };
        var export = new Command("export", "Write the offsets, symbols and kernel identity Periscope found (JSON or Volatility 3 ISF)") { format, output };
        export.SetAction(r => context.WithTarget(r, target =>
        {
            var k = target.Kernel;
            using var stream = r.GetValue(output) is { } path ? (Stream)File.Create(path) : new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                if (r.GetValue(format) == ProfileFormat.Isf) WriteIsf(w, k); else WriteJson(w, k);
            }
            if (stream is MemoryStream ms) context.Output.WriteLine(System.Text.Encoding.UTF8.GetString(ms.ToArray()));
            Warnings.Print(context, k);
            return 0;
        }));
        return new Command("profile", "Hand out what was learned about the kernel, so other tools need no profile") { export };
    }

    private static IEnumerable<(string Name, ulong Address)> Symbols(LinuxKernel k)
    {
        foreach (var name in SymbolsUsed)
            if (k.Symbols.TryGetAddress(name, out ulong a)) yield return (name, a);
        if (!k.Symbols.TryGetAddress("init_task", out _) && k.InitTask != 0) yield return ("init_task", k.InitTask);
    }

    private static void WriteJson(Utf8JsonWriter w, LinuxKernel k)
    {
        w.WriteStartObject();
        w.WriteString("format", "periscope-profile/1");
        w.WriteStartObject("kernel");
        w.WriteString("banner", k.Banner);
        w.WriteString("release", k.Release);
        w.WriteString("buildId", KernelIdentity.BuildId(k));
        w.WriteNumber("pagingLevels", (int)k.Layout.Mode);
        w.Address("textVirtual", k.Layout.TextVa);
        w.Address("virtualSlide", k.Layout.VirtualSlide);
        w.WriteEndObject();
        w.WriteString("offsetSource", k.OffsetSource.ToString());
        w.WriteStartArray("offsets");
        foreach (var e in OffsetTable.Of(k.Offsets).Where(e => e.Member != InferenceReport.SizeOfMember))
        {
            w.WriteStartObject();
            w.WriteString("struct", e.Struct);
            w.WriteString("member", e.Member);
            w.WriteNumber("offset", e.Offset);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartObject("sizes");
        if (k.Btf is { } btf)
            foreach (var s in OffsetTable.Of(k.Offsets).Select(e => e.Struct).Distinct())
                if (btf.FindStruct(s) is { } layout) w.WriteNumber(s, layout.Size);
        if (k.Btf is null) // without BTF, the sizes inferred as array strides
            foreach (var e in OffsetTable.Of(k.Offsets).Where(e => e.Member == InferenceReport.SizeOfMember)) w.WriteNumber(e.Struct, e.Offset);
        w.WriteEndObject();
        w.WriteStartArray("symbols");
        foreach (var (name, address) in Symbols(k))
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.Address("address", address);
            w.WriteNumber("fromText", (long)(address - k.Layout.TextVa));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (k.Inference is { } report)
        {
            w.WritePropertyName("evidence");
            OffsetsCache.WriteMembers(w, report);
        }
        w.WriteEndObject();
    }

    /// <summary>
    /// Volatility 3 ISF (format 6.2.0): user_types with the members known (typed as base types or void pointers: the
    /// member types themselves are not inferred), base_types, and symbols at their link-time addresses (relocated minus
    /// the KASLR slide, as System.map gives them).
    /// </summary>
    private static void WriteIsf(Utf8JsonWriter w, LinuxKernel k)
    {
        w.WriteStartObject();
        w.WriteStartObject("metadata");
        w.WriteString("format", "6.2.0");
        w.WriteStartObject("producer");
        w.WriteString("name", "periscope");
        w.WriteString("version", "1");
        w.WriteEndObject();
        w.WriteStartObject("linux");
        w.WriteStartArray("symbols");
        w.WriteStartObject();
        w.WriteString("kind", "symbols");
        w.WriteString("name", "periscope");
        w.WriteString("hash_type", "none");
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();

        w.WriteStartObject("base_types");
        foreach (var (name, size, kind, signed) in new[] { ("int", 4, "int", true), ("unsigned int", 4, "int", false), ("unsigned long", 8, "int", false), ("char", 1, "char", true), ("pointer", 8, "int", false), ("void", 0, "void", false) })
        {
            w.WriteStartObject(name);
            w.WriteNumber("size", size);
            w.WriteBoolean("signed", signed);
            w.WriteString("kind", kind);
            w.WriteString("endian", "little");
            w.WriteEndObject();
        }
        w.WriteEndObject();

        w.WriteStartObject("user_types");
        var table = OffsetTable.Of(k.Offsets);
        foreach (var group in table.Where(e => !e.Member.Contains('.') && e.Member != InferenceReport.SizeOfMember).GroupBy(e => e.Struct))
        {
            w.WriteStartObject(group.Key);
            w.WriteString("kind", "struct");
            int? inferredSize = table.Where(e => e.Struct == group.Key && e.Member == InferenceReport.SizeOfMember).Select(e => (int?)e.Offset).FirstOrDefault();
            w.WriteNumber("size", k.Btf?.FindStruct(group.Key)?.Size ?? inferredSize ?? group.Max(e => e.Offset) + 8);
            w.WriteStartObject("fields");
            foreach (var e in group)
            {
                w.WriteStartObject(e.Member);
                w.WriteNumber("offset", e.Offset);
                w.WriteStartObject("type");
                w.WriteString("kind", "pointer");
                w.WriteStartObject("subtype");
                w.WriteString("kind", "base");
                w.WriteString("name", "void");
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteStartObject("enums");
        w.WriteEndObject();
        w.WriteStartObject("symbols");
        foreach (var (name, address) in Symbols(k))
        {
            w.WriteStartObject(name);
            w.WriteNumber("address", address - k.Layout.VirtualSlide);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
