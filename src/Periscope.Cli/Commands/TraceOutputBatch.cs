using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Periscope.Cli.Commands;

/// <summary>
/// Output of a trace, written in batches: lines are collected as UTF-8 in one reused buffer (JSON straight from a reused
/// <see cref="Utf8JsonWriter"/>) and handed to the command's writer in one call per batch. The process's stdout flushes
/// on every write, so one write per line cost more than decoding the line (measured: see BENCHMARKS.md, "backlog").
/// The writer given is the command's terminal-safe output: every batch still passes its escaping.
/// </summary>
internal sealed class TraceOutputBatch : IDisposable
{
    /// <summary>A batch this large is written at once, whatever the reader's batch boundary.</summary>
    private const int FlushBytes = 256 * 1024;

    private static readonly JsonWriterOptions s_lineJson = new() { Indented = false, Encoder = JavaScriptEncoder.Default, SkipValidation = false };

    private readonly TextWriter _output;
    private readonly byte[] _newLine;
    private readonly ArrayBufferWriter<byte> _bytes = new(FlushBytes + 64 * 1024);
    private readonly Utf8JsonWriter _json;
    private char[] _chars = new char[FlushBytes + 64 * 1024];

    public TraceOutputBatch(TextWriter output)
    {
        _output = output;
        _newLine = Encoding.UTF8.GetBytes(output.NewLine);
        _json = new Utf8JsonWriter(_bytes, s_lineJson);
    }

    /// <summary>Starts one JSON line (an object); finish it with <see cref="EndJsonLine"/>.</summary>
    public Utf8JsonWriter BeginJsonLine()
    {
        _json.Reset(_bytes);
        _json.WriteStartObject();
        return _json;
    }

    public void EndJsonLine()
    {
        _json.WriteEndObject();
        _json.Flush();
        EndLine();
    }

    /// <summary>One line of text (already escaped where the guest controls it).</summary>
    public void Line(string text)
    {
        var span = _bytes.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        _bytes.Advance(Encoding.UTF8.GetBytes(text, span));
        EndLine();
    }

    /// <summary>One line of text from a builder (already escaped where the guest controls it).</summary>
    public void Line(StringBuilder text)
    {
        foreach (var chunk in text.GetChunks())
        {
            var span = _bytes.GetSpan(Encoding.UTF8.GetMaxByteCount(chunk.Length));
            _bytes.Advance(Encoding.UTF8.GetBytes(chunk.Span, span));
        }
        EndLine();
    }

    private void EndLine()
    {
        _newLine.CopyTo(_bytes.GetSpan(_newLine.Length));
        _bytes.Advance(_newLine.Length);
        if (_bytes.WrittenCount >= FlushBytes) Flush();
    }

    /// <summary>Writes what was collected to the output, in one call.</summary>
    public void Flush()
    {
        if (_bytes.WrittenCount == 0) return;
        var bytes = _bytes.WrittenSpan;
        int need = Encoding.UTF8.GetMaxCharCount(bytes.Length);
        if (_chars.Length < need) _chars = new char[need];
        int n = Encoding.UTF8.GetChars(bytes, _chars);
        _output.Write(_chars.AsSpan(0, n));
        _output.Flush();
        _bytes.ResetWrittenCount();
    }

    public void Dispose()
    {
        Flush();
        _json.Dispose();
    }
}
