using System.CommandLine;
using System.Globalization;
using Periscope.Cli.Output;
using Periscope.Linux.Network;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope sockets`: TCP/UDP (v4, v6), unix and netlink sockets found through the processes' file tables and through
/// the kernel's own tables, each with the views that hold it; a socket missing from the kernel's table while a process
/// holds it, or in the table with no owner, is a finding (exit 1). Addresses as /proc/net prints them.
/// </summary>
public sealed class SocketsCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var command = new Command("sockets", "List sockets: kind, state, local and remote address (as /proc/net prints them), inode, owner uid, owning pids, views (file table, kernel table), finding");
        command.SetAction(r => context.WithTarget(r, target =>
        {
            var report = new Sockets(target.Kernel).Read();
            if (context.Json(r))
            {
                Json.WriteArray(context.Output, report.Sockets, (w, s) =>
                {
                    w.WriteString("kind", s.Kind.ToString());
                    w.WriteNumber("state", s.State);
                    w.WriteString("local", s.Local);
                    w.WriteString("remote", s.Remote);
                    w.WriteNumber("inode", s.Inode);
                    if (s.Uid is { } uid) w.WriteNumber("uid", uid);
                    else w.WriteNull("uid");
                    w.WriteStartArray("pids");
                    foreach (int p in s.Owners) w.WriteNumberValue(p);
                    w.WriteEndArray();
                    w.WriteBoolean("inFileTable", (s.Seen & SocketViews.FileTable) != 0);
                    w.WriteBoolean("inKernelTable", (s.Seen & SocketViews.KernelTable) != 0);
                    w.WriteString("finding", s.Finding.ToString());
                    w.WriteNumber("type", s.Type);
                    w.WriteNumber("protocol", s.Protocol);
                    if (s.Kind == SocketKind.Netlink) w.WriteNumber("portId", s.PortId);
                    w.Address("sock", s.Sock);
                });
            }
            else
            {
                var table = TableWriter.Plain("KIND", "ST", "LOCAL", "REMOTE", "INODE", "UID", "PIDS", "FILES", "KTABLE", "FINDING", "SOCK");
                foreach (var s in report.Sockets)
                    table.AddRow(s.Kind.ToString().ToLowerInvariant(), s.State.ToString("X2", CultureInfo.InvariantCulture), TableWriter.Esc(s.Local), s.Remote,
                        s.Inode.ToString(CultureInfo.InvariantCulture), s.Uid is { } uid ? uid.ToString(CultureInfo.InvariantCulture) : "-", string.Join(",", s.Owners), (s.Seen & SocketViews.FileTable) != 0 ? "x" : "-",
                        (s.Seen & SocketViews.KernelTable) != 0 ? "x" : "-", s.Finding == SocketFinding.None ? "" : s.Finding.ToString(), TableWriter.Hex(s.Sock));
                TableWriter.Write(context.Output, table);
                foreach (var s in report.Sockets.Where(s => s.IsFinding))
                    context.Output.WriteLine(s.Finding == SocketFinding.MissingFromKernelTable
                        ? $"CRITICAL: {s.Kind.ToString().ToLowerInvariant()} socket {TableWriter.Esc(s.Local)} (inode {s.Inode}, pid {string.Join(",", s.Owners)}) is held by a process but missing from the kernel's table: hidden from /proc/net and ss"
                        : $"WARNING: {s.Kind.ToString().ToLowerInvariant()} socket {TableWriter.Esc(s.Local)} (inode {s.Inode}) is in the kernel's table but no process holds it");
            }
            foreach (var u in report.Unavailable) context.Error.WriteLine($"periscope: unavailable: {TerminalText.Escape(u)}");
            foreach (var g in report.Gaps) context.Error.WriteLine($"periscope: incomplete: {TerminalText.Escape(g)}");
            Warnings.Print(context, target.Kernel);
            return report.Sockets.Any(s => s.IsFinding) ? 1 : report.IsIncomplete ? 3 : 0;
        }));
        return command;
    }
}
