using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Periscope.Qemu;

/// <summary>
/// Runs shell commands inside the demo/test guest through a serial port that QEMU exposes as a unix socket (ttyS2 in
/// the guest, served by guest/init). Request: one line "<c>id command</c>". Reply: "<c>@@OUT id</c>", the command's
/// output, a newline, "<c>@@END id exit-code</c>". This is a test facility of Periscope's own guest image, driven by
/// the guest's own shell; introspection never uses it.
/// </summary>
public sealed class GuestCommandChannel : IDisposable
{
    private readonly string _socketPath;
    private readonly Func<bool>? _isAlive;
    private readonly object _lock = new();
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
    private readonly StringBuilder _received = new();
    private Socket? _socket;
    private int _nextId;

    /// <param name="socketPath">The unix socket of QEMU's chardev (server=on).</param>
    /// <param name="isAlive">Returns false once QEMU has exited, so waits end early; null when unknown.</param>
    public GuestCommandChannel(string socketPath, Func<bool>? isAlive = null)
    {
        _socketPath = socketPath;
        _isAlive = isAlive;
    }

    /// <summary>
    /// Runs <paramref name="shellCommand"/> (one line, passed to <c>sh -c</c> in the guest) and returns its exit code
    /// and combined stdout/stderr. Replies to earlier requests that timed out are skipped.
    /// </summary>
    public (int ExitCode, string Output) Run(string shellCommand, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(shellCommand);
        if (shellCommand.Contains('\n') || shellCommand.Contains('\r'))
            throw new ArgumentException("the command must be a single line", nameof(shellCommand));
        lock (_lock)
        {
            var sw = Stopwatch.StartNew();
            var socket = _socket ??= Connect(timeout);
            try
            {
                return Exchange(socket, shellCommand, timeout, sw);
            }
            catch (SocketException e)
            {
                // The port went away mid-request (QEMU exited, or its chardev dropped us: EPIPE, ECONNRESET). The next
                // request connects afresh, as QEMU's chardev server accepts a new client.
                Drop();
                throw new IOException($"{_socketPath}: the guest command port failed: {e.Message}", e);
            }
            catch (IOException)
            {
                Drop();
                throw;
            }
        }
    }

    private (int ExitCode, string Output) Exchange(Socket socket, string shellCommand, TimeSpan timeout, Stopwatch sw)
    {
        string id = "c" + (++_nextId).ToString(CultureInfo.InvariantCulture);
        socket.Send(Encoding.UTF8.GetBytes($"{id} {shellCommand}\n"));
        var buffer = new byte[4096];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        while (true)
        {
            if (TryTakeReply(id, out var reply)) return reply;
            TimeSpan left = timeout - sw.Elapsed;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"guest command '{shellCommand}' did not finish within {timeout.TotalSeconds:0.#} s");
            if (_isAlive is not null && !_isAlive()) throw new IOException("QEMU exited while a guest command was running");
            int waitMicros = (int)Math.Min(left.TotalMicroseconds, 250_000);
            if (!socket.Poll(Math.Max(waitMicros, 1), SelectMode.SelectRead)) continue;
            int n = socket.Receive(buffer);
            if (n == 0) throw new IOException($"{_socketPath}: the guest command port closed");
            int c = _decoder.GetChars(buffer, 0, n, chars, 0);
            _received.Append(chars, 0, c);
        }
    }

    /// <summary>Finds "@@OUT id\n...\n@@END id code\n" in what has arrived, drops everything up to its end.</summary>
    private bool TryTakeReply(string id, out (int ExitCode, string Output) reply)
    {
        reply = default;
        string text = _received.ToString();
        string begin = $"@@OUT {id}\n";
        int start;
        if (text.StartsWith(begin, StringComparison.Ordinal)) start = 0;
        else
        {
            int at = text.IndexOf("\n" + begin, StringComparison.Ordinal);
            if (at < 0) return false;
            start = at + 1;
        }
        int body = start + begin.Length;
        // The guest always writes a newline after the output, so even empty output is followed by "\n@@END".
        string endMarker = $"\n@@END {id} ";
        int end = text.IndexOf(endMarker, body, StringComparison.Ordinal);
        if (end < 0) return false;
        int codeStart = end + endMarker.Length;
        int lineEnd = text.IndexOf('\n', codeStart);
        if (lineEnd < 0) return false;
        if (!int.TryParse(text.AsSpan(codeStart, lineEnd - codeStart).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int code))
            throw new IOException($"malformed reply trailer from the guest: '{text[end..lineEnd].Trim()}'");
        string output = text[body..end];
        _received.Remove(0, lineEnd + 1);
        reply = (code, output);
        return true;
    }

    private Socket Connect(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(_socketPath));
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                if (sw.Elapsed >= timeout || (_isAlive is not null && !_isAlive()))
                    throw new IOException($"{_socketPath}: cannot connect to the guest command port: {e.Message}", e);
                Thread.Sleep(100);
            }
        }
    }

    private void Drop()
    {
        _socket?.Dispose();
        _socket = null;
        _received.Clear();
        _decoder.Reset();
    }

    public void Dispose()
    {
        lock (_lock) Drop();
    }
}
