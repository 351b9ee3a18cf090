using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Model;

namespace Periscope.Cli.Commands;

/// <summary>`periscope modules`: the kernel's module list, as /proc/modules shows it.</summary>
public sealed class ModulesCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var command = new Command("modules", "List loaded kernel modules: name, base, size, state, references, used by (as /proc/modules)");
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var modules = target.Kernel.Modules;
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, modules, (w, m) =>
                {
                    w.WriteString("name", m.Name);
                    w.Address("base", m.Base);
                    w.WriteNumber("size", m.Size);
                    w.WriteString("state", m.State.ProcName());
                    if (m.References is { } refs) w.WriteNumber("references", refs); else w.WriteNull("references");
                    if (m.UsedBy is { } users)
                    {
                        w.WriteStartArray("usedBy");
                        foreach (var u in users) w.WriteStringValue(u);
                        w.WriteEndArray();
                    }
                    else w.WriteNull("usedBy");
                    w.WriteBoolean("permanent", m.Permanent);
                    w.WriteString("taints", m.Taints);
                    w.Address("module", m.Address);
                });
            }
            else
            {
                var table = TableWriter.Plain("NAME", "BASE", "SIZE", "STATE", "REFS", "USED BY", "TAINTS");
                foreach (var m in modules)
                    table.AddRow(TableWriter.Esc(m.Name), TableWriter.Hex(m.Base), m.Size.ToString(), m.State.ProcName(), m.References?.ToString() ?? "-",
                        TableWriter.Esc(m.ProcUsedBy ?? "?"), TableWriter.Esc(m.ProcFlags ?? ""));
                TableWriter.Write(context.Output, table);
            }
            Warnings.Print(context, target.Kernel);
            return 0;
        }));
        return command;
    }
}
