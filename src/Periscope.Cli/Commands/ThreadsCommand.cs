using System.CommandLine;
using Periscope.Cli.Output;

namespace Periscope.Cli.Commands;

/// <summary>`periscope threads [PID]`: every thread of every process (or of one).</summary>
public sealed class ThreadsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pid = new Argument<int?>("pid") { Description = "Only this process (thread-group id)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("threads", "List threads: tgid, tid, state, name (as /proc shows it), task") { pid };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            int? only = r.GetValue(pid);
            var tasks = target.Kernel.ProcessTable.Where(t => only is null || t.Tgid == only).ToList();
            if (only is not null && tasks.Count == 0) throw new CliUsageException($"no process with pid {only}");
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, tasks.SelectMany(t => t.Threads.Select(th => (t.Tgid, th))), (w, x) =>
                {
                    w.WriteNumber("tgid", x.Tgid);
                    w.WriteNumber("tid", x.th.Tid);
                    w.WriteString("state", x.th.State.ToString());
                    w.WriteString("comm", x.th.Comm);
                    w.WriteString("name", x.th.Name);
                    w.Address("task", x.th.Address);
                });
            }
            else
            {
                var table = TableWriter.Plain("TGID", "TID", "S", "COMM", "TASK");
                foreach (var t in tasks)
                    foreach (var th in t.Threads)
                        table.AddRow(t.Tgid.ToString(), th.Tid.ToString(), th.State.ToString(), TableWriter.Esc(th.Name), TableWriter.Hex(th.Address));
                TableWriter.Write(context.Output, table);
            }
            Warnings.Print(context, target.Kernel);
            return 0;
        }));
        return command;
    }
}
