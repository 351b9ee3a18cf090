using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Periscope.Memory;

namespace Periscope.Qemu;

/// <summary>
/// A QEMU Machine Protocol client over a unix socket. Only the commands introspection needs are exposed as methods:
/// status, stop/cont, memory dumps and register reads. Nothing here writes guest memory or registers.
/// </summary>
public sealed class QmpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly QmpLineReader _reader;
    private readonly Stream _stream;
    private readonly object _lock = new();

    private QmpClient(Socket socket, TimeSpan timeout, int maxLineBytes, string socketPath)
    {
        _socket = socket;
        _socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        _socket.SendTimeout = (int)timeout.TotalMilliseconds;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new QmpLineReader(_stream, maxLineBytes, socketPath);
        Timeout = timeout;
    }

    public TimeSpan Timeout { get; }
    public string SocketPath { get; private init; } = "";

    /// <summary>Connects, reads the greeting and negotiates capabilities. Lines QEMU sends are capped at
    /// <paramref name="maxLineBytes"/> (default <see cref="IntrospectionLimits.MaxQmpLineBytes"/>).</summary>
    public static QmpClient Connect(string socketPath, TimeSpan? timeout = null, int? maxLineBytes = null)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"{socketPath}: cannot connect to QMP: {e.Message}", e);
        }
        var client = new QmpClient(socket, timeout ?? TimeSpan.FromSeconds(30), maxLineBytes ?? IntrospectionLimits.Default.MaxQmpLineBytes, socketPath) { SocketPath = socketPath };
        try
        {
            // QEMU serves one client per QMP socket; a busy socket accepts the connection but never greets.
            socket.ReceiveTimeout = 5000;
            JsonObject greeting;
            try { greeting = client.ReadMessage(); }
            catch (TimeoutException e) { throw new TimeoutException($"{socketPath}: no QMP greeting within 5 s (is another client connected to this socket?)", e); }
            socket.ReceiveTimeout = (int)client.Timeout.TotalMilliseconds;
            if (greeting["QMP"] is null) throw new IOException($"{socketPath}: not a QMP greeting: {greeting.ToJsonString()}");
            client.Execute("qmp_capabilities");
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>Runs a command and returns its "return" value; QMP errors become <see cref="QmpException"/>.</summary>
    public JsonNode? Execute(string command, JsonObject? arguments = null, TimeSpan? timeout = null)
    {
        lock (_lock)
        {
            var request = new JsonObject { ["execute"] = command };
            if (arguments is not null) request["arguments"] = arguments;
            byte[] bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
            _stream.Write(bytes);
            _stream.Flush();
            int previous = _socket.ReceiveTimeout;
            if (timeout is { } t) _socket.ReceiveTimeout = (int)t.TotalMilliseconds;
            try
            {
                while (true)
                {
                    var message = ReadMessage();
                    if (message["event"] is not null) { KeepEvent(message); continue; } // asynchronous events interleave with replies
                    if (message["error"] is JsonObject error)
                        throw new QmpException(command, error["class"]?.GetValue<string>() ?? "?", error["desc"]?.GetValue<string>() ?? "?");
                    if (message.ContainsKey("return")) return message["return"];
                }
            }
            finally { _socket.ReceiveTimeout = previous; }
        }
    }

    /// <summary>Asynchronous events (GUEST_PANICKED, RESET, SHUTDOWN, STOP, ...) seen while waiting for replies, oldest
    /// first, at most <see cref="MaxQueuedEvents"/> (older ones are dropped and counted). Taking them empties the queue.</summary>
    public IReadOnlyList<JsonObject> TakeEvents()
    {
        lock (_events)
        {
            var taken = _events.ToArray();
            _events.Clear();
            return taken;
        }
    }

    /// <summary>Events dropped because nobody took them in time.</summary>
    public long DroppedEvents => Interlocked.Read(ref _droppedEvents);

    public const int MaxQueuedEvents = 1024;
    private readonly Queue<JsonObject> _events = new();
    private long _droppedEvents;

    private void KeepEvent(JsonObject message)
    {
        lock (_events)
        {
            if (_events.Count == MaxQueuedEvents) { _events.Dequeue(); Interlocked.Increment(ref _droppedEvents); }
            _events.Enqueue(message);
        }
    }

    private JsonObject ReadMessage()
    {
        ReadOnlyMemory<byte>? line;
        try { line = _reader.ReadLine(); }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut })
        {
            throw new TimeoutException($"{SocketPath}: QMP did not answer within {Timeout.TotalSeconds:0} s", e);
        }
        if (line is not { } bytes) throw new IOException($"{SocketPath}: QMP connection closed");
        JsonNode? node;
        try { node = JsonNode.Parse(bytes.Span); }
        catch (JsonException e) { throw new IOException($"{SocketPath}: QMP sent a line that is not JSON: {e.Message}", e); }
        return node as JsonObject ?? throw new IOException($"{SocketPath}: QMP sent a non-object ({bytes.Length} bytes)");
    }

    /// <summary>"running", "paused", ...</summary>
    public string QueryStatus() => Execute("query-status")?["status"]?.GetValue<string>() ?? "?";

    public void Stop() => Execute("stop");

    public void Continue() => Execute("cont");

    /// <summary>Writes an ELF core of guest physical memory (paging=false) and returns when it is complete.</summary>
    public void DumpGuestMemory(string path, TimeSpan? timeout = null) =>
        Execute("dump-guest-memory", new JsonObject { ["paging"] = false, ["protocol"] = "file:" + Path.GetFullPath(path), ["detach"] = false },
            timeout ?? TimeSpan.FromMinutes(5));

    public string HumanMonitorCommand(string commandLine) =>
        Execute("human-monitor-command", new JsonObject { ["command-line"] = commandLine })?.GetValue<string>() ?? "";

    /// <summary>Registers of every vCPU, from HMP "info registers -a".</summary>
    public IReadOnlyList<CpuState> QueryRegisters() => QemuRegisterParser.Parse(HumanMonitorCommand("info registers -a"));

    /// <summary>The guest instruction count of a record or replay run (QMP query-replay).</summary>
    public ulong QueryReplayIcount() =>
        Execute("query-replay")?["icount"]?.GetValue<ulong>() ?? throw new IOException($"{SocketPath}: query-replay returned no icount");

    /// <summary>"record", "play" or "none" (QMP query-replay).</summary>
    public string QueryReplayMode() => Execute("query-replay")?["mode"]?.GetValue<string>() ?? "?";

    /// <summary>Replay only: stop the guest when the instruction count reaches <paramref name="icount"/> (QMP replay-break).</summary>
    public void ReplayBreak(ulong icount) => Execute("replay-break", new JsonObject { ["icount"] = icount });

    public void Quit()
    {
        try { Execute("quit"); }
        catch (IOException) { } // QEMU may close the socket before answering
    }

    public void Dispose()
    {
        _stream.Dispose();
        _socket.Dispose();
    }
}

public sealed class QmpException(string command, string errorClass, string description)
    : InvalidOperationException($"QMP {command} failed: {errorClass}: {description}")
{
    public string ErrorClass { get; } = errorClass;
}
