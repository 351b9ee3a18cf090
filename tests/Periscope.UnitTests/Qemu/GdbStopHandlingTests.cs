using System.Net.Sockets;
using System.Text;
using Periscope.Qemu.Gdb;

namespace Periscope.UnitTests.Qemu;

/// <summary>
/// What QEMU 7.2's stub does that a plain request/reply client gets wrong (seen against a real guest): it announces a
/// stop unasked when a client connects (and at every QMP stop), so a stop reply can arrive before the reply to the next
/// request; it answers `p` with an empty packet until the client has read its target XML, so registers come from `g`,
/// whose x86-64 layout is sliced here.
/// </summary>
public sealed class GdbStopHandlingTests
{
    [Fact]
    public void StopAnnouncedBeforeAReplyIsKeptForWaitForStop()
    {
        string path = Path.Combine(Path.GetTempPath(), $"periscope-gdbstub-{Environment.ProcessId}-{Guid.NewGuid():n}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var seen = new List<string>();
        Exception? stubFailure = null;
        var stub = new Thread(() =>
        {
            try
            {
                using var conn = listener.Accept();
                using var s = new NetworkStream(conn);
                void Send(string payload) { s.Write(GdbPacket.Frame(payload)); Assert.Equal('+', (char)s.ReadByte()); }
                string Receive(bool announceStopBeforeAck = false)
                {
                    var sb = new StringBuilder();
                    int b;
                    while ((b = s.ReadByte()) != '$') if (b < 0) return "";
                    while ((b = s.ReadByte()) != '#') sb.Append((char)b);
                    s.ReadByte(); s.ReadByte();
                    // QEMU 7.2 on connect: the stop announcement goes out before the ack of the client's first packet.
                    if (announceStopBeforeAck) Send("T02thread:01;");
                    s.WriteByte((byte)'+');
                    seen.Add(sb.ToString());
                    return sb.ToString();
                }
                Receive(announceStopBeforeAck: true); Send("PacketSize=1000;qXfer:features:read+");
                Receive(); Send("OK");                        // Z2
                Receive(); Send("OK");                        // D
            }
            catch (Exception e) { stubFailure = e; }
        });
        stub.Start();
        try
        {
            using (var client = GdbRemoteClient.ConnectUnix(path, TimeSpan.FromSeconds(10), 64 << 10))
            {
                Assert.Equal("1000", client.Features["PacketSize"]);
                client.InsertWatchpoint(WatchpointKind.Write, 0xffffffff82000100, 0x1120);
                var announced = client.WaitForStop(TimeSpan.Zero);
                Assert.NotNull(announced);
                Assert.Equal(2, announced.Signal);
                Assert.Null(announced.Watch);
                Assert.Null(client.WaitForStop(TimeSpan.FromMilliseconds(50))); // taken once
                client.Detach();
            }
            Assert.True(stub.Join(TimeSpan.FromSeconds(30)), "stub did not finish");
            Assert.Null(stubFailure);
            Assert.Equal(["qSupported:swbreak+;hwbreak+", "Z2,ffffffff82000100,1120", "D"], seen);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void X86_64RegisterBlockIsSlicedAtQemusOffsets()
    {
        // 16 GPRs, rip, eflags, 6 segment selectors, fs_base, gs_base, k_gs_base: what QEMU 7.2 sends for a 64-bit vCPU.
        var g = new byte[608];
        BitConverter.TryWriteBytes(g.AsSpan(7 * 8), 0xffffc90000123f00UL);   // rsp
        BitConverter.TryWriteBytes(g.AsSpan(16 * 8), 0xffffffffc04d8123UL);  // rip
        BitConverter.TryWriteBytes(g.AsSpan(164), 0x00007f0000001000UL);     // fs_base
        BitConverter.TryWriteBytes(g.AsSpan(172), 0xff342ea3cf400000UL);     // gs_base
        BitConverter.TryWriteBytes(g.AsSpan(180), 0x00007f0000002000UL);     // k_gs_base
        var regs = GdbX86_64Registers.Parse(g);
        Assert.Equal(0xffffffffc04d8123UL, regs.Rip);
        Assert.Equal(0xffffc90000123f00UL, regs.Rsp);
        Assert.Equal(0xff342ea3cf400000UL, regs.GsBase);
        Assert.Equal(0x00007f0000002000UL, regs.KernelGsBase);
        Assert.Throws<GdbProtocolException>(() => GdbX86_64Registers.Parse(g.AsSpan(0, 187)));
    }
}
