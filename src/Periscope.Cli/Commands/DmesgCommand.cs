using System.CommandLine;
using System.Text;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope dmesg [--raw] [--level LEVEL]`: the kernel log from the printk ring buffer in guest memory, with
/// facility, level and timestamp like `dmesg -x`, or raw like `dmesg -r` (&lt;priority&gt;[seconds] text). Read from
/// outside, it survives a rootkit that filters the guest's own dmesg.</summary>
public sealed class DmesgCommand : ICliCommand
{
    private static readonly string[] Facilities =
        ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"];

    public Command Build(CommandContext context)
    {
        var raw = new Option<bool>("--raw", "-r") { Description = "Print <priority>[seconds] text, as the syslog interface (dmesg -r) does" };
        var level = new Option<LogLevel?>("--level") { Description = "Only messages of this level or more urgent (emerg, alert, crit, err, warn, notice, info, debug)" };
        var command = new Command("dmesg", "The kernel log, read from the printk ring buffer (level, facility, timestamp)") { raw, level };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            var records = new PrintkLog(kernel).Read();
            if (r.GetValue(level) is { } max) records = records.Where(x => x.Level <= max).ToList();
            if (context.Json(r))
                Json.WriteArray(context.Output, records, (w, x) =>
                {
                    w.WriteNumber("sequence", x.Sequence);
                    w.WriteNumber("timestampNs", x.TimestampNs);
                    w.WriteString("level", LevelName(x.Level));
                    w.WriteString("facility", FacilityName(x.Facility));
                    w.WriteNumber("callerId", x.CallerId);
                    w.WriteString("text", x.Text);
                    if (x.Truncated) w.WriteBoolean("truncated", true);
                });
            else
            {
                var sb = new StringBuilder();
                bool rawFormat = r.GetValue(raw);
                foreach (var x in records)
                {
                    string prefix = rawFormat ? $"<{(x.Facility << 3) | (int)x.Level}>{x.TimePrefix} "
                        : $"{FacilityName(x.Facility),-5}:{LevelName(x.Level),-6}: {x.TimePrefix} ";
                    foreach (var line in x.Text.Split('\n')) sb.Append(prefix).Append(TerminalText.Escape(line)).Append('\n');
                }
                context.Output.Write(sb.ToString());
            }
            Warnings.Print(context, kernel);
            return kernel.IsIncomplete ? 3 : 0;
        }));
        return command;
    }

    private static string LevelName(LogLevel level) => level.ToString().ToLowerInvariant();
    private static string FacilityName(int facility) => facility >= 0 && facility < Facilities.Length ? Facilities[facility] : facility.ToString();
}
