using System.CommandLine;
using System.Text;
using System.Text.Json;
using Periscope.Cli.Output;
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
