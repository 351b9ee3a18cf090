using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Targets.Benchmarks;

namespace Periscope.Cli.Commands;

/// <summary>`periscope bench --dump FILE`: the performance numbers BENCHMARKS.md reports, measured on this machine.</summary>
public sealed class BenchCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var iterations = new Option<int>("--iterations") { Description = "Warm attach runs", DefaultValueFactory = _ => 30 };
        var discovery = new Option<string[]>("--discovery")
        {
            Description = "Only the discovery-cost benchmark: attach with CR3, without it, and with the full scan forced, on --dump and these dumps side by side",
            AllowMultipleArgumentsPerToken = true,
        };
        var command = new Command("bench", "Measure attach+ps, translation, page reads and integrity sweeps on a dump (or sweeps on a live guest)") { iterations, discovery };
        command.SetAction(r =>
        {
            IReadOnlyList<BenchResult> results;
            if (r.GetValue(context.Options.Qemu) is not null)
            {
                // A running guest, not paused: what a monitor sweeping a live VM pays.
                using var target = context.OpenTarget(r);
                if (r.GetValue(context.Options.Pause)) context.Error.WriteLine("periscope: --pause ignored: bench measures the running guest");
                results = IntegrityBenchmarks.Run(target.Kernel, Math.Max(1, r.GetValue(iterations)), "live, unpaused: ").ToList();
            }
            else
            {
                string dump = r.GetValue(context.Options.Dump) ?? throw new CliUsageException("bench needs --dump FILE or --qemu RAMFILE");
                if (r.GetValue(context.Options.Pause)) context.Error.WriteLine("periscope: --pause ignored: a dump does not change");
                results = r.GetResult(discovery) is null
                    ? KernelBenchmarks.Run(dump, Math.Max(1, r.GetValue(iterations)))
                    : DiscoveryBenchmarks.Run([dump, .. r.GetValue(discovery) ?? []], Math.Max(1, r.GetValue(iterations)));
            }
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, results, (w, b) =>
                {
                    w.WriteString("name", b.Name.Trim());
                    w.WriteNumber("value", Math.Round(b.Value, 3));
                    w.WriteString("unit", b.Unit);
                    w.WriteString("detail", b.Detail);
                });
            }
            else
            {
                var table = TableWriter.Plain("MEASURE", "VALUE", "UNIT", "DETAIL");
                foreach (var b in results) table.AddRow(TableWriter.Esc(b.Name), b.Value.ToString("0.00"), b.Unit, TableWriter.Esc(b.Detail));
                TableWriter.Write(context.Output, table);
            }
            return 0;
        });
        return command;
    }
}
