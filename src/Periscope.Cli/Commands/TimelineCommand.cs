using System.CommandLine;
using System.Globalization;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope timeline [--dmesg]`: boot, process starts, the kernel log (on request) and the timekeeper's last
/// update, in one list sorted by time since boot, with wall-clock times (UTC).</summary>
public sealed class TimelineCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var dmesg = new Option<bool>("--dmesg") { Description = "Also list every kernel log record" };
        var command = new Command("timeline", "Everything the kernel timestamps (boot, process starts, kernel log), sorted by time") { dmesg };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            var events = new TimelineReader(kernel).Read(r.GetValue(dmesg));
            if (context.Json(r))
                Json.WriteArray(context.Output, events, (w, e) =>
                {
                    w.WriteNumber("monotonicNs", e.MonotonicNs);
                    if (e.Wall is { } wall) w.WriteString("wall", wall.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture)); else w.WriteNull("wall");
                    w.WriteString("kind", e.Kind.ToString());
                    if (e.Pid is { } pid) w.WriteNumber("pid", pid);
                    w.WriteString("description", e.Description);
                });
            else
            {
                var table = TableWriter.Plain("UPTIME", "TIME (UTC)", "EVENT", "PID", "WHAT");
                foreach (var e in events)
                    table.AddRow($"{e.MonotonicNs / 1_000_000_000}.{e.MonotonicNs % 1_000_000_000 / 1000:D6}",
                        e.Wall?.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) ?? "?", e.Kind.ToString(),
                        e.Pid?.ToString(CultureInfo.InvariantCulture) ?? "", TableWriter.Esc(e.Description));
                TableWriter.Write(context.Output, table);
            }
            Warnings.Print(context, kernel);
            return kernel.IsIncomplete ? 3 : 0;
        }));
        return command;
    }
}
