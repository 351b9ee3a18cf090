using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope namespaces [--type TYPE]`: every namespace some process is in, with the processes that share it
/// (as lsns lists them: inode, type, process count, lowest pid and its name); inode numbers as /proc/PID/ns/* shows them.</summary>
public sealed class NamespacesCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var type = new Option<NamespaceType?>("--type") { Description = "Only namespaces of this type (cgroup, ipc, mnt, net, pid, time, user, uts)" };
        var command = new Command("namespaces", "Namespaces and the processes that share them (type, inode, processes), like lsns") { type };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            var reader = new ProcessDetailsReader(kernel);
            var only = r.GetValue(type);
            if (reader.NamespaceLinks.Unavailable is { } why) kernel.Diagnostics.ReportIncomplete("namespaces", why);
            var members = new Dictionary<(NamespaceType, ulong), List<LinuxTask>>();
            // The idle tasks (pid 0) are left out, as /proc (which has no pid 0) and lsns leave them out.
            foreach (var task in kernel.Tasks.Where(t => t.Pid != 0))
                foreach (var link in reader.Namespaces(task))
                {
                    // pid_for_children and time_for_children name namespaces that `pid` and `time` list already.
                    if (link.Type is NamespaceType.PidForChildren or NamespaceType.TimeForChildren) continue;
                    if (only is { } o && link.Type != o) continue;
                    if (!members.TryGetValue((link.Type, link.Inode), out var list)) members[(link.Type, link.Inode)] = list = [];
                    list.Add(task);
                }
            var rows = members.OrderBy(m => m.Key.Item2).ThenBy(m => m.Key.Item1)
                .Select(m => (Type: m.Key.Item1, Inode: m.Key.Item2, Tasks: m.Value.OrderBy(t => t.Pid).ToList())).ToList();
            if (context.Json(r))
                Json.WriteArray(context.Output, rows, (w, n) =>
                {
                    w.WriteNumber("inode", n.Inode);
                    w.WriteString("type", NamespaceLink.ProcNameOf(n.Type));
                    w.WriteNumber("processes", n.Tasks.Count);
                    w.WriteStartArray("pids");
                    foreach (var t in n.Tasks) w.WriteNumberValue(t.Pid);
                    w.WriteEndArray();
                });
            else
            {
                var table = TableWriter.Plain("NS", "TYPE", "NPROCS", "PID", "COMMAND");
                foreach (var n in rows)
                    table.AddRow(n.Inode.ToString(), NamespaceLink.ProcNameOf(n.Type), n.Tasks.Count.ToString(), n.Tasks[0].Pid.ToString(), TableWriter.Esc(n.Tasks[0].Name));
                TableWriter.Write(context.Output, table);
            }
            Warnings.Print(context, kernel);
            return kernel.IsIncomplete ? 3 : 0;
        }));
        return command;
    }
}
