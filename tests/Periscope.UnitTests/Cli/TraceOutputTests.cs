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
    ];

    [Fact]
    public void A_syscall_json_line_has_the_documented_fields_in_order()
    {
        Assert.Equal("{\"time\":1.5,\"seq\":7,\"vcpu\":0,\"pid\":42,\"tid\":42,\"ppid\":1,\"comm\":\"sysseq\",\"uid\":0,\"task\":\"0xffff888003a5c000\","
            + "\"nr\":110,\"name\":\"getppid\",\"args\":[],\"ret\":1,\"retText\":\"1\"}", TraceCommand.SyscallJson(Getppid(7), 1.5));
    }

    [Fact]
    public void A_syscall_text_line_reads_like_strace_with_the_guests_text_escaped()
    {
        Assert.Equal("  1.500000 cpu0 [pid    42 sysseq] getppid() = 1", TraceCommand.SyscallLine(Events[0], 1.5));
        Assert.Equal("  2.000000 cpu1 [pid    42/43 a\\x1b[2Jb\\u202e] openat(AT_FDCWD, \"/etc/<x>\\x1b\", O_RDONLY) = -1 ENOENT",
            TraceCommand.SyscallLine(Events[1], 2));
        Assert.Equal("  0.000001 cpu0 [pid     ?] syscall_999(0x1, 0x2, 0x3) = ?", TraceCommand.SyscallLine(Events[3], 0.000001));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Batched_output_is_byte_for_byte_the_lines_written_one_at_a_time(bool json)
    {
        var expected = new StringBuilder();
        var output = new StringWriter();
        using (var batch = new TraceOutputBatch(TerminalSafeWriter.Wrap(output)))
        {
            var line = new StringBuilder();
            for (int round = 0; round < 3; round++)
                foreach (var e in Events)
                {
                    double t = round + e.Seq / 1000.0;
                    expected.Append(json ? TraceCommand.SyscallJson(e, t) : TraceCommand.SyscallLine(e, t)).Append(output.NewLine);
                    if (json) { TraceCommand.WriteSyscall(batch.BeginJsonLine(), e, t); batch.EndJsonLine(); }
                    else batch.Line(TraceCommand.AppendSyscallLine(line.Clear(), e, t));
                }
        }
        // What the old path printed: each line through the terminal-safe writer on its own.
        var oneByOne = new StringWriter();
        TerminalSafeWriter.Wrap(oneByOne).Write(expected.ToString());
        Assert.Equal(oneByOne.ToString(), output.ToString());
        Assert.DoesNotContain("\u001b", output.ToString());
    }

    [Fact]
    public void Nothing_is_written_before_a_flush_and_each_flush_is_one_write()
    {
        var counting = new CountingWriter();
        using var batch = new TraceOutputBatch(counting);
        for (int i = 0; i < 100; i++) { TraceCommand.WriteSyscall(batch.BeginJsonLine(), Getppid((ulong)i), i); batch.EndJsonLine(); }
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
