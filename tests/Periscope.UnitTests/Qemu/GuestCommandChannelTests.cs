using System.Net.Sockets;
using System.Text;
using Periscope.Qemu;

namespace Periscope.UnitTests.Qemu;

/// <summary>The host side of the guest command port, against a fake guest on a unix socket.</summary>
public sealed class GuestCommandChannelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-cmd-").FullName;
    private string SocketPath => Path.Combine(_dir, "cmd.sock");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Accepts one connection and answers each of <paramref name="requests"/> lines with <paramref name="reply"/>(id,
    /// command); a null reply means the guest stays silent (a command still running). Everything the guest writes
    /// answers a request the host is still waiting on, so it never writes to a connection the host has closed.
    /// </summary>
    /// <param name="readAfter">When given, the guest reads nothing before it completes (a guest scheduled late).</param>
    /// <param name="hangUp">Close the connection after the last reply instead of waiting for the host to close.</param>
    private Task FakeGuest(Socket listener, int requests, Func<string, string, string?> reply, Task? readAfter = null, bool hangUp = false) => Task.Run(async () =>
    {
        using var s = listener.Accept();
        if (readAfter is not null) await readAfter;
        using var reader = new StreamReader(new NetworkStream(s), Encoding.UTF8);
        for (int i = 0; i < requests; i++)
        {
            string line = reader.ReadLine() ?? throw new IOException("host closed");
            int space = line.IndexOf(' ');
            if (reply(line[..space], line[(space + 1)..]) is not { } answer) continue;
            byte[] bytes = Encoding.UTF8.GetBytes(answer);
            // In one-byte writes, so the host sees frames split at every point (a serial port delivers them piecemeal).
            for (int b = 0; b < bytes.Length; b++) s.Send(bytes.AsSpan(b, 1));
        }
        if (!hangUp) reader.ReadToEnd();   // stay connected until the host closes
    });

    private Socket Listen()
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        listener.Listen(1);
        return listener;
    }

    [Fact]
    public async Task Replies_are_matched_by_id_with_exact_output_and_exit_code()
    {
        using var listener = Listen();
        var guest = FakeGuest(listener, 3, (id, cmd) => cmd switch
        {
            // Console noise and a stale reply to an earlier request come first.
            "echo hi" => $"noise\n@@OUT c0\nstale\n\n@@END c0 0\n@@OUT {id}\nhi\n\n@@END {id} 0\n",
            "false" => $"@@OUT {id}\n\n@@END {id} 1\n",
            _ => $"@@OUT {id}\nno newline, ünïcode\n@@END {id} 127\n",
        });
        using (var channel = new GuestCommandChannel(SocketPath))
        {
            Assert.Equal((0, "hi\n"), channel.Run("echo hi", TimeSpan.FromSeconds(10)));
            Assert.Equal((1, ""), channel.Run("false", TimeSpan.FromSeconds(10)));
            Assert.Equal((127, "no newline, ünïcode"), channel.Run("printf x", TimeSpan.FromSeconds(10)));
        }
        await guest.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Multi_line_commands_are_refused_and_silence_times_out()
    {
        using var listener = Listen();
        // The guest reads the request and never answers: it writes nothing, so the host's close after its timeout
        // cannot meet a write in flight (it once did: a zero-byte send raced the close and failed with EPIPE).
        // The worst order, made certain: the guest only reads the request after the host has timed out and closed.
        var hostClosed = new TaskCompletionSource();
        var guest = FakeGuest(listener, 1, (_, _) => null, hostClosed.Task);
        using (var channel = new GuestCommandChannel(SocketPath))
        {
            Assert.Throws<ArgumentException>(() => channel.Run("a\nb", TimeSpan.FromSeconds(1)));
            Assert.Throws<TimeoutException>(() => channel.Run("sleep 100", TimeSpan.FromMilliseconds(300)));
        }
        hostClosed.SetResult();
        await guest.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_guest_that_hung_up_is_an_io_error_and_the_next_request_reconnects()
    {
        using var listener = Listen();
        // The first guest answers once, then hangs up (the serial chardev's client is dropped).
        var first = FakeGuest(listener, 1, (id, _) => $"@@OUT {id}\none\n@@END {id} 0\n", hangUp: true);
        using var channel = new GuestCommandChannel(SocketPath);
        Assert.Equal((0, "one"), channel.Run("echo one", TimeSpan.FromSeconds(10)));
        await first.WaitAsync(TimeSpan.FromSeconds(10));
        // The peer is gone before the host writes: EPIPE on send, reported as the port failing, not a SocketException.
        var e = Assert.Throws<IOException>(() => channel.Run("echo two", TimeSpan.FromSeconds(10)));
        Assert.Contains(SocketPath, e.Message);

        var second = FakeGuest(listener, 1, (id, _) => $"@@OUT {id}\nthree\n@@END {id} 0\n");
        Assert.Equal((0, "three"), channel.Run("echo three", TimeSpan.FromSeconds(10)));
        channel.Dispose();
        await second.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void No_listener_is_an_io_error()
    {
        using var channel = new GuestCommandChannel(SocketPath, isAlive: () => false);
        Assert.Throws<IOException>(() => channel.Run("true", TimeSpan.FromSeconds(5)));
    }
}
