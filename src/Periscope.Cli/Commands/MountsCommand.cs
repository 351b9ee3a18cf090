using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope mounts [PID]`: the mounts of a process's mount namespace (default pid 1) as /proc/PID/mountinfo
/// shows them, up to the super block's ro/rw (a file system's own options are printed by its code, not stored).</summary>
public sealed class MountsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pid = new Argument<int?>("pid") { Description = "Process whose mount namespace to list (default 1)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("mounts", "Mounts of a process's mount namespace, like /proc/PID/mountinfo") { pid };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var kernel = target.Kernel;
            int id = r.GetValue(pid) ?? 1;
            var task = kernel.Tasks.FirstOrDefault(t => t.Pid == id) ?? throw new CliUsageException($"no process with pid {id}");
            var reader = new MountReader(kernel);
            if (reader.Unavailable is { } why) throw new KernelModelException(why);
            ulong ns = reader.NamespaceOf(task) ?? throw new CliUsageException($"pid {id} has no mount namespace (it has exited)");
            var mounts = reader.Read(ns, reader.RootMountOf(task));
            if (context.Json(r))
                Json.WriteArray(context.Output, mounts, (w, m) =>
                {
                    w.WriteNumber("mountId", m.MountId);
                    w.WriteNumber("parentId", m.ParentId);
                    w.WriteString("device", $"{m.Major}:{m.Minor}");
                    w.WriteString("root", m.Root);
                    w.WriteString("mountPoint", m.MountPoint);
                    w.WriteString("options", m.Options);
                    w.WriteString("optionalFields", m.OptionalFields);
                    w.WriteString("fsType", m.FsType);
                    w.WriteString("source", m.Source);
                    w.WriteString("superOptions", m.SuperOptions);
                    w.Address("mount", m.Address);
                });
            else foreach (var m in mounts) context.Output.WriteLine(TerminalText.Escape(m.ToMountInfoLine()));
            Warnings.Print(context, kernel);
            return kernel.IsIncomplete ? 3 : 0;
        }));
        return command;
    }
}
