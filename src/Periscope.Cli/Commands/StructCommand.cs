using System.CommandLine;
using System.Text;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Linux;
using Periscope.Linux.Inference;
using Periscope.Linux.Objects;

namespace Periscope.Cli.Commands;

/// <summary>`periscope struct TYPE ADDRESS [--depth N] [--follow MEMBER]...`: any kernel object printed by its BTF type
/// (members, nested structs and unions, arrays, bitfields, enums by name; pointers followed on request), drgn-style.</summary>
public sealed class StructCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var type = new Argument<string>("type") { Description = "BTF type: task_struct, struct mm_struct, union ..., a typedef or base type" };
        var address = new Argument<string>("address") { Description = "Kernel virtual address: hex (0x optional), a symbol (init_task) or symbol+offset" };
        var depth = new Option<int>("--depth") { Description = "Levels of embedded structs, unions and arrays to expand", DefaultValueFactory = _ => 8 };
        var follow = new Option<string[]>("--follow") { Description = "Follow pointer members of this name (repeatable), printing their targets", AllowMultipleArgumentsPerToken = true };
        var elements = new Option<int>("--elements") { Description = "Elements shown per array", DefaultValueFactory = _ => 64 };
        var command = new Command("struct", "Print a kernel object by its BTF type (members, nested structs, arrays; pointers followed on request)")
            { type, address, depth, follow, elements };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            if (r.GetValue(depth) < 0) throw new CliUsageException("--depth must be 0 or more");
            ulong at = KernelAddressParser.Parse(r.GetValue(address)!, kernel.Symbols);
            if (kernel.Btf is null) return WithoutBtf(context, r, kernel, r.GetValue(type)!, at);
            var obj = kernel.Object(r.GetValue(type)!, at);
            var options = new ObjectPrintOptions
            {
                Depth = r.GetValue(depth), MaxArrayElements = Math.Max(0, r.GetValue(elements)),
                Follow = new HashSet<string>(r.GetValue(follow) ?? [], StringComparer.Ordinal),
            };
            var root = ObjectTree.Build(obj, options, out bool nodeLimit);
            bool incomplete = nodeLimit || HasErrors(root);
            if (context.Json(r)) Json.Write(context.Output, w => WriteJson(w, root));
            else
            {
                var sb = new StringBuilder();
                Render(sb, root, 0);
                context.Output.Write(sb.ToString());
            }
            if (nodeLimit) context.Error.WriteLine($"periscope: warning: printout cut at MaxObjectPrintNodes = {kernel.Limits.MaxObjectPrintNodes} values");
            Warnings.Print(context, kernel);
            return incomplete || kernel.IsIncomplete ? 3 : 0;
        }));
        return command;
    }

    /// <summary>
    /// Without BTF there are no types, only the offsets Periscope inferred (the constraint search's and the fixed
    /// layout facts'): the struct's known members in offset order, each shown as the pointer-size word at its offset, since the
    /// member's own size and type are BTF's to say. A type with no known member is an incomplete result (exit 3).
    /// </summary>
    private static int WithoutBtf(CommandContext context, ParseResult r, LinuxKernel kernel, string typeName, ulong at)
    {
        string name = typeName.StartsWith("struct ", StringComparison.Ordinal) ? typeName["struct ".Length..].Trim() : typeName.Trim();
        var known = new SortedSet<(int Offset, string Member)>();
        foreach (var m in kernel.Inference?.Members ?? [])
            if (m.Struct == name && m.Offset is { } o && m.Member != InferenceReport.SizeOfMember) known.Add((o, m.Member));
        foreach (var e in OffsetTable.Of(kernel.Offsets))
            if (e.Struct == name) known.Add((e.Offset, e.Member));
        int size = kernel.Reader.PointerSize;
        var children = known.DistinctBy(k => k.Member).Select(k =>
        {
            ulong address = at + (ulong)k.Offset;
            bool read = kernel.Reader.TryPointer(address, out ulong word);
            return new ObjectNode(k.Member, RawWordType, ObjectKind.Integer, address, 0, 0, read ? $"0x{word.ToString(size == 8 ? "x16" : "x8")}" : null, [],
                read ? null : $"unreadable at 0x{address:x}", false);
        }).ToList();
        var root = new ObjectNode("", "struct " + name, ObjectKind.Struct, at, 0, 0, null, children, null, false);
        if (context.Json(r)) Json.Write(context.Output, w => WriteJson(w, root));
        else
        {
            var sb = new StringBuilder();
            Render(sb, root, 0);
            context.Output.Write(sb.ToString());
        }
        context.Error.WriteLine(children.Count == 0
            ? $"periscope: no BTF, and no member of struct {TerminalText.Escape(name)} was inferred (periscope info --offsets lists what was)"
            : $"periscope: no BTF: the {children.Count} members of struct {TerminalText.Escape(name)} Periscope inferred, each as the {size}-byte word at its offset");
        Warnings.Print(context, kernel);
        return children.Count == 0 || HasErrors(root) || kernel.IsIncomplete ? 3 : 0;
    }

    /// <summary>The type shown for a member printed without BTF: a pointer-size word read at its inferred offset.</summary>
    internal const string RawWordType = "word at inferred offset";

    private static bool HasErrors(ObjectNode n) => n.Error is not null && !n.Cut || n.Children.Any(HasErrors);

    /// <summary>drgn-like text: <c>.name = (type) value</c>, composites in braces, one value per line; guest text escaped.</summary>
    internal static void Render(StringBuilder sb, ObjectNode n, int indent)
    {
        sb.Append(' ', indent * 2);
        if (indent == 0) sb.Append($"({TerminalText.Escape(n.TypeName)}) 0x{n.Address:x}");
        else
        {
            if (n.Name.Length != 0 && n.Name[0] != '[' && n.Name != "*") sb.Append('.');
            sb.Append(TerminalText.Escape(n.Name));
            if (n.BitSize != 0) sb.Append(':').Append(n.BitSize);
            sb.Append(n.Name.Length != 0 ? " = " : "").Append('(').Append(TerminalText.Escape(n.TypeName)).Append(')');
        }
        if (n.Value is not null) sb.Append(' ').Append(TerminalText.Escape(n.Value));
        if (n.Error is not null) sb.Append(" <").Append(TerminalText.Escape(n.Error)).Append('>');
        bool composite = n.Kind is ObjectKind.Struct or ObjectKind.Union or ObjectKind.Array && n.Value is null;
        if (composite && n.Children.Count == 0 && n.Cut) sb.Append(" {...}\n");
        else if (n.Children.Count > 0 || composite)
        {
            sb.Append(" {\n");
            foreach (var c in n.Children) Render(sb, c, indent + 1);
            if (n.Cut) sb.Append(' ', indent * 2 + 2).Append("...\n");
            sb.Append(' ', indent * 2).Append("}\n");
        }
        else sb.Append('\n');
    }

    internal static void WriteJson(Utf8JsonWriter w, ObjectNode n)
    {
        w.WriteStartObject();
        if (n.Name.Length != 0) w.WriteString("name", n.Name);
        w.WriteString("type", n.TypeName);
        w.WriteString("kind", n.Kind.ToString());
        w.Address("address", n.Address);
        if (n.BitSize != 0)
        {
            w.WriteNumber("bitOffset", n.BitOffset);
            w.WriteNumber("bitSize", n.BitSize);
        }
        if (n.Text is not null) w.WriteString("value", n.Text);
        else if (n.Value is not null) w.WriteString("value", n.Value);
        if (n.Error is not null) w.WriteString("error", n.Error);
        if (n.Cut) w.WriteBoolean("cut", true);
        if (n.Children.Count > 0)
        {
            w.WriteStartArray(n.Kind == ObjectKind.Array ? "elements" : n.Kind == ObjectKind.Pointer ? "target" : "members");
            foreach (var c in n.Children) WriteJson(w, c);
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }
}
