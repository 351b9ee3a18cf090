using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Periscope.Qemu;
using Periscope.Watch;

namespace Periscope.UnitTests.Watch;

/// <summary>
/// The sweep's QMP stop/cont beside the GDB stub's stops (watch --protect), against a scripted QMP server: the sweep
/// resumes only a stop it made ("paused" after its own `stop`), never the stub's "debug" stop, also when a watchpoint
/// hits between its status query and its `stop`; and it holds the gate the watchpoint handler takes while the guest
/// is stopped.
/// </summary>
public sealed class SharedStopControlTests
{
    /// <summary>Serves QMP on a unix socket: answers query-status from <paramref name="statuses"/> in turn, records
    /// every command.</summary>
    private sealed class ScriptedQmp : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly Thread _thread;
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"periscope-qmp-{Environment.ProcessId}-{Guid.NewGuid():n}.sock");
        public List<string> Commands { get; } = [];
        public Exception? Failure { get; private set; }

        public ScriptedQmp(params string[] statuses)
        {
            _listener.Bind(new UnixDomainSocketEndPoint(Path));
            _listener.Listen(1);
            var queue = new Queue<string>(statuses);
            _thread = new Thread(() =>
            {
                try
                {
                    using var conn = _listener.Accept();
                    using var stream = new NetworkStream(conn);
                    using var reader = new StreamReader(stream, Encoding.UTF8);
                    void Send(string json) { stream.Write(Encoding.UTF8.GetBytes(json + "\n")); }
                    Send("{\"QMP\": {\"version\": {}, \"capabilities\": []}}");
                    string? line;
                    while ((line = reader.ReadLine()) is not null)
                    {
                        string command = JsonNode.Parse(line)!["execute"]!.GetValue<string>();
                        lock (Commands) Commands.Add(command);
                        Send(command == "query-status" ? $"{{\"return\": {{\"status\": \"{queue.Dequeue()}\", \"running\": false}}}}" : "{\"return\": {}}");
                    }
                }
                catch (Exception e) when (e is IOException or SocketException or InvalidOperationException) { Failure = e; }
            }) { IsBackground = true };
            _thread.Start();
        }

        public void Dispose()
        {
            _listener.Dispose();
            _thread.Join(TimeSpan.FromSeconds(10));
            File.Delete(Path);
        }
    }

    private static List<string> Run(string[] statuses, Action<SharedStopControl> act)
    {
        using var server = new ScriptedQmp(statuses);
        using (var qmp = QmpClient.Connect(server.Path, TimeSpan.FromSeconds(10)))
            act(new SharedStopControl(qmp));
        server.Dispose();
        Assert.Null(server.Failure);
        return server.Commands.Where(c => c != "qmp_capabilities").ToList();
    }

    [Fact]
    public void RunningGuestIsStoppedAndContinuedWithTheGateHeld()
    {
        var commands = Run(["running", "paused"], control =>
        {
            Assert.True(control.Stop());
            Assert.True(Monitor.IsEntered(control.Gate)); // the watchpoint handler waits while the sweep reads
            control.Continue();
            Assert.False(Monitor.IsEntered(control.Gate));
        });
        Assert.Equal(["query-status", "stop", "query-status", "cont"], commands);
    }

    [Fact]
    public void GuestStoppedAtAWatchpointIsNotResumedByTheSweep()
    {
        var commands = Run(["debug"], control =>
        {
            Assert.True(control.Stop()); // stopped (by the stub): the sweep may read, holding the gate
            Assert.True(Monitor.IsEntered(control.Gate));
            control.Continue();
        });
        Assert.Equal(["query-status"], commands); // neither stop nor cont: the handler's GDB `c` resumes it
    }

    [Fact]
    public void WatchpointHitBetweenStatusAndStopLeavesTheResumeToTheHandler()
    {
        // "running" when asked, then the stub stopped it ("debug") before our stop took effect.
        var commands = Run(["running", "debug"], control =>
        {
            Assert.True(control.Stop());
            control.Continue();
        });
        Assert.Equal(["query-status", "stop", "query-status"], commands);
    }

    [Fact]
    public void GuestPausedBySomeoneElseStaysPausedAndTheGateIsFree()
    {
        var commands = Run(["paused"], control =>
        {
            Assert.False(control.Stop());
            Assert.False(Monitor.IsEntered(control.Gate));
        });
        Assert.Equal(["query-status"], commands);
    }
}
