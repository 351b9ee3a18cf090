using System.Globalization;
using Periscope.Linux.Bpf;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>The bpf cross-view catches the tamper module's "unlink a BPF program from the ID list" attack on the live
/// guest (paused while read): the program is gone from the guest's own BPF_PROG_GET_NEXT_ID walk but still attached.</summary>
[Collection("tamper guest")]
public sealed class BpfTamperTests(TamperGuest guest, ITestOutputHelper output)
{
    [Fact]
    public void Bpf_finds_a_socket_filter_removed_from_prog_idr_where_it_is_attached()
    {
        // The tamper guest is not booted with "periscope.bpf": start /bin/bpfload here (once for the collection) and wait,
        // bounded, until it says its programs are attached; it prints their ids.
        string attached = guest.Run("[ -e /tmp/bpfload.ready ] || { /bin/bpfload > /tmp/bpfload.out 2>&1 & i=0; "
                                    + "while [ ! -e /tmp/bpfload.ready ] && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done; }; cat /tmp/bpfload.out");
        uint id = uint.Parse(attached.Split('\n').Single(l => l.StartsWith("attach socket_filter ", StringComparison.Ordinal)).Split(' ')[2].Trim(),
            CultureInfo.InvariantCulture);
        try
        {
            var r = TamperReport.Parse(guest.Tamper($"hidebpf {id}")[0], "hidebpf");
            ulong prog = r.Hex("prog");
            // The guest's own view lies: its ID walk no longer lists the program.
            Assert.DoesNotContain($"prog {id} ", guest.Run("/bin/bpfload list"));
            using (var live = guest.AttachLive())
            using (live.Pause())
            {
                live.Kernel.Refresh();
                var report = new BpfView(live.Kernel).Read();
                var hidden = Assert.Single(report.Programs, p => p.Finding != BpfProgramFinding.None);
                Assert.Equal(BpfProgramFinding.AttachedButNotListed, hidden.Finding);
                Assert.Equal(prog, hidden.Address);
                Assert.Equal(id, hidden.Id);
                Assert.Equal("pscope_sf", hidden.Name);
                Assert.Equal(BpfAttachPoint.SocketFilter, Assert.Single(hidden.Attachments).Point);
            }
            var (code, text, err) = CliRun.Run("bpf", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause");
            output.WriteLine(text + err);
            Assert.Equal(1, code);
            Assert.Contains($"CRITICAL: bpf program {id} (pscope_sf, socket_filter) is attached (udp socket inode ", text);

            guest.Restore();
            Assert.Contains($"prog {id} ", guest.Run("/bin/bpfload list"));
            using var after = guest.AttachLive();
            Assert.DoesNotContain(new BpfView(after.Kernel).Read().Programs, p => p.Finding != BpfProgramFinding.None);
        }
        finally
        {
            guest.Restore();
        }
        guest.AssertKernelHealthy();
    }
}
