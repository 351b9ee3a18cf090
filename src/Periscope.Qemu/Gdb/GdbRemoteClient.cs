using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Periscope.Qemu.Gdb;

/// <summary>
/// A client of QEMU's GDB stub (`-gdb tcp:HOST:PORT`) used read-only: watchpoints (Z2/z2, Z3, Z4), stop replies,
/// and register reads (`g`, `p`). There is deliberately no method that writes guest memory (`M`, `X`) or registers
/// (`G`, `P`): a compromised or buggy monitor must not become a way into the guest.
/// Note: QEMU stops the guest when a GDB client connects; call <see cref="Continue"/> to let it run.
/// </summary>
public sealed class GdbRemoteClient : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly int _maxPacketBytes;
    private readonly byte[] _one = new byte[1];

    private GdbRemoteClient(Socket socket, int maxPacketBytes)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _maxPacketBytes = maxPacketBytes;
    }

    public string Endpoint { get; private init; } = "";
    /// <summary>What the stub said it supports (qSupported): name -> value ("+", "-" or a value).</summary>
    public IReadOnlyDictionary<string, string> Features { get; private set; } = new Dictionary<string, string>();

    public static GdbRemoteClient Connect(string host, int port, TimeSpan timeout, int maxPacketBytes)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.ReceiveTimeout = socket.SendTimeout = (int)timeout.TotalMilliseconds;
            socket.Connect(host, port);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"{host}:{port}: cannot connect to the GDB stub: {e.Message}", e);
        }
        return Handshake(new GdbRemoteClient(socket, maxPacketBytes) { Endpoint = $"{host}:{port}" });
    }

    /// <summary>Connects to a stub on a unix socket (`-gdb unix:PATH,server=on,wait=off`): nothing else on the host can
    /// reach it, unlike a TCP port.</summary>
    public static GdbRemoteClient ConnectUnix(string socketPath, TimeSpan timeout, int maxPacketBytes)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.ReceiveTimeout = socket.SendTimeout = (int)timeout.TotalMilliseconds;
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"{socketPath}: cannot connect to the GDB stub: {e.Message}", e);
        }
        return Handshake(new GdbRemoteClient(socket, maxPacketBytes) { Endpoint = socketPath });
    }

    private static GdbRemoteClient Handshake(GdbRemoteClient client)
    {
        try
        {
            string reply = client.Request("qSupported:swbreak+;hwbreak+");
            client.Features = ParseFeatures(reply);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public static Dictionary<string, string> ParseFeatures(string reply)
    {
        var features = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in reply.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            if (item.EndsWith('+') || item.EndsWith('-')) features[item[..^1]] = item[^1..];
            else if (item.IndexOf('=') is > 0 and var eq) features[item[..eq]] = item[(eq + 1)..];
        }
        return features;
    }

    /// <summary>The reason the target is stopped (`?`).</summary>
    public GdbStopReply HaltReason() => GdbStopReply.Parse(Request("?"));

    /// <summary>Arms a hardware watchpoint (`Z2` write, `Z3` read, `Z4` access) on <paramref name="length"/> bytes.</summary>
    public void InsertWatchpoint(WatchpointKind kind, ulong address, int length) => ExpectOk(Request($"Z{Type(kind)},{address:x},{length:x}"), "insert watchpoint");

    public void RemoveWatchpoint(WatchpointKind kind, ulong address, int length) => ExpectOk(Request($"z{Type(kind)},{address:x},{length:x}"), "remove watchpoint");

    private static int Type(WatchpointKind kind) => kind switch { WatchpointKind.Write => 2, WatchpointKind.Read => 3, _ => 4 };

    /// <summary>Lets the guest run (`c`); the stub answers only when it stops again (<see cref="WaitForStop"/>).</summary>
    public void Continue() => Send("c");

    /// <summary>Stops a running guest (the 0x03 interrupt byte) and returns the stop reply.</summary>
    public GdbStopReply Interrupt(TimeSpan timeout)
    {
        _stream.Write([0x03]);
        return WaitForStop(timeout) ?? throw new TimeoutException($"{Endpoint}: the GDB stub did not stop the guest within {timeout.TotalSeconds:0.#} s");
    }

    /// <summary>The next stop reply, or null if none arrives within <paramref name="timeout"/> (the guest keeps running).</summary>
    public GdbStopReply? WaitForStop(TimeSpan timeout)
    {
        if (_pendingStops.TryDequeue(out var pending)) return pending;
        if (!_socket.Poll((int)Math.Min(int.MaxValue, timeout.TotalMicroseconds), SelectMode.SelectRead)) return null;
        return GdbStopReply.Parse(ReceivePacket());
    }

    /// <summary>Stop replies that arrived while a request waited for its own reply: QEMU announces every stop of the VM
    /// unasked (a client connecting, QMP `stop`), so one can precede the reply to the next request. At most a few.</summary>
    private readonly Queue<GdbStopReply> _pendingStops = new();
    private const int MaxPendingStops = 16;

    /// <summary>Removes every breakpoint and watchpoint and lets the guest run (`D`), then the connection may close.
    /// QEMU keeps watchpoints of a client that just disconnects: a later hit would stop the guest with nobody to continue it.</summary>
    public void Detach() => ExpectOk(Request("D"), "detach");

    /// <summary>All general registers of the current thread (`g`), as raw target bytes (x86-64: rax..gs, 8/4 bytes each).</summary>
    public byte[] ReadRegisters() => Hex(Request("g"), "g");

    /// <summary>One register by GDB number (`p n`): for x86-64, 16 is rip.</summary>
    public byte[] ReadRegister(int number) => Hex(Request($"p{number:x}"), $"p{number:x}");

    /// <summary>Selects the thread (vCPU) that later `g`/`p` read (`Hg`).</summary>
    public void SelectThread(string thread) => ExpectOk(Request($"Hg{thread}"), "select thread");

    private static byte[] Hex(string reply, string command)
    {
        if (reply.StartsWith('E') && reply.Length == 3) throw new GdbProtocolException($"'{command}' failed: error {reply}");
        if (reply.Length % 2 != 0) throw new GdbProtocolException($"'{command}' reply of odd length {reply.Length}");
        // QEMU sends "xx" for registers it cannot read; they come back as zero.
        var bytes = new byte[reply.Length / 2];
        for (int i = 0; i < bytes.Length; i++)
        {
            var pair = reply.AsSpan(2 * i, 2);
            if (pair is "xx") continue;
            if (!byte.TryParse(pair, NumberStyles.HexNumber, null, out bytes[i])) throw new GdbProtocolException($"'{command}' reply is not hex at offset {2 * i}");
        }
        return bytes;
    }

    private static void ExpectOk(string reply, string what)
    {
        if (reply == "OK") return;
        throw new GdbProtocolException(reply.Length == 0 ? $"{what}: not supported by the stub" : $"{what}: stub replied '{reply}'");
    }

    /// <summary>Sends a packet and returns the reply packet's payload. Console output packets ('O...') are skipped.</summary>
    private string Request(string payload)
    {
        Send(payload);
        while (true)
        {
            string reply = ReceivePacket();
            if (reply.Length > 1 && reply[0] == 'O' && payload != "g" && IsHex(reply.AsSpan(1))) continue;
            if (payload != "?" && IsStopReply(reply))
            {
                KeepUnaskedStop(reply);
                continue;
            }
            return reply;
        }
    }

    private void KeepUnaskedStop(string reply)
    {
        if (!IsStopReply(reply)) throw new GdbProtocolException($"unexpected packet '{(reply.Length > 40 ? reply[..40] + "..." : reply)}' before the stub's ack");
        if (_pendingStops.Count == MaxPendingStops) _pendingStops.Dequeue();
        _pendingStops.Enqueue(GdbStopReply.Parse(reply));
    }

    private void Send(string payload)
    {
        var frame = GdbPacket.Frame(payload);
        for (int attempt = 0; attempt < 3; attempt++)
        {
            _stream.Write(frame);
            int ack = ReadByte();
            // QEMU can announce a stop (a client connecting, a QMP stop) before it acks what we sent: keep it.
            for (int unasked = 0; ack == '$' && unasked < MaxPendingStops; unasked++)
            {
                KeepUnaskedStop(ReceivePacket(startConsumed: true));
                ack = ReadByte();
            }
            if (ack == '+') return;
            if (ack != '-') throw new GdbProtocolException($"expected '+' or '-' after sending '{payload}', got 0x{ack:x2}");
        }
        throw new GdbProtocolException($"the stub rejected '{payload}' three times");
    }

    /// <summary>One packet: skips anything before '$', checks the checksum, acks ('+' or '-' and wait for the resend).</summary>
    /// <param name="startConsumed">The '$' was already read (a packet that arrived where an ack was expected).</param>
    private string ReceivePacket(bool startConsumed = false)
    {
        var raw = new List<byte>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            int b;
            int skipped = 0;
            if (!startConsumed || attempt > 0)
                while ((b = ReadByte()) != '$')
                    if (++skipped > _maxPacketBytes) throw new GdbProtocolException($"no packet start within {_maxPacketBytes} bytes");
            raw.Clear();
            while ((b = ReadByte()) != '#')
            {
                if (raw.Count >= _maxPacketBytes) throw new GdbProtocolException($"packet longer than {_maxPacketBytes} bytes (IntrospectionLimits.MaxGdbPacketBytes)");
                raw.Add((byte)b);
            }
            int hi = ReadByte(), lo = ReadByte();
            bool valid = byte.TryParse(Encoding.ASCII.GetString([(byte)hi, (byte)lo]), NumberStyles.HexNumber, null, out byte sum)
                         && sum == GdbPacket.Checksum(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(raw));
            _stream.Write(valid ? "+"u8 : "-"u8);
            if (valid) return GdbPacket.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(raw), _maxPacketBytes);
        }
        throw new GdbProtocolException("three packets with bad checksums in a row");
    }

    private int ReadByte()
    {
        int n;
        try { n = _stream.Read(_one, 0, 1); }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut })
        {
            throw new TimeoutException($"{Endpoint}: the GDB stub did not answer in time", e);
        }
        if (n == 0) throw new IOException($"{Endpoint}: GDB stub connection closed");
        return _one[0];
    }

    /// <summary>`Snn` or `Tnn...`: no reply to the requests this client sends starts that way (register replies are hex,
    /// the rest are `OK`, `Enn`, empty or qSupported's feature list).</summary>
    private static bool IsStopReply(string reply) => reply.Length >= 3 && reply[0] is 'S' or 'T' && IsHex(reply.AsSpan(1, 2));

    private static bool IsHex(ReadOnlySpan<char> s) => s.IndexOfAnyExcept("0123456789abcdefABCDEF") < 0;

    public void Dispose()
    {
        _stream.Dispose();
        _socket.Dispose();
    }
}
