using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Tasks.Views;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope psxview`: every task seen through every view the kernel keeps (task list, pid IDR, run queues, children
/// lists, thread groups, CPUs' current and idle tasks), which views miss it, and a task hidden from the task list but
/// present elsewhere as a critical finding. Exit 1 with a hidden task, 3 when a view could not be read completely.
/// </summary>
public sealed class PsxviewCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var hiddenOnly = new Option<bool>("--hidden") { Description = "Only tasks missing from the task list" };
        var command = new Command("psxview", "Cross-view of tasks: which kernel structures see each task; a task missing from the task list but seen elsewhere is a finding") { hiddenOnly };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var report = new TaskViews(target.Kernel).Read();
            var rows = report.Rows.Where(x => !r.GetValue(hiddenOnly) || x.Verdict != TaskViewVerdict.Listed).ToList();
            if (context.Json(r)) WriteJson(context, report, rows);
            else
            {
                var table = TableWriter.Plain(["PID", "TGID", "COMM", .. TaskViewRules.Columns.Select(c => c.Column), "VERDICT", "TASK"]);
                foreach (var x in rows)
                {
                    var cells = new List<string> { x.Facts?.Pid.ToString() ?? "?", x.Facts?.Tgid.ToString() ?? "?", TableWriter.Esc(x.Facts?.Comm ?? "?") };
                    cells.AddRange(TaskViewRules.Columns.Select(c => Cell(report.Available, x.Seen, c.View)));
                    cells.Add(Verdict(x.Verdict));
                    cells.Add(TableWriter.Hex(x.Task));
                    table.AddRow([.. cells]);
                }
                TableWriter.Write(context.Output, table);
                foreach (var x in report.Hidden)
                    context.Output.WriteLine($"CRITICAL: pid {x.Facts!.Pid} ({TableWriter.Esc(x.Facts.Comm)}), task_struct 0x{x.Task:x}, is seen by {Seen(x.Seen)} but is on no task list");
            }
            foreach (var u in report.Unavailable) context.Error.WriteLine($"periscope: unavailable: {TerminalText.Escape(u)}");
            foreach (var g in report.Gaps) context.Error.WriteLine($"periscope: incomplete: {TerminalText.Escape(g)}");
            Warnings.Print(context, target.Kernel);
            return report.Hidden.Any() ? 1 : report.IsIncomplete ? 3 : 0;
        }));
        return command;
    }

    /// <summary>"x" seen, "-" not seen, "?" the view could not be read on this kernel.</summary>
    private static string Cell(TaskViewSet available, TaskViewSet seen, TaskViewSet view) =>
        (seen & view) != 0 ? "x" : (available & view) != 0 ? "-" : "?";

    private static string Seen(TaskViewSet seen) =>
        string.Join(", ", TaskViewRules.Columns.Where(c => (seen & c.View) != 0).Select(c => TaskViewRules.JsonName(c.View)));

    private static string Verdict(TaskViewVerdict v) => v switch
    {
        TaskViewVerdict.Listed => "ok",
        TaskViewVerdict.Hidden => "HIDDEN",
        TaskViewVerdict.IdleTask => "idle",
        TaskViewVerdict.Exiting => "exiting",
        _ => "not-a-task",
    };

    private static void WriteJson(CommandContext context, TaskViewReport report, IReadOnlyList<TaskViewRow> rows) => Json.Write(context.Output, w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("views");
        foreach (var c in TaskViewRules.Columns.Where(c => (report.Available & c.View) != 0)) w.WriteStringValue(TaskViewRules.JsonName(c.View));
        w.WriteEndArray();
        w.WriteStartArray("unavailable");
        foreach (var u in report.Unavailable) w.WriteStringValue(u);
        w.WriteEndArray();
        w.WriteStartArray("gaps");
        foreach (var g in report.Gaps) w.WriteStringValue(g);
        w.WriteEndArray();
        w.WriteStartArray("tasks");
        foreach (var x in rows)
        {
            w.WriteStartObject();
            if (x.Facts is { } f)
            {
                w.WriteNumber("pid", f.Pid);
                w.WriteNumber("tgid", f.Tgid);
                w.WriteString("comm", f.Comm);
            }
            w.Address("task", x.Task);
            w.WriteStartArray("seenBy");
            foreach (var c in TaskViewRules.Columns.Where(c => (x.Seen & c.View) != 0)) w.WriteStringValue(TaskViewRules.JsonName(c.View));
            w.WriteEndArray();
            w.WriteStartArray("missedBy");
            foreach (var c in TaskViewRules.Columns.Where(c => (report.Available & c.View) != 0 && (x.Seen & c.View) == 0)) w.WriteStringValue(TaskViewRules.JsonName(c.View));
            w.WriteEndArray();
            w.WriteString("verdict", x.Verdict.ToString());
            if (x.Verdict == TaskViewVerdict.Hidden) w.WriteString("severity", "critical");
            if (x.Reason is not null) w.WriteString("reason", x.Reason);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });
}
