using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Periscope.Cli.Output;

namespace Periscope.Cli.Commands;

/// <summary>
/// Output of a trace, written in batches: lines are collected as UTF-8 in one reused buffer (syscall lines formatted
/// straight into it by <see cref="TraceSyscallLines"/>, other JSON from a reused <see cref="Utf8JsonWriter"/>) and
/// written once per batch. Every line is terminal-safe when it enters the buffer (JSON is ASCII: the encoder escapes
/// every control and non-ASCII character; text passes <see cref="Utf8LineBuffer.AppendTerminalText"/>), so when the
/// output is the process's UTF-8 stdout the bytes go to the stdout stream as they are, with no UTF-8 → UTF-16 →
/// escaping → UTF-8 round trip; any other writer (tests, a non-UTF-8 console) gets the text through its own escaping,
/// which then changes nothing. One write per line cost more than decoding the line (BENCHMARKS.md, "backlog").
/// </summary>
internal sealed class TraceOutputBatch : IDisposable
{
    /// <summary>A batch this large is written at once, whatever the reader's batch boundary.</summary>
    private const int FlushBytes = 256 * 1024;

    private static readonly JsonWriterOptions s_lineJson = new() { Indented = false, Encoder = JavaScriptEncoder.Default, SkipValidation = false };

    private readonly TextWriter _output;
    private readonly Stream? _stdout;
    private readonly byte[] _newLine;
    private readonly Utf8LineBuffer _bytes = new(FlushBytes + 64 * 1024);
    private readonly System.Buffers.ArrayBufferWriter<byte> _jsonBytes = new(4096);
    private readonly Utf8JsonWriter _json;
    private char[] _chars = [];

    /// <param name="output">The command's (terminal-safe) output.</param>
    /// <param name="stdout">The stdout stream behind <paramref name="output"/>, when the bytes may go there directly
    /// (see <see cref="ForCommandOutput"/>); null: everything goes through <paramref name="output"/>.</param>
    public TraceOutputBatch(TextWriter output, Stream? stdout = null)
    {
        _output = output;
        _stdout = stdout;
        _newLine = Encoding.UTF8.GetBytes(output.NewLine);
        _json = new Utf8JsonWriter(_jsonBytes, s_lineJson);
    }

    /// <summary>A batch over the command's output that writes to the stdout stream itself when that output is the
    /// process's stdout and its encoding is UTF-8 (the bytes are then what the writer would have produced).</summary>
    public static TraceOutputBatch ForCommandOutput(TextWriter output)
    {
        bool direct = output is TerminalSafeWriter { WrapsConsoleOut: true } && Console.OutputEncoding.CodePage == Encoding.UTF8.CodePage
            && Console.OutputEncoding.GetPreamble().Length == 0;
        return new TraceOutputBatch(output, direct ? Console.OpenStandardOutput() : null);
    }

    /// <summary>The buffer the current line is appended to; finish the line with <see cref="EndLine"/>.</summary>
    public Utf8LineBuffer Bytes => _bytes;

    /// <summary>Starts one JSON line (an object); finish it with <see cref="EndJsonLine"/>.</summary>
    public Utf8JsonWriter BeginJsonLine()
    {
        _jsonBytes.ResetWrittenCount();
        _json.Reset(_jsonBytes);
        _json.WriteStartObject();
        return _json;
    }

    public void EndJsonLine()
    {
        _json.WriteEndObject();
        _json.Flush();
        _bytes.Append(_jsonBytes.WrittenSpan);
        EndLine();
    }

    /// <summary>One line of text (fields the guest controls already escaped; the rest is made terminal-safe here).</summary>
    public void Line(string text)
    {
        _bytes.AppendTerminalText(text, keepLayout: true);
        EndLine();
    }

    /// <summary>Ends the line appended to <see cref="Bytes"/>; writes the batch once it is large.</summary>
    public void EndLine()
    {
        _bytes.Append(_newLine);
        if (_bytes.Length >= FlushBytes) Flush();
    }

    /// <summary>Writes what was collected to the output, in one call.</summary>
    public void Flush()
    {
        if (_bytes.Length == 0) return;
        var bytes = _bytes.WrittenSpan;
        if (_stdout is not null)
        {
            _output.Flush();   // whatever the command printed through the writer comes first
            _stdout.Write(bytes);
            _stdout.Flush();
        }
        else
        {
            int need = Encoding.UTF8.GetMaxCharCount(bytes.Length);
            if (_chars.Length < need) _chars = new char[need];
            int n = Encoding.UTF8.GetChars(bytes, _chars);
            _output.Write(_chars.AsSpan(0, n));
            _output.Flush();
        }
        _bytes.Clear();
    }

    public void Dispose()
    {
        Flush();
        _json.Dispose();
        _stdout?.Dispose();
    }
}
