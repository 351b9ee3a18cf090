using System.Text.Json;
using Periscope.Cli.Output;

namespace Periscope.UnitTests.Cli;

/// <summary>Guest-controlled text cannot drive the operator's terminal: every control class is escaped, visibly.</summary>
public class TerminalTextTests
{
    public static TheoryData<string, string> Escapes => new()
    {
        { "\u001b]0;owned\u0007", "\\x1b]0;owned\\x07" },     // OSC: set the window title, ended by BEL
        { "\u001b[2J", "\\x1b[2J" },                          // CSI: clear the screen
        { "\0a\u0001\u001f", "\\x00a\\x01\\x1f" },             // C0 edges
        { "a\rb", "a\\x0db" },                                // carriage return: overwrite the line
        { "a\nb\tc", "a\\x0ab\\x09c" },                       // in a field, a newline would forge a row
        { "\u007f", "\\x7f" },                                // DEL
        { "\u0080x\u009b2J\u009f", "\\x80x\\x9b2J\\x9f" },    // C1 edges, and 8-bit CSI
        { "evil\u202egnp.exe", "evil\\u202egnp.exe" },        // RLO: text that reads as something else
        { "\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d" },
        { "\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069" },
        { "\u061c\u200e\u200f", "\\u061c\\u200e\\u200f" },
    };

    [Theory]
    [MemberData(nameof(Escapes))]
    public void Every_control_class_is_escaped(string raw, string expected) => Assert.Equal(expected, TerminalText.Escape(raw));

    [Theory]
    [InlineData("/usr/lib/x86_64-linux-gnu/libc.so.6")]
    [InlineData("kworker/0:1H-kblockd")]
    [InlineData("ünïcode 名前 [x] \\x1b")]                     // printable Unicode, markup brackets and a literal backslash stay
    [InlineData(" ~\u00a0\u00ff\u2010")]                       // just outside the escaped ranges
    public void Safe_text_is_returned_unchanged(string text) => Assert.Same(text, TerminalText.Escape(text));

    [Fact]
    public void Every_char_below_0x20_and_from_0x7f_to_0x9f_is_unsafe_and_nothing_else_in_latin1()
    {
        for (char c = '\0'; c < '\u0100'; c++)
            Assert.True(TerminalText.IsUnsafe(c) == (c < ' ' || c is >= '\u007f' and <= '\u009f'), $"U+{(int)c:x4}");
    }

    [Fact]
    public void The_writer_keeps_line_structure_and_escapes_the_rest()
    {
        var inner = new StringWriter();
        var writer = TerminalSafeWriter.Wrap(inner);
        writer.WriteLine("PID\tCOMM");
        writer.Write('\u001b');
        writer.Write("[2J\u0007".ToCharArray(), 0, 4);
        writer.Write("\u202e\u0085\r".AsSpan());
        writer.WriteLine();
        Assert.Equal("PID\tCOMM\n\\x1b[2J\\x07\\u202e\\x85\\x0d\n", inner.ToString());
        Assert.Same(writer, TerminalSafeWriter.Wrap(writer));
        Assert.False(writer.IsTerminal);
    }

    [Fact]
    public void Json_through_the_writer_stays_valid_and_carries_the_real_text()
    {
        string hostile = "\u001b]0;x\u0007\u001b[2J\u007f\u009b\u202e\u2066\n";
        var inner = new StringWriter();
        Json.Write(TerminalSafeWriter.Wrap(inner), w =>
        {
            w.WriteStartObject();
            w.WriteString("comm", hostile);
            w.WriteEndObject();
        });
        string text = inner.ToString();
        Assert.DoesNotContain(text, c => TerminalText.IsUnsafe(c) && c is not '\n');
        using var doc = JsonDocument.Parse(text);
        Assert.Equal(hostile, doc.RootElement.GetProperty("comm").GetString());
    }

    [Fact]
    public void Table_cells_escape_controls_and_keep_brackets_literal()
    {
        var table = TableWriter.Plain("COMM");
        table.AddRow(TableWriter.Esc("[red]\u001b[2J\n"));
        var output = new StringWriter();
        TableWriter.Write(TerminalSafeWriter.Wrap(output), table);
        Assert.Equal("COMM\n[red]\\x1b[2J\\x0a\n", output.ToString());
    }
}
