using System.Text;

namespace Periscope.Cli.Output;

/// <summary>
/// The one place human output is made safe: wraps stdout and stderr (and any injected writer) so that nothing a guest
/// controls reaches the terminal as a control sequence, whichever command or message printed it. Newline and tab pass
/// through; every other character <see cref="TerminalText"/> calls unsafe is escaped. JSON passes unchanged in meaning
/// (see <see cref="TerminalText"/>). Never disposes the writer it wraps.
/// </summary>
public sealed class TerminalSafeWriter : TextWriter
{
    private readonly TextWriter _inner;

    private TerminalSafeWriter(TextWriter inner, bool isTerminal) : base(inner.FormatProvider)
    {
        _inner = inner;
        IsTerminal = isTerminal;
        CoreNewLine = inner.NewLine.ToCharArray();
    }

    /// <summary>Wraps <paramref name="output"/> unless it is already wrapped. Only the process's own stdout, not
    /// redirected, counts as a terminal.</summary>
    public static TerminalSafeWriter Wrap(TextWriter output) => output as TerminalSafeWriter
        ?? new TerminalSafeWriter(output, ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected);

    /// <summary>True when the wrapped writer is an interactive terminal. Output is the same either way since tables
    /// stopped following the window width (TableWriter); kept for callers that must know.</summary>
    public bool IsTerminal { get; }

    /// <summary>True when this wraps the process's own stdout (<see cref="Console.Out"/>), whose bytes a caller that
    /// already made its output terminal-safe (and UTF-8) may write to the stdout stream directly.</summary>
    public bool WrapsConsoleOut => ReferenceEquals(_inner, Console.Out);

    public override Encoding Encoding => _inner.Encoding;

    public override void Write(char value) => TerminalText.Write(_inner, [value], keepLayout: true);
    public override void Write(char[] buffer, int index, int count) => Write(buffer.AsSpan(index, count));
    public override void Write(ReadOnlySpan<char> buffer) => TerminalText.Write(_inner, buffer, keepLayout: true);
    public override void Write(string? value) => Write(value.AsSpan());
    public override void WriteLine(string? value)
    {
        Write(value.AsSpan());
        Write(CoreNewLine);
    }

    public override void Flush() => _inner.Flush();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _inner.Flush();
        base.Dispose(disposing);
    }
}
