using Periscope.Memory;

namespace Periscope.Replay;

/// <summary>A recording folder opened for replay: its checked manifest.</summary>
public sealed class Recording
{
    private Recording(string folder, RecordingManifest manifest)
    {
        Folder = folder;
        Manifest = manifest;
    }

    public string Folder { get; }
    public RecordingManifest Manifest { get; }

    /// <summary>Opens <paramref name="folder"/> and checks its manifest; file hashes are checked by <see cref="RecordingVerifier"/>.</summary>
    public static Recording Open(string folder, IntrospectionLimits? limits = null)
    {
        string full = Path.GetFullPath(folder);
        var manifest = RecordingManifest.Load(full, limits ?? IntrospectionLimits.Default);
        foreach (var f in manifest.Files)
        {
            string path = Path.Combine(full, f.Name);
            if (!File.Exists(path)) throw new RecordingFormatException(path, 0, "listed in the manifest but missing");
            // Checked before anything hashes or copies it: the manifest's own size field is capped when read.
            long size = new FileInfo(path).Length;
            long cap = (limits ?? IntrospectionLimits.Default).MaxRecordingBytes(f.Name);
            if (size > cap) throw new RecordingFormatException(path, 0, $"{size} bytes, more than the limit of {cap}");
        }
        return new Recording(full, manifest);
    }

    /// <summary>Resolves "end", a decimal icount, or a named snapshot.</summary>
    public ulong ParsePoint(string text)
    {
        if (text == "end") return Manifest.EndIcount;
        if (ulong.TryParse(text, out ulong n)) return n;
        foreach (var s in Manifest.Snapshots) if (s.Name == text) return s.Icount;
        throw new ArgumentException($"'{text}' is neither an icount, \"end\", nor a snapshot of this recording");
    }
}
