using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.X86;

namespace Periscope.Cli.Commands;

/// <summary>`periscope symbols [PATTERN] [--module NAME]`: the guest's kallsyms, decoded from memory, as /proc/kallsyms
/// shows them: the core kernel's symbols, then every live module's own symbols with "\t[module]".</summary>
public sealed class SymbolsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pattern = new Argument<string?>("pattern") { Description = "Substring or glob (* ?) to match symbol names", Arity = ArgumentArity.ZeroOrOne };
        var module = new Option<string?>("--module") { Description = "Only this module's symbols (its name as /proc/modules shows it)" };
        var command = new Command("symbols", "Kernel and module symbols (address, type, name, [module]), like /proc/kallsyms") { pattern, module };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            var symbols = kernel.Symbols;
            // /proc/kallsyms prints an address as wide as a pointer: 8 hex digits on i386.
            string format = kernel.Layout.Mode.Is32Bit() ? "x8" : "x16";
            string? p = r.GetValue(pattern);
            string? only = r.GetValue(module);
            IEnumerable<KernelSymbol> core = only is not null ? [] : p is null ? symbols.All : symbols.Match(p);
            IEnumerable<ModuleSymbol> modules = ModuleSymbols.Read(kernel, only).Where(s => p is null || KernelSymbols.NameMatches(p, s.Name));
            if (context.Json(r))
            {
                var rows = core.Select(s => (s.Address, s.Type, s.Name, Module: (string?)null))
                    .Concat(modules.Select(s => (s.Address, s.Type, s.Name, Module: (string?)s.Module)));
                Json.WriteArray(context.Output, rows, (w, s) =>
                {
                    w.Address("address", s.Address);
                    w.WriteString("type", s.Type.ToString());
                    w.WriteString("name", s.Name);
                    if (s.Module is not null) w.WriteString("module", s.Module);
                });
            }
            else
            {
                var sb = new System.Text.StringBuilder();
                foreach (var s in core) sb.Append($"{s.Address.ToString(format)} {s.Type} {TerminalText.Escape(s.Name)}\n");
                foreach (var s in modules)
                    sb.Append($"{s.Address.ToString(format)} {TerminalText.Escape(s.Type.ToString())} {TerminalText.Escape(s.Name)}\t[{TerminalText.Escape(s.Module)}]\n");
                context.Output.Write(sb.ToString());
            }
            Warnings.Print(context, kernel);
            return 0;
        }));
        return command;
    }
}
