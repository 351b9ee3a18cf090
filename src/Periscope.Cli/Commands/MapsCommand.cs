using System.CommandLine;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope maps [PID]`: a process's memory mappings in /proc/PID/maps format; without a pid, every user
/// process's, each under a "pid N (comm):" line.</summary>
public sealed class MapsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pid = new Argument<int?>("pid") { Description = "Process id (default: every user process)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("maps", "Memory mappings of a process (or of all), like /proc/PID/maps") { pid };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            bool json = context.Json(r);
            if (r.GetValue(pid) is not { } id)
            {
                var tasks = target.Kernel.Tasks.Where(t => t.Mm != 0 && !t.IsKernelThread).ToList();
                if (json)
                    Json.WriteArray(context.Output, tasks, (w, t) =>
                    {
                        w.WriteNumber("pid", t.Pid);
                        w.WriteString("comm", t.Comm);
                        w.WriteStartArray("maps");
                        foreach (var v in target.Kernel.GetVmas(t))
                        {
                            w.WriteStartObject();
                            WriteVma(w, v);
                            w.WriteEndObject();
                        }
                        w.WriteEndArray();
                    });
                else
                    foreach (var t in tasks)
                    {
                        context.Output.WriteLine($"pid {t.Pid} ({TerminalText.Escape(t.Comm)}):");
                        foreach (var v in target.Kernel.GetVmas(t)) context.Output.WriteLine(TerminalText.Escape(v.ToMapsLine()));
                    }
                Warnings.Print(context, target.Kernel);
                return 0;
            }
            var task = target.Kernel.Tasks.FirstOrDefault(t => t.Pid == id) ?? throw new CliUsageException($"no process with pid {id}");
            if (task.Mm == 0) throw new CliUsageException($"pid {id} ({TerminalText.Escape(task.Comm)}) has no user address space (kernel thread or zombie)");
            var vmas = target.Kernel.GetVmas(task);
            if (json) Json.WriteArray(context.Output, vmas, WriteVma);
            // One line per mapping: a path holding a newline must not forge a mapping (the writer keeps newlines).
            else foreach (var v in vmas) context.Output.WriteLine(TerminalText.Escape(v.ToMapsLine()));
            Warnings.Print(context, target.Kernel);
            return 0;
        }));
        return command;
    }

    private static void WriteVma(Utf8JsonWriter w, Vma v)
    {
        w.Address("start", v.Start);
        w.Address("end", v.End);
        w.WriteString("perms", v.Permissions);
        w.Address("offset", v.Offset);
        w.WriteString("dev", $"{v.DeviceMajor:x2}:{v.DeviceMinor:x2}");
        w.WriteNumber("inode", v.Inode);
        w.WriteString("path", v.Path);
        w.Address("vma", v.Address);
    }
}
