using System.CommandLine;
using System.Globalization;
using Periscope.Cli.Output;
using Periscope.Linux.Files;

namespace Periscope.Cli.Commands;

/// <summary>`periscope lsof [PID]`: open files per process, named as /proc/PID/fd names them, with fdinfo's pos and flags.</summary>
public sealed class LsofCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pid = new Argument<int?>("pid") { Description = "Only this process (thread-group id)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("lsof", "List open files: pid, fd, access, kind, fdinfo flags (octal) and position, inode, path as /proc/PID/fd shows it") { pid };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            int? only = r.GetValue(pid);
            var processes = target.Kernel.Tasks.Where(t => t.Pid != 0 && (only is null || t.Tgid == only)).ToList();
            if (only is not null && processes.Count == 0) throw new CliUsageException($"no process with pid {only}");
            var reader = new OpenFiles(target.Kernel);
            if (reader.Unavailable is { } why) throw new CliUsageException($"lsof is unavailable on this kernel: {why}");
            var all = processes.Select(reader.Read).ToList();
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, all.SelectMany(p => p.Files.Select(f => (p, f))), (w, x) =>
                {
                    w.WriteNumber("pid", x.f.Pid);
                    w.WriteString("comm", x.p.Process.Comm);
                    w.WriteNumber("fd", x.f.Fd);
                    w.WriteString("access", x.f.Access.ToString());
                    w.WriteString("kind", x.f.Kind.ToString());
                    w.WriteNumber("flags", x.f.Flags);
                    w.WriteNumber("mode", x.f.Mode);
                    w.WriteNumber("pos", x.f.Position);
                    w.WriteNumber("inode", x.f.Inode);
                    if (x.f.MountId is { } m) w.WriteNumber("mountId", m); else w.WriteNull("mountId");
                    w.WriteString("path", x.f.Path);
                    w.Address("file", x.f.File);
                });
            }
            else
            {
                var table = TableWriter.Plain("PID", "COMM", "FD", "A", "KIND", "FLAGS", "POS", "INODE", "PATH");
                foreach (var p in all)
                    foreach (var f in p.Files)
                        table.AddRow(f.Pid.ToString(CultureInfo.InvariantCulture), TableWriter.Esc(p.Process.Comm), f.Fd.ToString(CultureInfo.InvariantCulture),
                            f.Access.ToString(), f.Kind.ToString(), "0" + Convert.ToString(f.Flags, 8), f.Position.ToString(CultureInfo.InvariantCulture),
                            f.Inode.ToString(CultureInfo.InvariantCulture), TableWriter.Esc(f.Path));
                TableWriter.Write(context.Output, table);
            }
            var gaps = all.Where(p => p.Gap is not null).Select(p => p.Gap!).ToList();
            foreach (var g in gaps) context.Error.WriteLine($"periscope: incomplete: {TerminalText.Escape(g)}");
            Warnings.Print(context, target.Kernel);
            return gaps.Count > 0 || target.Kernel.IsIncomplete ? 3 : 0;
        }));
        return command;
    }
}
