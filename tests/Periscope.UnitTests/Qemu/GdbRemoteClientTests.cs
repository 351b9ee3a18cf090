using System.Net;
using System.Net.Sockets;
using System.Text;
using Periscope.Qemu.Gdb;

namespace Periscope.UnitTests.Qemu;

/// <summary>The GDB remote-protocol client against a scripted stub on a real TCP socket: framing, checksums, acks and
/// retransmission, qSupported, Z2 watchpoints, stop replies and register reads; and that it has no write path.</summary>
public sealed class GdbRemoteClientTests
{
    [Fact]
    public void FramesWithModulo256ChecksumAndEscapes()
    {
        Assert.Equal("$g#67", Encoding.ASCII.GetString(GdbPacket.Frame("g")));
        Assert.Equal("$Z2,ffffffff81000000,8#" + GdbPacket.Checksum("Z2,ffffffff81000000,8"u8).ToString("x2"), Encoding.ASCII.GetString(GdbPacket.Frame("Z2,ffffffff81000000,8")));
        Assert.Equal("$a}\u0003b#", Encoding.ASCII.GetString(GdbPacket.Frame("a#b"))[..6]);
    }

    [Fact]
    public void DecodesRunLengthAndEscapesWithinTheLimit()
    {
        Assert.Equal("0000", GdbPacket.Decode("0* "u8, 100)); // ' ' = 32: three more
        Assert.Equal("a#b", GdbPacket.Decode("a}\u0003b"u8, 100));
        Assert.Throws<GdbProtocolException>(() => GdbPacket.Decode("0*~"u8, 50)); // 97 repeats > limit
        Assert.Throws<GdbProtocolException>(() => GdbPacket.Decode("*x"u8, 50));
    }

    [Fact]
    public void ParsesWatchpointStopReply()
    {
        var stop = GdbStopReply.Parse("T05watch:ffffffff82000100;thread:p1.2;");
        Assert.Equal(5, stop.Signal);
        Assert.Equal(WatchpointKind.Write, stop.Watch);
        Assert.Equal(0xffffffff82000100UL, stop.WatchAddress);
        Assert.Equal("p1.2", stop.Thread);
        Assert.Null(GdbStopReply.Parse("S05").Watch);
        Assert.Throws<GdbProtocolException>(() => GdbStopReply.Parse("OK"));
        Assert.Throws<GdbProtocolException>(() => GdbStopReply.Parse("T05watch:zz;"));
    }

    [Fact]
    public void SessionWithScriptedStub()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var seen = new List<string>();
        Exception? stubFailure = null;
        var stub = new Thread(() => { try { Stub(); } catch (Exception e) { stubFailure = e; } });
        void Stub()
        {
            using var conn = listener.AcceptSocket();
            using var s = new NetworkStream(conn);
            string Receive()
            {
                var sb = new StringBuilder();
                int b;
                while ((b = s.ReadByte()) != '$') if (b < 0) return "";
                while ((b = s.ReadByte()) != '#') sb.Append((char)b);
                s.ReadByte(); s.ReadByte();
                s.WriteByte((byte)'+');
                lock (seen) seen.Add(sb.ToString());
                return sb.ToString();
            }
            void Reply(string payload, bool corruptFirst = false)
            {
                var frame = GdbPacket.Frame(payload);
                if (corruptFirst)
                {
                    var bad = (byte[])frame.Clone();
                    bad[^1] = bad[^1] == (byte)'0' ? (byte)'1' : (byte)'0';
                    s.Write(bad);
                    Assert.Equal('-', (char)s.ReadByte()); // the client asks for a resend
                }
                s.Write(frame);
                Assert.Equal('+', (char)s.ReadByte());
            }
            Receive(); Reply("PacketSize=1000;hwbreak+;qXfer:features:read+");
            Receive(); Reply("OK");                                   // Z2
            Receive();                                                // c: no reply until the stop
            Reply("T05watch:ffffffff82000100;thread:01;");
            Receive(); Reply("1122334455667788", corruptFirst: true); // p10
            Receive(); Reply("OK");                                   // z2
        }
        stub.Start();
        using (var client = GdbRemoteClient.Connect("127.0.0.1", port, TimeSpan.FromSeconds(10), 64 << 10))
        {
            Assert.Equal("+", client.Features["hwbreak"]);
            Assert.Equal("1000", client.Features["PacketSize"]);
            client.InsertWatchpoint(WatchpointKind.Write, 0xffffffff82000100, 8);
            client.Continue();
            var stop = client.WaitForStop(TimeSpan.FromSeconds(10));
            Assert.NotNull(stop);
            Assert.Equal(0xffffffff82000100UL, stop.WatchAddress);
            Assert.Equal(0x8877665544332211UL, BitConverter.ToUInt64(client.ReadRegister(16)));
            client.RemoveWatchpoint(WatchpointKind.Write, 0xffffffff82000100, 8);
        }
        Assert.True(stub.Join(TimeSpan.FromSeconds(30)), "stub did not finish");
        Assert.Null(stubFailure);
        Assert.Equal(["qSupported:swbreak+;hwbreak+", "Z2,ffffffff82000100,8", "c", "p10", "z2,ffffffff82000100,8"], seen);
    }

    [Fact]
    public void ClientHasNoWritePath()
    {
        // Memory writes (M, X) and register writes (G, P) must not exist in the API at all.
        var names = typeof(GdbRemoteClient).GetMethods().Select(m => m.Name).ToList();
        Assert.DoesNotContain(names, n => n.Contains("Write", StringComparison.OrdinalIgnoreCase) || n.Contains("Poke", StringComparison.OrdinalIgnoreCase) || n.StartsWith("Set", StringComparison.Ordinal));
        Assert.Contains("ReadRegister", names);
    }
}
