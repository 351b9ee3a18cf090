using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Events;

namespace Periscope.UnitTests.Cli;

/// <summary>
/// The trace's syscall lines as the general writers produce them (Utf8JsonWriter with the default encoder, a
/// StringBuilder with composite formats): the product's byte-level formatter (TraceSyscallLines) must match these
/// byte for byte. This is the formatting `trace syscalls` used before it wrote bytes itself.
/// </summary>
internal static class ReferenceTraceLines
{
    private static readonly JsonWriterOptions s_options = new() { Indented = false, Encoder = JavaScriptEncoder.Default };

    private static string Write(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, s_options)) body(w);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static string JsonString(string s) => Write(w => w.WriteStringValue(s));

    public static string JsonNumber(double d) => Write(w => w.WriteNumberValue(d));

    private static void Address(Utf8JsonWriter w, string name, ulong value) => w.WriteString(name, $"0x{value:x}");

    public static string SyscallJson(SyscallEvent e, double seconds) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteNumber("time", Math.Round(seconds, 6));
        w.WriteNumber("seq", e.Seq);
        w.WriteNumber("vcpu", e.Vcpu);
        if (e.Task is not { } t) w.WriteNull("pid");
        else
        {
            w.WriteNumber("pid", t.Tgid);
            w.WriteNumber("tid", t.Pid);
            w.WriteNumber("ppid", t.ParentTgid);
            w.WriteString("comm", t.Comm);
            if (t.Uid is { } uid) w.WriteNumber("uid", uid);
            Address(w, "task", t.Address);
        }
        w.WriteNumber("nr", e.Number);
        if (e.Name is { } n) w.WriteString("name", n); else w.WriteNull("name");
        w.WriteStartArray("args");
        foreach (var a in e.Arguments)
        {
            w.WriteStartObject();
            w.WriteString("kind", a.Kind.ToString());
            Address(w, "raw", a.Raw);
            w.WriteString("text", a.Text);
            if (a.Path is { } p) w.WriteString("path", p);
            if (a.Argv is { } argv)
            {
                w.WriteStartArray("argv");
                foreach (var s in argv) w.WriteStringValue(s);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (e.Return is { } ret) w.WriteNumber("ret", ret); else w.WriteNull("ret");
        w.WriteString("retText", e.ReturnText);
        w.WriteEndObject();
    });

    public static string SyscallLine(SyscallEvent e, double seconds)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        sb.Append(c, $"{seconds,10:F6} cpu{e.Vcpu} ");
        if (e.Task is not { } t) sb.Append("[pid     ?]");
        else
        {
            sb.Append(c, $"[pid {t.Tgid,5}");
            if (t.Pid != t.Tgid) sb.Append('/').Append(t.Pid);
            sb.Append(' ').Append(TerminalText.Escape(t.Comm)).Append(']');
        }
        sb.Append(' ');
        if (e.Name is { } name) sb.Append(name); else sb.Append("syscall_").Append(e.Number);
        sb.Append('(');
        for (int i = 0; i < e.Arguments.Count; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(TerminalText.Escape(e.Arguments[i].Text));
        }
        return sb.Append(") = ").Append(e.ReturnText).ToString();
    }
}
