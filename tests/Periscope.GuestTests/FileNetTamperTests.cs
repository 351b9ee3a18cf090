using System.Globalization;
using Periscope.Linux.Network;
using Periscope.Linux.Tasks.Views;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>The cross-views catch the tamper module's hiding attacks on the live guest (paused while read).</summary>
[Collection("tamper guest")]
public sealed class FileNetTamperTests(TamperGuest guest, ITestOutputHelper output)
{
    [Fact]
    public void Psxview_finds_a_process_unlinked_from_the_task_list_by_its_pid_hash_and_children_views()
    {
        int pid = guest.StartSleep(3200);
        try
        {
            ulong task = TamperReport.Parse(guest.Tamper($"hidepid {pid}")[0], "hidepid").Hex("task");
            using (var live = guest.AttachLive())
            using (live.Pause())
            {
                live.Kernel.Refresh();
                var report = new TaskViews(live.Kernel).Read();
                var hidden = Assert.Single(report.Hidden);
                Assert.Equal(task, hidden.Task);
                Assert.Equal(pid, hidden.Facts!.Pid);
                Assert.Equal("sleep", hidden.Facts.Comm);
                Assert.Equal(0, (int)(hidden.Seen & TaskViewSet.TaskList));
                Assert.Equal(TaskViewSet.PidHash | TaskViewSet.Children, hidden.Seen & (TaskViewSet.PidHash | TaskViewSet.Children));
            }
            var (code, text, err) = CliRun.Run("psxview", "--hidden", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause");
            output.WriteLine(text + err);
            Assert.Equal(1, code);
            Assert.Contains($"CRITICAL: pid {pid} (sleep), task_struct 0x{task:x}, is seen by pidHash, children", text);

            guest.Restore();
            using var after = guest.AttachLive();
            Assert.Empty(new TaskViews(after.Kernel).Read().Hidden);
        }
        finally
        {
            guest.Restore();
            guest.Run($"kill {pid}");
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Sockets_finds_a_tcp_listener_unhashed_from_the_listening_hash_through_its_owner()
    {
        int netfiles = guest.Truth.Processes.Single(p => p.Value.Leader.Comm == "netfiles").Key;
        try
        {
            var r = TamperReport.Parse(guest.Tamper("hidesock 7001")[0], "hidesock");
            ulong sock = r.Hex("sock");
            ulong inode = ulong.Parse(r["inode"], CultureInfo.InvariantCulture);
            // The guest's own view lies: /proc/net/tcp no longer lists the listener.
            Assert.DoesNotContain($" {inode} ", guest.Run("cat /proc/net/tcp"));
            using (var live = guest.AttachLive())
            using (live.Pause())
            {
                var report = new Sockets(live.Kernel).Read();
                var hidden = Assert.Single(report.Sockets, s => s.IsFinding);
                Assert.Equal(SocketFinding.MissingFromKernelTable, hidden.Finding);
                Assert.Equal(sock, hidden.Sock);
                Assert.Equal(inode, hidden.Inode);
                Assert.Equal([netfiles], hidden.Owners);
                Assert.Equal("0100007F:1B59", hidden.Local);
            }
            var (code, text, err) = CliRun.Run("sockets", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause");
            output.WriteLine(text + err);
            Assert.Equal(1, code);
            Assert.Contains($"CRITICAL: tcp socket 0100007F:1B59 (inode {inode}, pid {netfiles}) is held by a process but missing from the kernel's table", text);

            guest.Restore();
            Assert.Contains($" {inode} ", guest.Run("cat /proc/net/tcp"));
            using var after = guest.AttachLive();
            Assert.DoesNotContain(new Sockets(after.Kernel).Read().Sockets, s => s.IsFinding);
        }
        finally
        {
            guest.Restore();
        }
        guest.AssertKernelHealthy();
    }
}

