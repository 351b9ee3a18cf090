using Periscope.Linux.Tasks.Views;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>The cross-views catch the tamper module's hiding attacks on the live guest (paused while read).</summary>
[Collection("tamper guest")]
public sealed class ViewsTamperTests(TamperGuest guest, ITestOutputHelper output)
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
}
