using System.Buffers;
using System.Globalization;

namespace Periscope.Cli.Output;

/// <summary>
/// Makes text a guest controls (comms, paths, module and symbol names, findings, diagnostics) harmless on the
/// operator's terminal. A hostile comm such as <c>ESC]0;…BEL</c> or <c>ESC[2J</c> would otherwise retitle or clear the
/// terminal, or, with bidi overrides, make one name read as another (Trojan Source). Escaped are: C0 controls, DEL,
/// C1 controls (U+0080–U+009F: 8-bit CSI/OSC on some terminals) and the Unicode bidi embedding, override, isolate and
/// mark characters. Escapes are <c>\xHH</c> below U+0100 and <c>\uHHHH</c> above; the latter is also a JSON escape
/// with the same meaning, so JSON text (whose serializer already escapes every control) stays valid when it passes
/// through <see cref="TerminalSafeWriter"/>. Backslashes are left alone: output then matches /proc byte for byte for
/// every name without controls, and a fake escape sequence typed by the guest is only text.
/// </summary>
public static class TerminalText
{
    private static readonly SearchValues<char> s_unsafeInField = SearchValues.Create(UnsafeCharacters(keepLayout: false));
    private static readonly SearchValues<char> s_unsafeInStream = SearchValues.Create(UnsafeCharacters(keepLayout: true));

    /// <summary>
    /// Escapes a single-line field: every unsafe character including newline and tab, so a guest string can neither
    /// drive the terminal nor forge extra lines or columns. Returns <paramref name="text"/> itself when nothing needs escaping.
    /// </summary>
    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.AsSpan().IndexOfAny(s_unsafeInField) < 0) return text;
        var sb = new System.Text.StringBuilder(text.Length + 16);
        var writer = new StringWriter(sb, CultureInfo.InvariantCulture);
        Write(writer, text, keepLayout: false);
        return sb.ToString();
    }

    /// <summary>Index of the first character <see cref="Write"/> would escape, or -1.</summary>
    public static int IndexOfUnsafe(ReadOnlySpan<char> text, bool keepLayout) => text.IndexOfAny(keepLayout ? s_unsafeInStream : s_unsafeInField);

    /// <summary>True if <paramref name="c"/> would be escaped in a field (<see cref="Escape"/>).</summary>
    public static bool IsUnsafe(char c) => s_unsafeInField.Contains(c);

    /// <summary>
    /// Writes <paramref name="text"/> to <paramref name="output"/>, escaping unsafe characters; with
    /// <paramref name="keepLayout"/>, newline and tab pass through (the output's own line structure).
    /// </summary>
    public static void Write(TextWriter output, ReadOnlySpan<char> text, bool keepLayout)
    {
        var unsafeChars = keepLayout ? s_unsafeInStream : s_unsafeInField;
        Span<char> escape = stackalloc char[6];
        escape[0] = '\\';
        while (!text.IsEmpty)
        {
            int at = text.IndexOfAny(unsafeChars);
            if (at < 0) { output.Write(text); return; }
            if (at > 0) output.Write(text[..at]);
            char c = text[at];
            int length;
            if (c < 0x100)
            {
                escape[1] = 'x';
                ((int)c).TryFormat(escape[2..], out int digits, "x2", CultureInfo.InvariantCulture);
                length = 2 + digits;
            }
            else
            {
                escape[1] = 'u';
                ((int)c).TryFormat(escape[2..], out int digits, "x4", CultureInfo.InvariantCulture);
                length = 2 + digits;
            }
            output.Write(escape[..length]);
            text = text[(at + 1)..];
        }
    }

    private static string UnsafeCharacters(bool keepLayout)
    {
        var chars = new List<char>();
        for (char c = '\0'; c < ' '; c++)
            if (!keepLayout || (c != '\n' && c != '\t')) chars.Add(c);
        chars.Add('\u007f');
        for (char c = '\u0080'; c <= '\u009f'; c++) chars.Add(c);
        chars.AddRange(BidiControls);
        return new string(chars.ToArray());
    }

    /// <summary>ALM, LRM, RLM; LRE, RLE, PDF, LRO, RLO; LRI, RLI, FSI, PDI (Unicode TR9, "explicit directional formatting").</summary>
    public static ReadOnlySpan<char> BidiControls => "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069";
}
