using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope ps`: processes (thread-group leaders and kernel threads) from the kernel's task list.</summary>
public sealed class PsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var tree = new Option<bool>("--tree") { Description = "Show the process tree (children under their parent, indented)" };
        var pid = new Option<int[]>("--pid") { Description = "Only these process ids (repeatable)", AllowMultipleArgumentsPerToken = true };
        var comm = new Option<string[]>("--comm") { Description = "Only processes with this name (repeatable; the name as /proc shows it, or the raw comm)", AllowMultipleArgumentsPerToken = true };
        var full = new Option<bool>("--full") { Description = "Details from each process: start time, credentials, cgroup, container, command line (from its own memory)" };
        var columns = new Option<string[]>("-o", "--columns")
        {
            Description = $"Columns to show, comma-separated: {string.Join(',', ProcessColumns.Names)} (environ only when asked for)",
            AllowMultipleArgumentsPerToken = true,
        };
        var command = new Command("ps", "List processes: pid, tgid, ppid, uid, state, threads, kernel-thread flag, name (as /proc shows it; one idle task per CPU), exe path")
            { tree, pid, comm, full, columns };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var tasks = target.Kernel.ProcessTable;
            var pids = r.GetValue(pid) ?? [];
            var comms = r.GetValue(comm) ?? [];
            if (pids.Length > 0) tasks = tasks.Where(t => pids.Contains(t.Pid)).ToList();
            if (comms.Length > 0) tasks = tasks.Where(t => comms.Contains(t.Name) || comms.Contains(t.Comm)).ToList();
            var depths = r.GetValue(tree) ? ProcessTree.Order(ref tasks) : null;
            var selected = ProcessColumns.Parse(r.GetValue(columns), r.GetValue(full));
            if (selected is not null)
                return ProcessColumns.Print(context, r, target.Kernel, tasks, depths, selected);
            if (context.Json(r)) Json.WriteArray(context.Output, tasks, WriteJson);
            else
            {
                var table = TableWriter.Plain("PID", "TGID", "PPID", "UID", "S", "THR", "K", "COMM", "EXE");
                foreach (var t in tasks)
                    table.AddRow(t.Pid.ToString(), t.Tgid.ToString(), t.ParentPid.ToString(), t.Uid?.ToString() ?? "?", t.State.ToString(),
                        t.ThreadCount.ToString(), t.IsKernelThread ? "K" : "", TableWriter.Esc(ProcessTree.Indent(depths, t) + t.Name), TableWriter.Esc(t.ExePath ?? ""));
                TableWriter.Write(context.Output, table);
            }
            Warnings.Print(context, target.Kernel);
            return 0;
        }));
        return command;
    }

    internal static void WriteJson(System.Text.Json.Utf8JsonWriter w, LinuxTask t)
    {
        w.WriteNumber("pid", t.Pid);
        w.WriteNumber("tgid", t.Tgid);
        w.WriteNumber("ppid", t.ParentPid);
        if (t.Uid is { } uid) w.WriteNumber("uid", uid); else w.WriteNull("uid");
        if (t.Gid is { } gid) w.WriteNumber("gid", gid); else w.WriteNull("gid");
        w.WriteString("state", t.State.ToString());
        w.WriteString("comm", t.Comm);
        w.WriteString("name", t.Name);
        if (t.IdleCpu is { } cpu) w.WriteNumber("idleCpu", cpu);
        w.WriteBoolean("kernelThread", t.IsKernelThread);
        w.WriteNumber("threads", t.ThreadCount);
        w.WriteString("exe", t.ExePath);
        w.Address("task", t.Address);
        w.Address("mm", t.Mm);
        w.Address("pgd", t.PgdPhysical);
        w.WriteNumber("flags", t.Flags);
    }
}

/// <summary>Diagnostics from hostile or inconsistent guest structures go to stderr, never into the table.</summary>
internal static class Warnings
{
    public static void Print(CommandContext context, Periscope.Linux.LinuxKernel kernel)
    {
        // Escaped as one-line fields: a diagnostic quoting a guest string must not forge further lines.
        foreach (var w in kernel.Log.Warnings) context.Error.WriteLine($"periscope: warning: {TerminalText.Escape(w)}");
        foreach (var d in kernel.Diagnostics.Items) context.Error.WriteLine($"periscope: diagnostic: {TerminalText.Escape(d.ToString() ?? "")}");
        if (kernel.IsIncomplete) context.Error.WriteLine($"periscope: warning: results are incomplete ({kernel.IncompleteReasons.Count} reason(s) above)");
    }
}
