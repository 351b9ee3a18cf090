using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Periscope.Memory;

namespace Periscope.Replay;

/// <summary>A snapshot inside the recording's disk image: its name and the guest instruction count it was taken at.</summary>
public readonly record struct RecordingSnapshot(string Name, ulong Icount);

/// <summary>A file of the recording with its size and SHA-256, so that an altered or truncated file is detected.</summary>
public readonly record struct RecordedFile(string Name, long Bytes, string Sha256);

/// <summary>The guest kernel seen at the end of the recording, from Periscope's own discovery (null when not found).</summary>
public sealed record RecordedKernel(string Banner, string BuildId);

/// <summary>
/// manifest.json of a recording folder: how QEMU ran (exact command line and version), which snapshots exist at which
/// icount, where the run ended, the RAM hash there, and the checksum of every other file. Read back as hostile input:
/// size capped before reading, every field checked, file names confined to the folder.
/// </summary>
public sealed record RecordingManifest
{
    public const string FileName = "manifest.json";
    public const string FormatName = "periscope-recording/1";

    public required DateTimeOffset Created { get; init; }
    public required string QemuVersion { get; init; }
    public required IReadOnlyList<string> QemuCommandLine { get; init; }
    public required RecordingLayout Layout { get; init; }
    public required IReadOnlyList<RecordingSnapshot> Snapshots { get; init; }
    public required ulong EndIcount { get; init; }
    /// <summary>Host time the recording ran: bounds how long any replay of it may take.</summary>
    public required TimeSpan RecordedTime { get; init; }
    /// <summary>SHA-256 of the whole RAM file at <see cref="EndIcount"/>, for `recording verify --replay`.</summary>
    public required string EndRamSha256 { get; init; }
    public RecordedKernel? Kernel { get; init; }
    public required IReadOnlyList<RecordedFile> Files { get; init; }

    /// <summary>The snapshot to start a replay from to reach <paramref name="icount"/>: the latest one at or before it.</summary>
    public RecordingSnapshot NearestSnapshot(ulong icount)
    {
        RecordingSnapshot best = Snapshots[0];
        foreach (var s in Snapshots)
            if (s.Icount <= icount && s.Icount >= best.Icount) best = s;
        return best;
    }

    public byte[] ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            w.WriteString("created", Created.ToUniversalTime().ToString("O"));
            w.WriteString("qemuVersion", QemuVersion);
            w.WriteStartArray("qemuCommandLine");
            foreach (var a in QemuCommandLine) w.WriteStringValue(a);
            w.WriteEndArray();
            w.WriteStartObject("guest");
            w.WriteString("kernel", Layout.KernelFile);
            w.WriteString("initrd", Layout.InitrdFile);
            w.WriteString("append", Layout.Append);
            w.WriteNumber("memoryMiB", Layout.MemoryMiB);
            w.WriteString("cpu", Layout.Cpu);
            w.WriteString("icountShift", Layout.IcountShift);
            w.WriteEndObject();
            w.WriteStartArray("snapshots");
            foreach (var s in Snapshots)
            {
                w.WriteStartObject();
                w.WriteString("name", s.Name);
                w.WriteNumber("icount", s.Icount);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("endIcount", EndIcount);
            w.WriteNumber("recordedMilliseconds", (ulong)RecordedTime.TotalMilliseconds);
            w.WriteString("endRamSha256", EndRamSha256);
            if (Kernel is { } k)
            {
                w.WriteStartObject("kernelIdentity");
                w.WriteString("banner", k.Banner);
                w.WriteString("buildId", k.BuildId);
                w.WriteEndObject();
            }
            else w.WriteNull("kernelIdentity");
            w.WriteStartArray("files");
            foreach (var f in Files)
            {
                w.WriteStartObject();
                w.WriteString("name", f.Name);
                w.WriteNumber("bytes", f.Bytes);
                w.WriteString("sha256", f.Sha256);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>Reads and checks manifest.json of <paramref name="folder"/>; malformed content is a <see cref="RecordingFormatException"/>.</summary>
    public static RecordingManifest Load(string folder, IntrospectionLimits limits)
    {
        string path = Path.Combine(folder, FileName);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such recording folder");
        if (!File.Exists(path)) throw new RecordingFormatException(path, 0, "not a recording: manifest.json is missing");
        // Opened as a regular file and capped on the open handle: a FIFO or a file swapped after a stat is not read.
        byte[] bytes = Periscope.Memory.Files.DumpFile.ReadWholeIfAtMost(path, limits.MaxRecordingManifestBytes, out ulong length)
            ?? throw new RecordingFormatException(path, 0, $"manifest is {length} bytes, more than the limit of {limits.MaxRecordingManifestBytes}");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 16 }) as JsonObject
                   ?? throw new RecordingFormatException(path, 0, "manifest is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new RecordingFormatException(path, e.BytePositionInLine ?? 0, $"manifest is not valid JSON: {e.Message}");
        }
        var r = new FieldReader(path, root);
        if (r.String(root, "format") != FormatName) throw new RecordingFormatException(path, 0, $"unknown format (expected {FormatName})");
        var guest = r.Object(root, "guest");
        var layout = new RecordingLayout
        {
            KernelFile = r.FileName(guest, "kernel"),
            InitrdFile = r.FileName(guest, "initrd"),
            Append = r.String(guest, "append"),
            MemoryMiB = (int)r.Number(guest, "memoryMiB", 16, 1 << 20),
            Cpu = r.String(guest, "cpu"),
            IcountShift = r.IcountShift(guest, "icountShift"),
        };
        var snapshots = new List<RecordingSnapshot>();
        foreach (var node in r.Array(root, "snapshots", limits.MaxRecordingEntries))
        {
            var o = node as JsonObject ?? throw new RecordingFormatException(path, 0, "snapshots: an entry is not an object");
            string name = r.String(o, "name");
            if (name.Length is 0 or > 64 || !name.All(char.IsAsciiLetterOrDigit)) throw new RecordingFormatException(path, 0, $"snapshots: bad snapshot name '{name}'");
            snapshots.Add(new RecordingSnapshot(name, r.Number(o, "icount", 0, ulong.MaxValue)));
        }
        if (snapshots.Count == 0) throw new RecordingFormatException(path, 0, "snapshots: none listed (a replay needs at least the initial one)");
        var files = new List<RecordedFile>();
        foreach (var node in r.Array(root, "files", limits.MaxRecordingEntries))
        {
            var o = node as JsonObject ?? throw new RecordingFormatException(path, 0, "files: an entry is not an object");
            string sha = r.String(o, "sha256");
            if (sha.Length != 64 || !sha.All(char.IsAsciiHexDigitLower)) throw new RecordingFormatException(path, 0, $"files: bad sha256 '{sha}'");
            string fileName = r.FileName(o, "name");
            long cap = limits.MaxRecordingBytes(fileName);
            files.Add(new RecordedFile(fileName, (long)r.Number(o, "bytes", 0, (ulong)cap), sha));
        }
        RecordedKernel? kernel = root["kernelIdentity"] is JsonObject ko ? new RecordedKernel(r.String(ko, "banner"), r.String(ko, "buildId")) : null;
        var cmd = r.Array(root, "qemuCommandLine", limits.MaxRecordingEntries).Select(n => n?.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : throw new RecordingFormatException(path, 0, "qemuCommandLine: not a string")).ToList();
        string endRam = r.String(root, "endRamSha256");
        if (endRam.Length != 64) throw new RecordingFormatException(path, 0, "endRamSha256: not a SHA-256");
        if (!DateTimeOffset.TryParse(r.String(root, "created"), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind, out var created))
            throw new RecordingFormatException(path, 0, "created: not a date");
        foreach (string required in new[] { RecordingLayout.EventLogFile, RecordingLayout.DiskFile, layout.KernelFile, layout.InitrdFile })
            if (!files.Any(f => f.Name == required)) throw new RecordingFormatException(path, 0, $"files: {required} is not listed");
        return new RecordingManifest
        {
            Created = created,
            QemuVersion = r.String(root, "qemuVersion"),
            QemuCommandLine = cmd,
            Layout = layout,
            Snapshots = snapshots,
            EndIcount = r.Number(root, "endIcount", 0, ulong.MaxValue),
            // Up to a year: a bigger number would only stretch the replay timeout, which MaxReplaySeekSeconds caps anyway.
            RecordedTime = TimeSpan.FromMilliseconds(r.Number(root, "recordedMilliseconds", 1, 366UL * 24 * 3600 * 1000)),
            EndRamSha256 = endRam,
            Kernel = kernel,
            Files = files,
        };
    }

    /// <summary>Typed field access with one clear message per missing or mistyped field.</summary>
    private sealed class FieldReader(string path, JsonObject root)
    {
        public JsonObject Root => root;

        public string String(JsonObject o, string name) =>
            o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw Bad(name, "a string");

        public ulong Number(JsonObject o, string name, ulong min, ulong max)
        {
            if (o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out ulong n) && n >= min && n <= max) return n;
            throw Bad(name, $"a whole number in {min}..{max}");
        }

        public string IcountShift(JsonObject o, string name)
        {
            string value = String(o, name);
            return value == "auto" || (int.TryParse(value, out int n) && n is >= 0 and <= 10) ? value : throw Bad(name, "\"auto\" or 0..10");
        }

        public JsonObject Object(JsonObject o, string name) => o[name] as JsonObject ?? throw Bad(name, "an object");

        public JsonArray Array(JsonObject o, string name, int max)
        {
            var a = o[name] as JsonArray ?? throw Bad(name, "an array");
            if (a.Count > max) throw new RecordingFormatException(path, 0, $"{name}: {a.Count} entries, more than the limit of {max}");
            return a;
        }

        /// <summary>A plain file name inside the recording folder: no directories, so a manifest cannot point outside it.</summary>
        public string FileName(JsonObject o, string name)
        {
            string value = String(o, name);
            if (value.Length is 0 or > 255 || value != Path.GetFileName(value) || value is "." or ".." || value.Contains('\0'))
                throw new RecordingFormatException(path, 0, $"{name}: '{value}' is not a plain file name in the recording folder");
            return value;
        }

        private RecordingFormatException Bad(string name, string expected) => new(path, 0, $"field '{name}' is missing or not {expected}");
    }
}

/// <summary>The size caps of a recording's files, by role.</summary>
public static class RecordingLimits
{
    /// <summary>Largest size accepted for the recording file <paramref name="name"/> (listed or found on disk).</summary>
    public static long MaxRecordingBytes(this IntrospectionLimits limits, string name) => name switch
    {
        RecordingLayout.EventLogFile => limits.MaxRecordingEventLogBytes,
        RecordingLayout.DiskFile => limits.MaxRecordingSnapshotBytes,
        _ => limits.MaxRecordingFileBytes,
    };
}

/// <summary>How the recorded guest was configured; a replay must start QEMU the same way.</summary>
public sealed record RecordingLayout
{
    public const string EventLogFile = "events.rr";
    public const string DiskFile = "snapshots.qcow2";
    public const string ConsoleLogFile = "console.log";
    public const string DataLogFile = "data.log";

    public required string KernelFile { get; init; }
    public required string InitrdFile { get; init; }
    public required string Append { get; init; }
    public required int MemoryMiB { get; init; }
    public required string Cpu { get; init; }
    /// <summary>icount shift as QEMU takes it: "auto" (guest time follows the host while recording; the replay
    /// reproduces it from the log) or a fixed 0..10 (2^shift ns per instruction).</summary>
    public required string IcountShift { get; init; }
}

/// <summary>A recording folder whose content is malformed, altered or incomplete: one line naming the file and offset.</summary>
public sealed class RecordingFormatException(string path, long offset, string message)
    : IOException($"{path}: offset {offset}: {message}")
{
    public string FilePath { get; } = path;
}
