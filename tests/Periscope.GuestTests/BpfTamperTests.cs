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
        uint id = StartLoader("", 3)["socket_filter"];
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

    /// <summary>Programs attached only through a perf event (kprobe, tracepoint: no bpf link) or a trampoline (fentry: its
    /// tracing link is left in link_idr, but the trampoline view must find it on its own) are still found when hidden.</summary>
    [Theory]
    [InlineData("kprobe", BpfAttachPoint.Kprobe, "kprobe do_sys_openat2 (perf event of pid ")]
    [InlineData("tracepoint", BpfAttachPoint.Tracepoint, "tracepoint sched:sched_process_exec (perf event of pid ")]
    [InlineData("fentry", BpfAttachPoint.Trampoline, "fentry do_sys_openat2")]
    public void Bpf_finds_a_tracing_program_removed_from_prog_idr_where_it_is_attached(string kind, BpfAttachPoint point, string target)
    {
        uint id = StartLoader("tracing", 4)[kind];
        try
        {
            ulong prog = TamperReport.Parse(guest.Tamper($"hidebpf {id}")[0], "hidebpf").Hex("prog");
            Assert.DoesNotContain($"prog {id} ", guest.Run("/bin/bpfload list"));
            using var live = guest.AttachLive();
            using (live.Pause())
            {
                live.Kernel.Refresh();
                var report = new BpfView(live.Kernel).Read();
                output.WriteLine(string.Join("\n", report.Gaps));
                var hidden = Assert.Single(report.Programs, p => p.Finding != BpfProgramFinding.None);
                Assert.Equal((BpfProgramFinding.AttachedButNotListed, prog, id), (hidden.Finding, hidden.Address, hidden.Id));
                Assert.StartsWith(target, Assert.Single(hidden.Attachments, a => a.Point == point).Target, StringComparison.Ordinal);
            }
        }
        finally
        {
            guest.Restore();
            StopTracingLoader();
        }
        guest.AssertKernelHealthy();
    }

    /// <summary>Starts `/bin/bpfload MODE` in the tamper guest unless it runs already (it is not booted with
    /// "periscope.bpf"), waits (bounded) until it says its programs are attached, and returns the ids it printed by
    /// attach point.</summary>
    private Dictionary<string, uint> StartLoader(string mode, int attachments)
    {
        string file = mode.Length == 0 ? "/tmp/bpfload" : $"/tmp/bpfload-{mode}";
        // The wait ends early when the loader exits (it failed: its output says why).
        string attached = guest.Run($"[ -e {file}.ready ] || {{ /bin/bpfload {mode} > {file}.out 2>&1 & p=$!; i=0; "
                                    + $"while [ ! -e {file}.ready ] && kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do sleep 1; i=$((i + 1)); done; }}; cat {file}.out");
        var ids = attached.Split('\n').Select(l => l.Trim().Split(' ')).Where(f => f.Length == 3 && f[0] == "attach")
            .ToDictionary(f => f[1], f => uint.Parse(f[2], CultureInfo.InvariantCulture));
        Assert.True(ids.Count == attachments, attached);
        return ids;
    }

    /// <summary>Ends `bpfload tracing` (its kprobe and fentry trampoline patch do_sys_openat2's ftrace site, which the
    /// integrity tests sharing this guest must not see) and waits, bounded, until the kernel lists none of its programs:
    /// their links and perf events are released before a program leaves prog_idr.</summary>
    private void StopTracingLoader()
    {
        string left = guest.Run("pid=$(pidof 'bpfload' | tr ' ' '\\n' | while read p; do grep -q tracing /proc/$p/cmdline && echo $p; done); "
                                + "[ -n \"$pid\" ] && kill $pid; i=0; while /bin/bpfload list | grep -qE ' pscope_(kp|krp|tp|fe) ' && [ $i -lt 50 ]; do sleep 1; i=$((i + 1)); done; "
                                + "rm -f /tmp/bpfload-tracing.ready; /bin/bpfload list | grep -E ' pscope_(kp|krp|tp|fe) ' || true");
        Assert.True(left.Trim().Length == 0, $"bpfload tracing's programs are still loaded: {left}");
    }
}
