using System.Text;
using Periscope.Memory;
using Periscope.Qemu;

namespace Periscope.UnitTests.Qemu;

/// <summary>QMP lines are read with a cap (IntrospectionLimits.MaxQmpLineBytes): a hostile QEMU cannot make us buffer an endless line.</summary>
public sealed class QmpLineReaderTests
{
    /// <summary>A stream that hands out at most a few bytes per read, so lines cross read boundaries.</summary>
    private sealed class Trickle(byte[] data, int step) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, step));
    }

    private static string? Line(QmpLineReader r) => r.ReadLine() is { } line ? Encoding.UTF8.GetString(line.Span) : null;

    [Fact]
    public void ReadsLinesAcrossReadsAndDropsCarriageReturns()
    {
        var data = Encoding.UTF8.GetBytes("{\"QMP\": {}}\r\n{\"return\": {}}\n\n{\"event\": \"STOP\"}");
        foreach (int step in new[] { 1, 3, 4096 })
        {
            var r = new QmpLineReader(new Trickle(data, step), 64, "qmp.sock");
            Assert.Equal("{\"QMP\": {}}", Line(r));
            Assert.Equal("{\"return\": {}}", Line(r));
            Assert.Equal("", Line(r));
            Assert.Equal("{\"event\": \"STOP\"}", Line(r)); // the last line, without its newline
            Assert.Null(Line(r));
        }
    }

    [Fact]
    public void LineLongerThanTheLimitIsAnErrorNamingSocketAndLimit()
    {
        var r = new QmpLineReader(new Trickle(Encoding.UTF8.GetBytes("{\"return\": \"" + new string('A', 100) + "\"}\n{}\n"), 7), 64, "/run/qmp.sock");
        var e = Assert.Throws<IOException>(() => r.ReadLine());
        Assert.Contains("/run/qmp.sock", e.Message);
        Assert.Contains("64 bytes", e.Message);
        Assert.Contains("MaxQmpLineBytes", e.Message);
        // Exactly at the limit is fine.
        var exact = new QmpLineReader(new MemoryStream(Encoding.UTF8.GetBytes(new string('x', 64) + "\n")), 64, "s");
        Assert.Equal(64, exact.ReadLine()!.Value.Length);
    }

    [Fact]
    public void LimitIsValidated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IntrospectionLimits { MaxQmpLineBytes = 0 }.Validate());
        Assert.True(IntrospectionLimits.Default.MaxQmpLineBytes >= 1 << 20);
    }
}
