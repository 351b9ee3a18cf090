using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`ps --tree`: parents before their children, depth-first in pid order; a task whose parent is not listed is a root.</summary>
internal static class ProcessTree
{
    public static Dictionary<ulong, int> Order(ref IReadOnlyList<LinuxTask> tasks)
    {
        var byPid = new Dictionary<int, LinuxTask>();
        foreach (var t in tasks) byPid.TryAdd(t.Pid, t);
        var children = tasks.Where(t => t.Pid != 0 || t.IdleCpu is null)
            .ToLookup(t => t.ParentPid != 0 && t.ParentPid != t.Pid && byPid.ContainsKey(t.ParentPid) ? t.ParentPid : -1);
        var ordered = new List<LinuxTask>(tasks.Count);
        var depths = new Dictionary<ulong, int>();
        foreach (var idle in tasks.Where(t => t.Pid == 0 && t.IdleCpu is not null && depths.TryAdd(t.Address, 0))) ordered.Add(idle);
        // Explicit stack: depth is bounded by the number of tasks, each placed once (a parent cycle cannot loop).
        var stack = new Stack<(LinuxTask Task, int Depth)>();
        foreach (var root in children[-1].OrderByDescending(t => t.Pid)) stack.Push((root, 0));
        while (stack.Count > 0)
        {
            var (task, depth) = stack.Pop();
            if (!depths.TryAdd(task.Address, depth)) continue;
            ordered.Add(task);
            if (task.Pid == 0) continue;
            foreach (var child in children[task.Pid].OrderByDescending(t => t.Pid)) stack.Push((child, depth + 1));
        }
        foreach (var t in tasks) if (depths.TryAdd(t.Address, 0)) ordered.Add(t); // in a parent cycle: shown at the root
        tasks = ordered;
        return depths;
    }

    public static string Indent(Dictionary<ulong, int>? depths, LinuxTask t) =>
        depths is not null && depths.TryGetValue(t.Address, out int d) && d > 0 ? new string(' ', 2 * (d - 1)) + "\\_ " : "";
}

/// <summary>`ps --full` and `ps -o COLUMNS`: details each process's own memory and credentials hold.</summary>
internal static class ProcessColumns
{
    private static readonly string[] Full = ["pid", "ppid", "uid", "start", "cgroup", "container", "cmdline"];

    public static readonly string[] Names =
        ["pid", "tgid", "ppid", "uid", "gid", "euid", "state", "threads", "comm", "exe", "start", "caps", "ns", "cgroup", "container", "cmdline", "environ"];

    public static string[]? Parse(string[]? columns, bool full)
    {
        var list = (columns ?? []).SelectMany(c => c.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        foreach (var c in list)
            if (!Names.Contains(c)) throw new CliUsageException($"unknown ps column '{c}'; known: {string.Join(',', Names)}");
        if (list.Count == 0) return full ? Full : null;
        return list.Distinct().ToArray();
    }

    public static int Print(CommandContext context, ParseResult r, LinuxKernel kernel, IReadOnlyList<LinuxTask> tasks, Dictionary<ulong, int>? depths, string[] columns)
    {
        bool environ = columns.Contains("environ");
        var reader = new ProcessDetailsReader(kernel);
        var rows = tasks.Select(t => reader.Read(t, environ)).ToList();
        bool incomplete = reader.Unavailable.Count > 0
            || rows.Any(d => d.Problems.Count > 0 || d.CommandLine is { IsComplete: false } || d.Environment is { IsComplete: false });
        if (context.Json(r))
            Json.WriteArray(context.Output, rows, (w, d) =>
            {
                PsCommand.WriteJson(w, d.Task);
                WriteDetails(w, d);
            });
        else
        {
            var table = TableWriter.Plain(columns.Select(c => c.ToUpperInvariant()).ToArray());
            foreach (var d in rows) table.AddRow(columns.Select(c => Cell(c, d, depths)).ToArray());
            TableWriter.Write(context.Output, table);
        }
        foreach (var u in reader.Unavailable) context.Error.WriteLine($"periscope: unavailable: {TerminalText.Escape(u)}");
        foreach (var d in rows)
            foreach (var p in d.Problems) context.Error.WriteLine($"periscope: pid {d.Task.Pid}: {TerminalText.Escape(p)}");
        Warnings.Print(context, kernel);
        return incomplete || kernel.IsIncomplete ? 3 : 0;
    }

    private static string Cell(string column, ProcessDetails d, Dictionary<ulong, int>? depths)
    {
        var t = d.Task;
        var c = d.Credentials;
        return column switch
        {
            "pid" => t.Pid.ToString(CultureInfo.InvariantCulture),
            "tgid" => t.Tgid.ToString(CultureInfo.InvariantCulture),
            "ppid" => t.ParentPid.ToString(CultureInfo.InvariantCulture),
            "uid" => c?.Uid.ToString(CultureInfo.InvariantCulture) ?? "?",
            "gid" => c?.Gid.ToString(CultureInfo.InvariantCulture) ?? "?",
            "euid" => c?.Euid.ToString(CultureInfo.InvariantCulture) ?? "?",
            "state" => t.State.ToString(),
            "threads" => t.ThreadCount.ToString(CultureInfo.InvariantCulture),
            "comm" => TableWriter.Esc(ProcessTree.Indent(depths, t) + t.Name),
            "exe" => TableWriter.Esc(t.ExePath ?? ""),
            "start" => d.StartBootTimeNs is { } ns ? $"{ns / 1_000_000_000}.{ns % 1_000_000_000 / 10_000_000:D2}" : "?",
            "caps" => c is null ? "?" : $"{c.CapEffective:x16}",
            "ns" => string.Join(' ', d.Namespaces.Where(n => n.Type is NamespaceType.Mnt or NamespaceType.Net or NamespaceType.Pid or NamespaceType.Uts or NamespaceType.User)
                .Select(n => $"{n.ProcName}:{n.Inode}")),
            "cgroup" => TableWriter.Esc(d.CgroupPath ?? "?"),
            "container" => d.ContainerId is { } id ? id[..12] : "",
            "cmdline" => TableWriter.Esc(Joined(d.CommandLine) ?? (t.IsKernelThread ? $"[{t.Name}]" : "")),
            "environ" => TableWriter.Esc(Joined(d.Environment) ?? ""),
            _ => "",
        };
    }

    private static string? Joined(ProcessMemoryText? text) => text is null ? null : string.Join(' ', text.Strings());

    private static void WriteDetails(Utf8JsonWriter w, ProcessDetails d)
    {
        WriteText(w, "cmdline", d.CommandLine);
        if (d.Environment is not null) WriteText(w, "environ", d.Environment);
        if (d.StartTimeNs is { } st) w.WriteNumber("startTimeNs", st); else w.WriteNull("startTimeNs");
        if (d.StartBootTimeNs is { } sb) w.WriteNumber("startBootTimeNs", sb); else w.WriteNull("startBootTimeNs");
        if (d.StartTicks is { } ticks) w.WriteNumber("startTicks", ticks); else w.WriteNull("startTicks");
        if (d.Credentials is { } c)
        {
            w.WriteStartObject("credentials");
            w.WriteStartArray("uid"); foreach (var v in new[] { c.Uid, c.Euid, c.Suid, c.Fsuid }) w.WriteNumberValue(v); w.WriteEndArray();
            w.WriteStartArray("gid"); foreach (var v in new[] { c.Gid, c.Egid, c.Sgid, c.Fsgid }) w.WriteNumberValue(v); w.WriteEndArray();
            w.WriteString("capInh", $"{c.CapInheritable:x16}");
            w.WriteString("capPrm", $"{c.CapPermitted:x16}");
            w.WriteString("capEff", $"{c.CapEffective:x16}");
            w.WriteString("capBnd", $"{c.CapBounding:x16}");
            w.WriteString("capAmb", $"{c.CapAmbient:x16}");
            w.WriteEndObject();
        }
        else w.WriteNull("credentials");
        w.WriteStartObject("namespaces");
        foreach (var n in d.Namespaces) w.WriteNumber(n.ProcName, n.Inode);
        w.WriteEndObject();
        w.WriteString("cgroup", d.CgroupPath);
        w.WriteString("containerId", d.ContainerId);
        if (d.Problems.Count > 0)
        {
            w.WriteStartArray("problems");
            foreach (var p in d.Problems) w.WriteStringValue(p);
            w.WriteEndArray();
        }
    }

    private static void WriteText(Utf8JsonWriter w, string name, ProcessMemoryText? text)
    {
        if (text is null) { w.WriteNull(name); return; }
        w.WriteStartObject(name);
        w.WriteStartArray("strings");
        foreach (var s in text.Strings()) w.WriteStringValue(s);
        w.WriteEndArray();
        w.WriteString("hex", Convert.ToHexStringLower(text.Bytes));
        w.WriteBoolean("complete", text.IsComplete);
        w.WriteStartArray("notResident");
        foreach (var (offset, length) in text.Missing)
        {
            w.WriteStartObject();
            w.WriteNumber("offset", offset);
            w.WriteNumber("length", length);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
