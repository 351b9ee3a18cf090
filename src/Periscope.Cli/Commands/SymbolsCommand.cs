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
            // An i386 kernel has no model yet, but its kallsyms decode: show those, as /proc/kallsyms does (8 digits).
            Periscope.Linux.LinuxKernel? kernel;
            KernelSymbols symbols;
            int digits = 16;
            try { kernel = target.Kernel; symbols = kernel.Symbols; }
            catch (Periscope.Linux.Discovery.UnsupportedKernelException e) when (e.Kallsyms is not null && e.Layout is { } l && l.Mode.Is32Bit())
            {
                (kernel, symbols, digits) = (null, e.Kallsyms.Symbols, 8);
                context.Error.WriteLine("periscope: warning: 32-bit kernel: core kallsyms only; module symbols need the kernel model, which reads 64-bit kernels only so far");
            }
            string? p = r.GetValue(pattern);
            string? only = r.GetValue(module);
            IEnumerable<KernelSymbol> core = only is not null ? [] : p is null ? symbols.All : symbols.Match(p);
            IEnumerable<ModuleSymbol> modules = kernel is null ? [] : ModuleSymbols.Read(kernel, only).Where(s => p is null || KernelSymbols.NameMatches(p, s.Name));
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
                foreach (var s in core) sb.Append($"{s.Address.ToString(digits == 8 ? "x8" : "x16")} {s.Type} {TerminalText.Escape(s.Name)}\n");
                foreach (var s in modules)
                    sb.Append($"{s.Address:x16} {TerminalText.Escape(s.Type.ToString())} {TerminalText.Escape(s.Name)}\t[{TerminalText.Escape(s.Module)}]\n");
                context.Output.Write(sb.ToString());
            }
            if (kernel is null) return VerifyCommand.Incomplete; // module symbols could not be read
            Warnings.Print(context, kernel);
            return 0;
        }));
        return command;
    }
}
