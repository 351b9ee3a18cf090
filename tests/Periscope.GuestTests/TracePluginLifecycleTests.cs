using System.Globalization;
using Periscope.Events;
using Periscope.Events.Ring;
using Periscope.TraceRing;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// The trace plugin's life in one guest of its own (it ends that guest): consumers come and go without disturbing it,
/// it unloads when a consumer asks, QEMU runs on without it and then exits cleanly.
/// </summary>
public sealed class TracePluginLifecycleTests(TraceGuest guest, ITestOutputHelper log) : IClassFixture<TraceGuest>
{
    [Fact]
    public void Consumers_detach_and_reattach_then_the_plugin_unloads_on_request_and_QEMU_exits_cleanly()
    {
        for (int attach = 1; attach <= 2; attach++)
        {
            // Attach, let the program run to its end, then read: every record of it is in the ring by then, and the
            // caller's ids and name were copied at each event, so the calls are attributed after the process is gone.
            using var ring = TraceRingReader.Open(guest.Guest.TraceRingPath);
            Assert.Equal(PluginState.Armed, ring.State);
            var tracer = new SyscallTracer(ring, guest.Live.Kernel, guest.Live.Limits) { Filter = t => t.Comm == "sysseq" };
            var (code, output) = guest.Run("/bin/sysseq calls");
            Assert.Equal(0, code);
            var events = new List<SyscallEvent>();
            tracer.DrainOnce(events.Add);
            var lines = TraceTests.Lines(output);
            int pid = int.Parse(lines.Single(l => l.StartsWith("PID ")).Split(' ')[1], CultureInfo.InvariantCulture);
            var mine = events.Where(e => e.Task?.Tgid == pid).OrderBy(e => e.Seq).ToList();
            int start = mine.FindIndex(e => e.Name == "getpgid" && e.Raw.A0 == 4242);
            int end = mine.FindIndex(e => e.Name == "getpgid" && e.Raw.A0 == 4343);
            Assert.True(start >= 0 && end > start, $"attach {attach}: markers not seen in {mine.Count} events of pid {pid}");
            var expected = lines.Where(l => l.StartsWith("COUNT ")).Select(l => l.Split(' ')).ToDictionary(p => p[1], p => int.Parse(p[2], CultureInfo.InvariantCulture));
            var traced = mine.Skip(start + 1).Take(end - start - 1).GroupBy(e => e.DisplayName).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(expected.OrderBy(kv => kv.Key), traced.OrderBy(kv => kv.Key));
            var totals = tracer.Totals;
            log.WriteLine($"attach {attach}: {totals}");
            Assert.Equal(0UL, totals.Ring.Dropped);
            Assert.Equal(0UL, totals.Ring.Gaps);
        }

        using (var ring = TraceRingReader.Open(guest.Guest.TraceRingPath))
        {
            ring.RequestUninstall();
            ulong produced = ring.Totals.Produced;   // from the request on, the plugin records nothing
            Assert.Equal(0, guest.Run("true").ExitCode);   // its next event carries the request out
            TraceTests.WaitFor(() => ring.State == PluginState.Uninstalled, "QEMU to report the plugin uninstalled");
            var (code, output) = guest.Run("/bin/sysseq loop 1000");
            Assert.Equal(0, code);
            Assert.StartsWith("LOOP 1000 ", output.Trim());
            Assert.Equal(produced, ring.Totals.Produced);

            guest.Guest.Qmp.Quit();
            TraceTests.WaitFor(() => guest.Guest.HasExited, "QEMU to exit");
            Assert.Equal(0, guest.Guest.ExitCode);
            Assert.Equal(PluginState.Uninstalled, ring.State);   // no exit callback of a plugin that is gone
        }
    }
}
