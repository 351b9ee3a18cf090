using System.Text;
using Periscope.Cli.Commands;
using Periscope.Cli.Output;
using Periscope.Events;
using Periscope.Events.Syscalls;
using Periscope.Events.Tasks;

namespace Periscope.UnitTests.Cli;

/// <summary>
/// `trace syscalls` writes its lines in batches through one reused JSON writer: the bytes must be the lines the
/// one-line-at-a-time path gives, escaping included, and nothing may reach the output before the batch is flushed
/// except when a batch grows past its size.
/// </summary>
public class TraceOutputTests
{
    private static readonly TracedTask Sysseq = new(0xffff888003a5c000, 42, 42, "sysseq", 1, 0, 0xffff888004000000);
    private static readonly TracedTask HostileThread = new(0xffff888003a60000, 43, 42, "a\u001b[2Jb\u202e", 1, null, 0xffff888004000000);

    private static SyscallEvent Getppid(ulong seq) => new(seq, 0, 0, Sysseq, 110, "getppid", default, [], 1, Sysseq);

    private static readonly SyscallEvent[] Events =
    [
        Getppid(7),
        new(8, 1, 0, HostileThread, 257, "openat", new SyscallArguments(unchecked((ulong)-100), 0x4020, 0, 0, 0, 0),
            [new(ArgumentKind.DirFd, unchecked((ulong)-100), "AT_FDCWD"), new(ArgumentKind.Path, 0x4020, "\"/etc/<x>\u001b\"", Path: "/etc/<x>\u001b"),
             new(ArgumentKind.OpenFlags, 0, "O_RDONLY")], -2, HostileThread),
        new(9, 0, 0, Sysseq, 59, "execve", default,
            [new(ArgumentKind.Path, 0x5000, "\"/bin/sysseq\"", Path: "/bin/sysseq"), new(ArgumentKind.Argv, 0x6000, "[\"sysseq\", \"ünï\"]", Argv: ["sysseq", "ünï"]),
             new(ArgumentKind.Hex, 0, "NULL")], 0, Sysseq),
        new(10, 0, 0, null, 999, null, new SyscallArguments(1, 2, 3, 0, 0, 0),
            [new(ArgumentKind.Hex, 1, "0x1"), new(ArgumentKind.Hex, 2, "0x2"), new(ArgumentKind.Hex, 3, "0x3")], null, null),
        new(11, 0, 0, Sysseq, 9, "mmap", new SyscallArguments(0, 4096, 3, 0x22, unchecked((ulong)-1), 0),
            [new(ArgumentKind.Hex, 0, "NULL"), new(ArgumentKind.Size, 4096, "4096"), new(ArgumentKind.Prot, 3, "PROT_READ|PROT_WRITE"),
             new(ArgumentKind.MapFlags, 0x22, "MAP_PRIVATE|MAP_ANONYMOUS"), new(ArgumentKind.Fd, unchecked((ulong)-1), "-1"), new(ArgumentKind.Hex, 0, "NULL")],
            0x7f12_3456_7000, Sysseq),
    ];

    /// <summary>The events above, plus returns of every shape (errno named and not, address, negative address).</summary>
    private static readonly SyscallEvent[] AllEvents =
    [
        .. Events,
        Events[4] with { Return = -12 }, Events[4] with { Return = -4096 }, Events[0] with { Return = -300 }, Events[0] with { Return = long.MinValue },
        Events[0] with { Task = HostileThread with { Tgid = -5, Pid = 123456789, Uid = null } },
    ];

    private static string Json(SyscallEvent e, double seconds)
    {
        var b = new Utf8LineBuffer(16);
        TraceSyscallLines.WriteJson(b, e, seconds);
        return Encoding.UTF8.GetString(b.WrittenSpan);
    }

    private static string Text(SyscallEvent e, long ticks, long frequency = 1_000_000_000)
    {
        var b = new Utf8LineBuffer(16);
        TraceSyscallLines.WriteText(b, e, ticks, frequency);
        return Encoding.UTF8.GetString(b.WrittenSpan);
    }

    [Fact]
    public void A_syscall_json_line_has_the_documented_fields_in_order()
    {
        Assert.Equal("{\"time\":1.5,\"seq\":7,\"vcpu\":0,\"pid\":42,\"tid\":42,\"ppid\":1,\"comm\":\"sysseq\",\"uid\":0,\"task\":\"0xffff888003a5c000\","
            + "\"nr\":110,\"name\":\"getppid\",\"args\":[],\"ret\":1,\"retText\":\"1\"}", Json(Getppid(7), 1.5));
    }

    [Fact]
    public void A_syscall_text_line_reads_like_strace_with_the_guests_text_escaped()
    {
        Assert.Equal("  1.500000 cpu0 [pid    42 sysseq] getppid() = 1", Text(Events[0], 1_500_000_000));
        Assert.Equal("  2.000000 cpu1 [pid    42/43 a\\x1b[2Jb\\u202e] openat(AT_FDCWD, \"/etc/<x>\\x1b\", O_RDONLY) = -1 ENOENT",
            Text(Events[1], 2_000_000_000));
        Assert.Equal("  0.000001 cpu0 [pid     ?] syscall_999(0x1, 0x2, 0x3) = ?", Text(Events[3], 1000));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Batched_output_is_byte_for_byte_what_the_general_writers_print_line_by_line(bool json)
    {
        var expected = new StringBuilder();
        var output = new StringWriter();
        using (var batch = new TraceOutputBatch(TerminalSafeWriter.Wrap(output)))
        {
            for (int round = 0; round < 3; round++)
                foreach (var e in AllEvents)
                {
                    long ticks = round * 1_000_000_000L + (long)e.Seq * 1_000_000 + 123_456;
                    double t = ticks / 1e9;
                    expected.Append(json ? ReferenceTraceLines.SyscallJson(e, t) : ReferenceTraceLines.SyscallLine(e, t)).Append(output.NewLine);
                    if (json) TraceSyscallLines.WriteJson(batch.Bytes, e, t);
                    else TraceSyscallLines.WriteText(batch.Bytes, e, ticks, 1_000_000_000);
                    batch.EndLine();
                }
        }
        // What the old path printed: each line through the terminal-safe writer on its own.
        var oneByOne = new StringWriter();
        TerminalSafeWriter.Wrap(oneByOne).Write(expected.ToString());
        Assert.Equal(oneByOne.ToString(), output.ToString());
        Assert.DoesNotContain("\u001b", output.ToString());
        Assert.DoesNotContain("\u202e", output.ToString());
    }

    [Fact]
    public void Json_lines_are_ascii_whatever_bytes_the_guest_put_in_comm_and_path()
    {
        // Every byte value, as the consumer decodes guest bytes (UTF-8 with replacement), plus Latin-1, bidi, emoji.
        var all = new byte[256];
        for (int i = 0; i < 256; i++) all[i] = (byte)i;
        string fromBytes = Encoding.UTF8.GetString(all), latin1 = Encoding.Latin1.GetString(all);
        foreach (string hostile in new[] { fromBytes, latin1, "\u202e\u2066evil\u061c", "\ud83d\ude00\"quoted\"\\<&>'+`", "\u001b]0;title\u0007" })
        {
            var task = new TracedTask(1, 2, 2, hostile, 1, 0, 0);
            var e = new SyscallEvent(1, 0, 0, task, 2, hostile, default,
                [new(ArgumentKind.Path, 0x10, SyscallFormatter.Quote(hostile), Path: hostile), new(ArgumentKind.Argv, 0x20, hostile, Argv: [hostile, "x"])], 3, task);
            string line = Json(e, 12.25);
            Assert.All(line, c => Assert.InRange(c, ' ', '~'));
            Assert.Equal(ReferenceTraceLines.SyscallJson(e, 12.25), line);
            using var parsed = System.Text.Json.JsonDocument.Parse(line);
            Assert.Equal(hostile, parsed.RootElement.GetProperty("comm").GetString());
            // The human line escapes the same text for the terminal exactly as the writer would.
            var viaWriter = new StringWriter();
            TerminalSafeWriter.Wrap(viaWriter).Write(ReferenceTraceLines.SyscallLine(e, 12.25));
            Assert.Equal(viaWriter.ToString(), Text(e, 12_250_000_000));
        }
    }

    [Fact]
    public void Json_strings_escape_every_character_as_the_default_encoder_does()
    {
        for (int c = 0; c < 0x3000; c++)
        {
            if (char.IsSurrogate((char)c)) continue;
            string s = "a" + (char)c + "b";
            var b = new Utf8LineBuffer(4);
            b.AppendJsonString(s);
            Assert.Equal(ReferenceTraceLines.JsonString(s), Encoding.UTF8.GetString(b.WrittenSpan));
        }
    }

    [Fact]
    public void Times_read_exactly_as_the_double_formatters_write_them()
    {
        var random = new Random(10);
        var ticks = new List<long> { 0, 1, 499, 500, 501, 999, 1000, 1500, 2500, 99_999, 100_000, 100_499, 100_500, 999_999_500, 999_999_499,
            1_000_000_000, 1_234_567_890, 86_400_000_000_500, -1, -500, -1_500_000 };
        for (int i = 0; i < 200_000; i++)
        {
            long scale = i % 4 switch { 0 => 1_000, 1 => 1_000_000_000, 2 => 100_000_000_000, _ => 10_000_000_000_000 };
            long v = (long)(random.NextDouble() * scale);
            ticks.Add(i % 3 == 0 ? v / 1000 * 1000 + 500 : v);   // many exact half microseconds
        }
        foreach (long frequency in new long[] { 1_000_000_000, 10_000_000 })
            foreach (long t in ticks)
            {
                double seconds = t / (double)frequency;
                var json = new Utf8LineBuffer(8);
                json.AppendJsonSeconds(seconds);
                Assert.Equal(ReferenceTraceLines.JsonNumber(Math.Round(seconds, 6)), Encoding.UTF8.GetString(json.WrittenSpan));
                var text = new Utf8LineBuffer(8);
                text.AppendSecondsF6Padded(t, frequency);
                Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture, "{0,10:F6}", seconds), Encoding.UTF8.GetString(text.WrittenSpan));
            }
    }

    [Fact]
    public void Formatting_a_line_allocates_nothing()
    {
        var events = new[] { Getppid(1), Events[2], Events[3], Events[4] };
        var b = new Utf8LineBuffer(1 << 20);
        void Round(int n)
        {
            for (int i = 0; i < n; i++)
            {
                var e = events[i % events.Length];
                b.Clear();
                TraceSyscallLines.WriteJson(b, e, 1 + i * 0.000123);
                TraceSyscallLines.WriteText(b, e, 1_000_000_000L + i * 123_456L, 1_000_000_000);
            }
        }
        Round(1000);   // warm: JIT, static tables
        // The least of three measured rounds: the runtime's own one-time work on this thread (a method moving to its
        // next JIT tier mid-round; 7,752 bytes once in CI) is not the formatter's. A formatter that allocated per line
        // would show in every round (200,000 lines each).
        long least = long.MaxValue;
        for (int r = 0; r < 3; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Round(100_000);
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, least);
    }

    [Fact]
    public void Bytes_written_to_the_stdout_stream_are_the_bytes_the_writer_path_prints()
    {
        var stream = new MemoryStream();
        var before = new StringWriter();
        var safe = TerminalSafeWriter.Wrap(before);
        var viaWriter = new StringWriter();
        using (var direct = new TraceOutputBatch(safe, new NonDisposingStream(stream)))
        using (var text = new TraceOutputBatch(TerminalSafeWriter.Wrap(viaWriter)))
        {
            foreach (var batch in new[] { direct, text })
            {
                foreach (var e in AllEvents)
                {
                    TraceSyscallLines.WriteJson(batch.Bytes, e, 3.5);
                    batch.EndLine();
                    TraceSyscallLines.WriteText(batch.Bytes, e, 3_500_000_000, 1_000_000_000);
                    batch.EndLine();
                }
                batch.Line("EXEC pid 1 \u001b[31m");
            }
        }
        Assert.Equal(Encoding.UTF8.GetBytes(viaWriter.ToString()), stream.ToArray());
        Assert.Equal("", before.ToString());
    }

    private sealed class NonDisposingStream(Stream inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    }

    [Fact]
    public void Nothing_is_written_before_a_flush_and_each_flush_is_one_write()
    {
        var counting = new CountingWriter();
        using var batch = new TraceOutputBatch(counting);
        for (int i = 0; i < 100; i++) { TraceSyscallLines.WriteJson(batch.Bytes, Getppid((ulong)i), i); batch.EndLine(); }
        Assert.Equal(0, counting.Writes);
        batch.Flush();
        Assert.Equal(1, counting.Writes);
        Assert.Equal(100, counting.Text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        batch.Flush();
        Assert.Equal(1, counting.Writes);   // nothing new: no write
    }

    [Fact]
    public void A_batch_that_outgrows_its_buffer_is_written_at_a_line_boundary_without_waiting_for_the_flush()
    {
        var counting = new CountingWriter();
        using var batch = new TraceOutputBatch(counting);
        string longLine = new('x', 10_000);
        for (int i = 0; i < 100; i++) batch.Line(longLine);   // 1 MB: more than one batch buffer
        Assert.InRange(counting.Writes, 1, 10);
        Assert.Equal(0, counting.Text.Length % (longLine.Length + counting.NewLine.Length));
        batch.Flush();
        Assert.Equal(100 * (longLine.Length + counting.NewLine.Length), counting.Text.Length);
    }

    private sealed class CountingWriter : TextWriter
    {
        public int Writes { get; private set; }
        public StringBuilder Text { get; } = new();
        public override Encoding Encoding => Encoding.UTF8;
        public override void Write(char value) { Writes++; Text.Append(value); }
        public override void Write(ReadOnlySpan<char> buffer) { Writes++; Text.Append(buffer); }
        public override void Write(char[] buffer, int index, int count) => Write(buffer.AsSpan(index, count));
    }
}
