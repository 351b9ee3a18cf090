using Spectre.Console;

namespace Periscope.Cli.Output;

/// <summary>Human output: Spectre.Console tables written to the injected writer, never wrapped when redirected.</summary>
public static class TableWriter
{
    /// <summary>Only the process's own, non-redirected stdout (wrapped by CliApp) is a terminal; any injected writer is not.</summary>
    private static bool IsTerminal(TextWriter output) => output is TerminalSafeWriter { IsTerminal: true };

    /// <summary>
    /// A Spectre console over <paramref name="output"/>. ANSI stays off even on a terminal: no output uses colour, and
    /// Spectre's own escape sequences would be escaped by the <see cref="TerminalSafeWriter"/> it writes through.
    /// </summary>
    public static IAnsiConsole Console(TextWriter output)
    {
        bool redirected = !IsTerminal(output);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = redirected ? 400 : Math.Max(System.Console.WindowWidth, 80);
        return console;
    }

    /// <summary>A borderless, ps-like table: easy to read and to grep.</summary>
    public static Table Plain(params string[] columns)
    {
        var table = new Table().Border(TableBorder.None).HideRowSeparators();
        foreach (var c in columns)
        {
            var column = new TableColumn(c) { NoWrap = true, Padding = new Padding(0, 0, 2, 0) };
            table.AddColumn(column);
        }
        return table;
    }

    /// <summary>Renders off-screen, then drops the padding Spectre adds at line ends so output greps cleanly.</summary>
    public static void Write(TextWriter output, Table table)
    {
        if (IsTerminal(output)) { Console(output).Write(table); return; }
        var buffer = new StringWriter();
        Console(buffer).Write(table);
        foreach (var line in buffer.ToString().Split('\n'))
        {
            string trimmed = line.TrimEnd();
            if (trimmed.Length > 0) output.WriteLine(trimmed);
        }
    }

    public static string Hex(ulong v) => $"0x{v:x}";
    /// <summary>A table cell from text the guest controls: controls escaped (one line), then markup escaped.</summary>
    public static string Esc(string s) => Markup.Escape(TerminalText.Escape(s));
}
