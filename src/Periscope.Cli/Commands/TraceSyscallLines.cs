using Periscope.Cli.Output;
using Periscope.Events;
using Periscope.Events.Syscalls;

namespace Periscope.Cli.Commands;

/// <summary>
/// The two lines of `trace syscalls`, written straight into UTF-8 bytes with no allocation per event: the JSON line
/// (the fields and bytes <see cref="System.Text.Json.Utf8JsonWriter"/> with the default encoder writes) and the
/// strace-like line (what a StringBuilder through <see cref="TerminalSafeWriter"/> prints). The unit tests hold the
/// general-writer versions of both and compare byte for byte.
/// </summary>
internal static class TraceSyscallLines
{
    private static readonly byte[][] s_argumentKinds = [.. Enum.GetValues<ArgumentKind>().Select(k => System.Text.Encoding.ASCII.GetBytes($"\"{k}\""))];

    /// <summary>{"time":…,"seq":…,"vcpu":…,"pid":…,…,"args":[…],"ret":…,"retText":"…"}</summary>
    public static void WriteJson(Utf8LineBuffer b, SyscallEvent e, double seconds)
    {
        b.Append("{\"time\":"u8);
        b.AppendJsonSeconds(seconds);
        b.Append(",\"seq\":"u8);
        b.AppendDecimal(e.Seq);
        b.Append(",\"vcpu\":"u8);
        b.AppendDecimal(e.Vcpu);
        if (e.Task is not { } t) b.Append(",\"pid\":null"u8);
        else
        {
            b.Append(",\"pid\":"u8);
            b.AppendDecimal(t.Tgid);
            b.Append(",\"tid\":"u8);
            b.AppendDecimal(t.Pid);
            b.Append(",\"ppid\":"u8);
            b.AppendDecimal(t.ParentTgid);
            b.Append(",\"comm\":"u8);
            b.AppendJsonString(t.Comm);
            if (t.Uid is { } uid)
            {
                b.Append(",\"uid\":"u8);
                b.AppendDecimal(uid);
            }
            b.Append(",\"task\":\""u8);
            b.AppendHexAddress(t.Address);
            b.Append((byte)'"');
        }
        b.Append(",\"nr\":"u8);
        b.AppendDecimal(e.Number);
        b.Append(",\"name\":"u8);
        if (e.Name is { } name) b.AppendJsonString(name); else b.Append("null"u8);
        b.Append(",\"args\":["u8);
        var args = e.Arguments;
        for (int i = 0; i < args.Count; i++)
        {
            var a = args[i];
            b.Append(i == 0 ? "{\"kind\":"u8 : ",{\"kind\":"u8);
            int kind = (int)a.Kind;
            if ((uint)kind < (uint)s_argumentKinds.Length) b.Append(s_argumentKinds[kind]); else b.AppendJsonString(a.Kind.ToString());
            b.Append(",\"raw\":\""u8);
            b.AppendHexAddress(a.Raw);
            b.Append("\",\"text\":"u8);
            b.AppendJsonString(a.Text);
            if (a.Path is { } path)
            {
                b.Append(",\"path\":"u8);
                b.AppendJsonString(path);
            }
            if (a.Argv is { } argv)
            {
                b.Append(",\"argv\":["u8);
                for (int j = 0; j < argv.Count; j++)
                {
                    if (j > 0) b.Append((byte)',');
                    b.AppendJsonString(argv[j]);
                }
                b.Append((byte)']');
            }
            b.Append((byte)'}');
        }
        b.Append("],\"ret\":"u8);
        if (e.Return is { } ret) b.AppendDecimal(ret); else b.Append("null"u8);
        b.Append(",\"retText\":\""u8);
        AppendReturnText(b, e);   // digits, "?", "-1 ENAME" or an address: nothing JSON escapes
        b.Append("\"}"u8);
    }

    /// <summary><c>  1.234567 cpu0 [pid    42/43 comm] name(args) = ret</c>; the time is <paramref name="ticks"/> /
    /// <paramref name="frequency"/> seconds.</summary>
    public static void WriteText(Utf8LineBuffer b, SyscallEvent e, long ticks, long frequency)
    {
        b.AppendSecondsF6Padded(ticks, frequency);
        b.Append(" cpu"u8);
        b.AppendDecimal(e.Vcpu);
        b.Append((byte)' ');
        if (e.Task is not { } t) b.Append("[pid     ?]"u8);
        else
        {
            b.Append("[pid "u8);
            b.AppendDecimalPadded(t.Tgid, 5);
            if (t.Pid != t.Tgid)
            {
                b.Append((byte)'/');
                b.AppendDecimal(t.Pid);
            }
            b.Append((byte)' ');
            b.AppendTerminalText(t.Comm, keepLayout: false);
            b.Append((byte)']');
        }
        b.Append((byte)' ');
        if (e.Name is { } name) b.AppendTerminalText(name, keepLayout: true);
        else
        {
            b.Append("syscall_"u8);
            b.AppendDecimal(e.Number);
        }
        b.Append((byte)'(');
        var args = e.Arguments;
        for (int i = 0; i < args.Count; i++)
        {
            if (i > 0) b.Append(", "u8);
            b.AppendTerminalText(args[i].Text, keepLayout: false);
        }
        b.Append(") = "u8);
        AppendReturnText(b, e);
    }

    /// <summary><see cref="SyscallEvent.ReturnText"/> without its string.</summary>
    private static void AppendReturnText(Utf8LineBuffer b, SyscallEvent e)
    {
        if (e.Return is not { } value) { b.Append((byte)'?'); return; }
        if (value < 0 && value >= -4095)
        {
            int errno = (int)-value;
            if (SyscallFormatter.ErrnoName(errno) is { } errnoName)
            {
                b.Append("-1 "u8);
                b.AppendTerminalText(errnoName, keepLayout: true);
            }
            else
            {
                b.Append("-1 errno "u8);
                b.AppendDecimal(errno);
            }
            return;
        }
        if (SyscallFormatter.ReturnsAddress(e.Name)) b.AppendHexAddress(unchecked((ulong)value));
        else b.AppendDecimal(value);
    }
}
