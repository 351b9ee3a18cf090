using System.CommandLine;
using Periscope.Cli.Output;

namespace Periscope.Cli.Commands;

/// <summary>`periscope symbols [PATTERN]`: the guest kernel's kallsyms, decoded from memory, in /proc/kallsyms format.</summary>
public sealed class SymbolsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pattern = new Argument<string?>("pattern") { Description = "Substring or glob (* ?) to match symbol names", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("symbols", "Kernel symbols (address, type, name), like /proc/kallsyms") { pattern };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var symbols = target.Kernel.Symbols;
            string? p = r.GetValue(pattern);
            var list = p is null ? symbols.All : symbols.Match(p);
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, list, (w, s) =>
                {
                    w.Address("address", s.Address);
                    w.WriteString("type", s.Type.ToString());
                    w.WriteString("name", s.Name);
                });
            }
            else
            {
                var sb = new System.Text.StringBuilder();
                foreach (var s in list) sb.Append($"{s.Address:x16} {s.Type} {TerminalText.Escape(s.Name)}\n");
                context.Output.Write(sb.ToString());
            }
            return 0;
        }));
        return command;
    }
}
