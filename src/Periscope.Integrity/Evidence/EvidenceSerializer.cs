using System.IO.Compression;
using System.Text;
using Periscope.Memory;

namespace Periscope.Integrity.Evidence;

/// <summary>Stored evidence that is not what this Periscope wrote: truncated, oversized or inconsistent.</summary>
public sealed class EvidenceFormatException(string message) : Exception(message);

/// <summary>
/// Evidence as one Brotli-compressed blob per baseline: a magic and version, then each list as a count and its
/// entries. Reading treats the blob as hostile: the decompressed size is capped, every count is checked against the
/// bytes that remain before anything is allocated, and any inconsistency is one <see cref="EvidenceFormatException"/>.
/// </summary>
public static class EvidenceSerializer
{
    private const uint Magic = 0x56455350; // "PSEV"
    private const int Version = 1;

    public static byte[] Serialize(EvidenceSnapshot e)
    {
        using var raw = new MemoryStream();
        using (var w = new BinaryWriter(raw, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(Version);
            w.Write(e.KernelTextStart);
            w.Write(e.KernelTextEnd);
            List(w, e.Modules, m => { w.Write(m.Address); w.Write(m.Name); w.Write(m.Base); w.Write(m.Size); w.Write(m.TextSize); w.Write(m.Hidden); });
            List(w, e.Symbols, s => { w.Write(s.Address); w.Write(s.Size); w.Write(s.Name); w.Write(s.Module); });
            List(w, e.JumpEntries, j => { w.Write(j.Code); w.Write(j.Target); });
            List(w, e.StaticCallSites, w.Write);
            List(w, e.FtraceSites, w.Write);
            List(w, e.FtraceOps, o => { w.Write(o.Address); w.Write(o.Func); w.Write(o.Trampoline); w.Write(o.TrampolineSize); });
            List(w, e.FtraceEntryCode, r => { w.Write(r.Name); w.Write(r.Start); w.Write(r.End); });
            List(w, e.FtracePatchSites, p => { w.Write(p.Address); w.Write(p.Name); w.Write((int)p.Kind); });
            List(w, e.FtraceDispatchTargets, w.Write);
            List(w, e.FtraceGraphTargets, w.Write);
            List(w, e.Gaps, g => { w.Write((int)g.Family); w.Write(g.Reason); });
        }
        var bytes = raw.ToArray();
        var output = new byte[BrotliEncoder.GetMaxCompressedLength(bytes.Length)];
        // Quality 1, not 4: the blob (every kernel symbol) is written by each `baseline create`, where quality 4 took a
        // seventh of the command's CPU time; it is a few percent larger.
        if (!BrotliEncoder.TryCompress(bytes, output, out int written, quality: 1, window: 22)) throw new InvalidOperationException("Brotli compression of evidence failed");
        return output[..written];
    }

    private static void List<T>(BinaryWriter w, IReadOnlyList<T> items, Action<T> write)
    {
        w.Write(items.Count);
        foreach (var i in items) write(i);
    }

    public static EvidenceSnapshot Deserialize(byte[] blob, IntrospectionLimits limits, string source)
    {
        byte[] bytes = Decompress(blob, limits.MaxEvidenceBytes, source);
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
            if (r.ReadUInt32() != Magic) Fail(source, 0, "not Periscope evidence (bad magic)");
            int version = r.ReadInt32();
            if (version != Version) Fail(source, 4, $"evidence version {version}, this Periscope reads version {Version}");
            return new EvidenceSnapshot
            {
                KernelTextStart = r.ReadUInt64(),
                KernelTextEnd = r.ReadUInt64(),
                Modules = Read(r, source, 34, () => new ModuleEvidence(r.ReadUInt64(), r.ReadString(), r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadBoolean())),
                Symbols = Read(r, source, 25, () => new CodeSymbol(r.ReadUInt64(), r.ReadUInt64(), r.ReadString(), r.ReadUInt64())),
                JumpEntries = Read(r, source, 16, () => new JumpEntry(r.ReadUInt64(), r.ReadUInt64())),
                StaticCallSites = Read(r, source, 8, r.ReadUInt64),
                FtraceSites = Read(r, source, 8, r.ReadUInt64),
                FtraceOps = Read(r, source, 32, () => new FtraceOpsEvidence(r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64())),
                FtraceEntryCode = Read(r, source, 17, () => new CodeRange(r.ReadString(), r.ReadUInt64(), r.ReadUInt64())),
                FtracePatchSites = Read(r, source, 13, () => new FtracePatchSite(r.ReadUInt64(), r.ReadString(), ReadKind(r, source))),
                FtraceDispatchTargets = Read(r, source, 8, r.ReadUInt64),
                FtraceGraphTargets = Read(r, source, 8, r.ReadUInt64),
                Gaps = Read(r, source, 5, () => new EvidenceGap(ReadFamily(r, source), r.ReadString())),
            };
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or FormatException or ArgumentException)
        {
            throw new EvidenceFormatException($"{source}: stored evidence is truncated or corrupt ({ex.Message})");
        }
    }

    private static FtracePatchKind ReadKind(BinaryReader r, string source)
    {
        int v = r.ReadInt32();
        if (!Enum.IsDefined((FtracePatchKind)v)) Fail(source, r.BaseStream.Position - 4, $"unknown ftrace patch kind {v}");
        return (FtracePatchKind)v;
    }

    private static EvidenceFamily ReadFamily(BinaryReader r, string source)
    {
        int v = r.ReadInt32();
        if (!Enum.IsDefined((EvidenceFamily)v)) Fail(source, r.BaseStream.Position - 4, $"unknown evidence family {v}");
        return (EvidenceFamily)v;
    }

    /// <summary>A count, checked against the bytes left (each entry takes at least <paramref name="minEntryBytes"/>)
    /// before the list is allocated.</summary>
    private static List<T> Read<T>(BinaryReader r, string source, int minEntryBytes, Func<T> read)
    {
        long at = r.BaseStream.Position;
        int count = r.ReadInt32();
        long left = r.BaseStream.Length - r.BaseStream.Position;
        if (count < 0 || (long)count * minEntryBytes > left)
            Fail(source, at, $"list of {count} entries does not fit in the {left} bytes left");
        var list = new List<T>(count);
        for (int i = 0; i < count; i++) list.Add(read());
        return list;
    }

    private static byte[] Decompress(byte[] blob, int maxBytes, string source)
    {
        using var input = new BrotliStream(new MemoryStream(blob), CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[81920];
        try
        {
            int n;
            while ((n = input.Read(buffer)) > 0)
            {
                if (output.Length + n > maxBytes)
                    throw new EvidenceFormatException($"{source}: stored evidence decompresses to more than {maxBytes} bytes (the limit)");
                output.Write(buffer, 0, n);
            }
        }
        catch (InvalidDataException e)
        {
            throw new EvidenceFormatException($"{source}: stored evidence is not valid Brotli data ({e.Message})");
        }
        return output.ToArray();
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Fail(string source, long offset, string message) =>
        throw new EvidenceFormatException($"{source}: evidence offset {offset}: {message}");
}
