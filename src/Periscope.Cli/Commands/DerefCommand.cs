using System.CommandLine;
using Periscope.Cli.Output;

namespace Periscope.Cli.Commands;

/// <summary>`periscope deref ADDRESS [--count N]`: the pointer stored at ADDRESS, then the pointer stored where that one
/// points, N times (a chain such as init_task.tasks.next->next...), each named by its kernel symbol when it has one.</summary>
public sealed class DerefCommand : ICliCommand
{
    private const int MaxChain = 4096;

    public Command Build(CommandContext context)
    {
        var address = new Argument<string>("address") { Description = "Kernel virtual address: hex (0x optional), a symbol or symbol+offset" };
        var count = new Option<int>("--count") { Description = $"Pointers to follow in a chain (1..{MaxChain})", DefaultValueFactory = _ => 1 };
        var command = new Command("deref", "Read the pointer stored at a kernel address (and follow the chain --count times)") { address, count };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            int n = r.GetValue(count);
            if (n is < 1 or > MaxChain) throw new CliUsageException($"--count must be 1..{MaxChain}");
            ulong at = KernelAddressParser.Parse(r.GetValue(address)!, kernel.Symbols);
            var chain = new List<(ulong At, ulong? Value)>();
            for (int i = 0; i < n; i++)
            {
                if (!kernel.Reader.TryPointer(at, out ulong value)) { chain.Add((at, null)); break; }
                chain.Add((at, value));
                at = value;
            }
            string Name(ulong a) => kernel.Symbols.TryFindContaining(a, out _, out _) ? kernel.Symbols.Describe(a) : "";
            if (context.Json(r))
                Json.WriteArray(context.Output, chain, (w, c) =>
                {
                    w.Address("address", c.At);
                    w.Address("value", c.Value);
                    if (c.Value is { } v && Name(v) is { Length: > 0 } s) w.WriteString("symbol", s);
                });
            else
            {
                var table = TableWriter.Plain("ADDRESS", "VALUE", "SYMBOL");
                foreach (var c in chain)
                    table.AddRow(TableWriter.Hex(c.At), c.Value is { } v ? TableWriter.Hex(v) : "unreadable", c.Value is { } v2 ? TableWriter.Esc(Name(v2)) : "");
                TableWriter.Write(context.Output, table);
            }
            Warnings.Print(context, kernel);
            return chain[^1].Value is null ? 3 : 0;
        }));
        return command;
    }
}
