using System.Globalization;

namespace Periscope.GuestTests;

/// <summary>The guest's own view of itself, printed by its /init on the second serial port (see guest/init).</summary>
public sealed class GroundTruth
{
    public string Banner { get; private set; } = "";
    public string CommandLine { get; private set; } = "";
    public List<(ulong Address, char Type, string Name)> Symbols { get; } = [];
    public List<string> ModuleSymbolLines { get; } = [];
    public List<ModuleLine> Modules { get; } = [];
    public Dictionary<int, ProcessStat> Processes { get; } = [];
    public Dictionary<int, List<MapsLine>> Maps { get; } = [];

    public sealed record ModuleLine(string Name, ulong Size, int References, string State, ulong Base);
    public sealed record StatLine(int Pid, string Comm, char State, int ParentPid);
    public sealed record ProcessStat(StatLine Leader, List<StatLine> Threads);
    public sealed record MapsLine(ulong Start, ulong End, string Perms, ulong Offset, string Device, ulong Inode, string Path);

    public static GroundTruth Parse(string text)
    {
        var truth = new GroundTruth();
        string section = "";
        int pid = 0;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                if (parts[0] == "@@DONE") break;
                section = parts.Length > 1 ? parts[1] : "";
                pid = parts.Length > 2 ? int.Parse(parts[2], CultureInfo.InvariantCulture) : 0;
                continue;
            }
            if (line.Length == 0) continue;
            switch (section)
            {
                case "banner": truth.Banner = line; break;
                case "cmdline": truth.CommandLine = line; break;
                case "kallsyms":
                    if (line.Contains('\t')) { truth.ModuleSymbolLines.Add(line); break; } // module symbols: "addr t name\t[module]"
                    truth.Symbols.Add((ulong.Parse(line[..16], NumberStyles.HexNumber), line[17], line[19..]));
                    break;
                case "modules":
                {
                    var f = line.Split(' ');
                    truth.Modules.Add(new ModuleLine(f[0], ulong.Parse(f[1]), int.Parse(f[2]), f[4], ulong.Parse(f[5].AsSpan(2), NumberStyles.HexNumber)));
                    break;
                }
                case "stat":
                {
                    var s = ParseStat(line);
                    if (!truth.Processes.TryGetValue(pid, out var p)) truth.Processes[pid] = p = new ProcessStat(s, []);
                    else p.Threads.Add(s);
                    break;
                }
                case "maps":
                    if (!truth.Maps.TryGetValue(pid, out var maps)) truth.Maps[pid] = maps = [];
                    maps.Add(ParseMaps(line));
                    break;
            }
        }
        return truth;
    }

    /// <summary>/proc/PID/stat: "pid (comm) S ppid ..."; comm may hold spaces and parentheses, so split at the last ')'.</summary>
    public static StatLine ParseStat(string line)
    {
        int open = line.IndexOf('(');
        int close = line.LastIndexOf(')');
        int pid = int.Parse(line.AsSpan(0, open).Trim(), CultureInfo.InvariantCulture);
        string comm = line[(open + 1)..close];
        var rest = line[(close + 2)..].Split(' ');
        return new StatLine(pid, comm, rest[0][0], int.Parse(rest[1], CultureInfo.InvariantCulture));
    }

    public static MapsLine ParseMaps(string line)
    {
        var f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        var range = f[0].Split('-');
        return new MapsLine(ulong.Parse(range[0], NumberStyles.HexNumber), ulong.Parse(range[1], NumberStyles.HexNumber), f[1],
            ulong.Parse(f[2], NumberStyles.HexNumber), f[3], ulong.Parse(f[4], CultureInfo.InvariantCulture), f.Length > 5 ? f[5].Trim() : "");
    }
}
