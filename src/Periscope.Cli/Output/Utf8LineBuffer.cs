using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Periscope.Cli.Output;

/// <summary>
/// Output lines built directly as UTF-8 bytes in one reused, growing buffer: numbers, addresses, JSON strings and
/// terminal-safe text appended without a string, a StringBuilder or a UTF-16 round trip per value. Written for the
/// trace's hot path (a million lines a second), where the general writers cost more than decoding the event.
/// Every append gives exactly the bytes the general path gives (<see cref="Utf8JsonWriter"/> with
/// <see cref="JavaScriptEncoder.Default"/>, <see cref="TerminalSafeWriter"/>, invariant number formats); the rare
/// inputs a fast path cannot be sure of go through the general writer itself.
/// </summary>
internal sealed class Utf8LineBuffer
{
    private static readonly JsonWriterOptions s_json = new() { Indented = false, Encoder = JavaScriptEncoder.Default };

    /// <summary>Characters JavaScriptEncoder.Default writes as themselves: printable ASCII except the HTML-sensitive
    /// and quoting ones it escapes (checked against the encoder for every ASCII character in the unit tests).</summary>
    private static readonly SearchValues<char> s_jsonPlain = SearchValues.Create(JsonPlainCharacters());

    private static ReadOnlySpan<byte> HexDigits => "0123456789abcdef"u8;

    private byte[] _bytes;
    private int _length;
    private ArrayBufferWriter<byte>? _scratch;
    private Utf8JsonWriter? _scratchJson;

    public Utf8LineBuffer(int capacity) => _bytes = new byte[capacity];

    public int Length => _length;
    public ReadOnlySpan<byte> WrittenSpan => _bytes.AsSpan(0, _length);
    public void Clear() => _length = 0;

    /// <summary>Room for <paramref name="count"/> more bytes; grows (doubling) only when a line outgrows every earlier one.</summary>
    public Span<byte> GetSpan(int count)
    {
        if (_bytes.Length - _length < count)
            Array.Resize(ref _bytes, Math.Max(_bytes.Length * 2, _length + count));
        return _bytes.AsSpan(_length);
    }

    public void Advance(int count) => _length += count;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        _length += bytes.Length;
    }

    public void Append(byte b)
    {
        GetSpan(1)[0] = b;
        _length++;
    }

    public void AppendDecimal(long value)
    {
        Utf8Formatter.TryFormat(value, GetSpan(20), out int n);
        _length += n;
    }

    public void AppendDecimal(ulong value)
    {
        Utf8Formatter.TryFormat(value, GetSpan(20), out int n);
        _length += n;
    }

    /// <summary>A decimal right-aligned in <paramref name="width"/> characters, as <c>{value,width}</c> formats it.</summary>
    public void AppendDecimalPadded(long value, int width)
    {
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, digits, out int n);
        if (n < width) { GetSpan(width - n)[..(width - n)].Fill((byte)' '); _length += width - n; }
        Append(digits[..n]);
    }

    /// <summary>"0x" and the lowercase hex digits, as <c>$"0x{value:x}"</c> writes it.</summary>
    public void AppendHexAddress(ulong value)
    {
        int digits = value == 0 ? 1 : (67 - BitOperations.LeadingZeroCount(value)) / 4;
        var span = GetSpan(2 + digits);
        span[0] = (byte)'0';
        span[1] = (byte)'x';
        for (int i = 1 + digits; i >= 2; i--, value >>= 4) span[i] = HexDigits[(int)(value & 0xf)];
        _length += 2 + digits;
    }

    /// <summary>A JSON string value (quotes included) escaped as <see cref="Utf8JsonWriter"/> with
    /// <see cref="JavaScriptEncoder.Default"/> escapes it, so the bytes are always ASCII.</summary>
    public void AppendJsonString(string value)
    {
        var chars = value.AsSpan();
        if (chars.IndexOfAnyExcept(s_jsonPlain) >= 0)
        {
            var scratch = Scratch();
            scratch.WriteStringValue(chars);
            scratch.Flush();
            Append(_scratch!.WrittenSpan);
            return;
        }
        var span = GetSpan(chars.Length + 2);
        span[0] = (byte)'"';
        Ascii.FromUtf16(chars, span[1..], out int written);
        span[1 + written] = (byte)'"';
        _length += written + 2;
    }

    /// <summary>
    /// A JSON number for a time in seconds rounded to microseconds, exactly as <c>WriteNumberValue(Math.Round(seconds, 6))</c>
    /// writes it (the shortest text that reads back as that double), from integer arithmetic: for a double that is the
    /// nearest one to k/10^6 with k below 10^15 that text is k/10^6 in plain decimal without trailing zeros. Anything
    /// else (below 0.0001 s, negative, huge) is written by the JSON writer itself.
    /// </summary>
    public void AppendJsonSeconds(double seconds)
    {
        double rounded = Math.Round(seconds, 6);
        double scaled = Math.Round(rounded * 1e6);
        if (scaled is >= 100 and < 1e15 && scaled / 1e6 == rounded)
        {
            long micros = (long)scaled;
            AppendDecimal(micros / 1_000_000);
            long fraction = micros % 1_000_000;
            if (fraction == 0) return;
            int digits = 6;
            while (fraction % 10 == 0) { fraction /= 10; digits--; }
            var span = GetSpan(1 + digits);
            span[0] = (byte)'.';
            for (int i = digits; i >= 1; i--, fraction /= 10) span[i] = (byte)('0' + fraction % 10);
            _length += 1 + digits;
            return;
        }
        var scratch = Scratch();
        scratch.WriteNumberValue(rounded);
        scratch.Flush();
        Append(_scratch!.WrittenSpan);
    }

    /// <summary>
    /// A time in seconds as <c>{seconds,10:F6}</c> writes it, where seconds = <paramref name="ticks"/> /
    /// (double)<paramref name="frequency"/>: rounded to microseconds in integer arithmetic, except within a hair of a
    /// half microsecond (where the double's own rounding decides) and for negative times, which the double formatter writes.
    /// </summary>
    public void AppendSecondsF6Padded(long ticks, long frequency)
    {
        if (ticks >= 0 && frequency > 0)
        {
            Int128 scaled = (Int128)ticks * 1_000_000;
            long micros = (long)(scaled / frequency);
            long remainder = (long)(scaled % frequency);
            // The double ticks/frequency is off by up to one part in 2^52; far from the midpoint both round alike.
            double margin = (micros + 1.0) * frequency / (double)(1L << 40) + 2;
            if (Math.Abs(2.0 * remainder - frequency) > margin && micros < 1_000_000_000_000_000)
            {
                if (2 * (Int128)remainder > frequency) micros++;
                Span<byte> text = stackalloc byte[32];
                Utf8Formatter.TryFormat(micros / 1_000_000, text, out int n);
                text[n++] = (byte)'.';
                long fraction = micros % 1_000_000;
                for (int i = n + 5; i >= n; i--, fraction /= 10) text[i] = (byte)('0' + fraction % 10);
                n += 6;
                if (n < 10) { GetSpan(10 - n)[..(10 - n)].Fill((byte)' '); _length += 10 - n; }
                Append(text[..n]);
                return;
            }
        }
        Span<char> chars = stackalloc char[64];
        double seconds = ticks / (double)frequency;
        if (!seconds.TryFormat(chars, out int written, "F6", CultureInfo.InvariantCulture))
        {
            AppendTerminalText(seconds.ToString("F6", CultureInfo.InvariantCulture).PadLeft(10), keepLayout: true);
            return;
        }
        if (written < 10) { GetSpan(10 - written)[..(10 - written)].Fill((byte)' '); _length += 10 - written; }
        AppendTerminalText(chars[..written], keepLayout: true);
    }

    /// <summary>
    /// Text for the terminal, as UTF-8: the characters <see cref="TerminalText"/> calls unsafe escaped as
    /// <see cref="TerminalSafeWriter"/> does (<paramref name="keepLayout"/>: newline and tab pass, as in a stream) or as
    /// <see cref="TerminalText.Escape"/> does for a field (they are escaped too).
    /// </summary>
    public void AppendTerminalText(ReadOnlySpan<char> text, bool keepLayout)
    {
        while (!text.IsEmpty)
        {
            int at = TerminalText.IndexOfUnsafe(text, keepLayout);
            var safe = at < 0 ? text : text[..at];
            if (!safe.IsEmpty)
            {
                if (Ascii.FromUtf16(safe, GetSpan(safe.Length), out int ascii) == OperationStatus.Done) _length += ascii;
                else _length += Encoding.UTF8.GetBytes(safe, GetSpan(Encoding.UTF8.GetMaxByteCount(safe.Length)));
            }
            if (at < 0) return;
            int c = text[at];
            var span = GetSpan(6);
            span[0] = (byte)'\\';
            if (c < 0x100)
            {
                span[1] = (byte)'x';
                span[2] = HexDigits[c >> 4];
                span[3] = HexDigits[c & 0xf];
                _length += 4;
            }
            else
            {
                span[1] = (byte)'u';
                for (int i = 0; i < 4; i++) span[2 + i] = HexDigits[(c >> (12 - 4 * i)) & 0xf];
                _length += 6;
            }
            text = text[(at + 1)..];
        }
    }

    private Utf8JsonWriter Scratch()
    {
        _scratch ??= new ArrayBufferWriter<byte>(256);
        _scratch.ResetWrittenCount();
        if (_scratchJson is null) _scratchJson = new Utf8JsonWriter(_scratch, s_json);
        else _scratchJson.Reset(_scratch);
        return _scratchJson;
    }

    private static string JsonPlainCharacters()
    {
        var chars = new List<char>();
        for (char c = ' '; c <= '~'; c++)
            if (c is not ('"' or '\\' or '<' or '>' or '&' or '\'' or '+' or '`')) chars.Add(c);
        return new string([.. chars]);
    }
}
