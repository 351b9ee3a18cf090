using System.CommandLine;
using Periscope.Cli.Output;

namespace Periscope.Cli.Commands;

/// <summary>`periscope maps PID`: the process's memory mappings, in /proc/PID/maps format.</summary>
public sealed class MapsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pid = new Argument<int>("pid") { Description = "Process id" };
        var command = new Command("maps", "Memory mappings of a process, like /proc/PID/maps") { pid };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            int id = r.GetValue(pid);
            var task = target.Kernel.Tasks.FirstOrDefault(t => t.Pid == id) ?? throw new CliUsageException($"no process with pid {id}");
            if (task.Mm == 0) throw new CliUsageException($"pid {id} ({TerminalText.Escape(task.Comm)}) has no user address space (kernel thread or zombie)");
            var vmas = target.Kernel.GetVmas(task);
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, vmas, (w, v) =>
                {
                    w.Address("start", v.Start);
                    w.Address("end", v.End);
                    w.WriteString("perms", v.Permissions);
                    w.Address("offset", v.Offset);
                    w.WriteString("dev", $"{v.DeviceMajor:x2}:{v.DeviceMinor:x2}");
                    w.WriteNumber("inode", v.Inode);
                    w.WriteString("path", v.Path);
                    w.Address("vma", v.Address);
                });
            }
            // One line per mapping: a path holding a newline must not forge a mapping (the writer keeps newlines).
            else foreach (var v in vmas) context.Output.WriteLine(TerminalText.Escape(v.ToMapsLine()));
            Warnings.Print(context, target.Kernel);
            return 0;
        }));
        return command;
    }
}
