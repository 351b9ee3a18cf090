using System.Text.Encodings.Web;
using System.Text.Json;

namespace Periscope.Cli.Output;

/// <summary>Machine output: JSON written with Utf8JsonWriter (no reflection, so the CLI stays AOT-friendly).</summary>
public static class Json
{
    public static void Write(TextWriter output, Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            body(w);
        output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>A JSON array with one object per item.</summary>
    public static void WriteArray<T>(TextWriter output, IEnumerable<T> items, Action<Utf8JsonWriter, T> fields) => Write(output, w =>
    {
        w.WriteStartArray();
        foreach (var item in items)
        {
            w.WriteStartObject();
            fields(w, item);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });

    /// <summary>Addresses as "0x..." strings: JSON numbers lose precision above 2^53.</summary>
    public static void Address(this Utf8JsonWriter w, string name, ulong value) => w.WriteString(name, $"0x{value:x}");

    public static void Address(this Utf8JsonWriter w, string name, ulong? value)
    {
        if (value is { } v) w.WriteString(name, $"0x{v:x}");
        else w.WriteNull(name);
    }
}
