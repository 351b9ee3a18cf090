using Periscope.Memory;

namespace Periscope.Watch;

/// <summary>One guest that watch monitors: its RAM file, a QMP socket of its own (QEMU serves one client per socket)
/// and, for --protect, QEMU's GDB stub socket.</summary>
public sealed record WatchTarget(string Name, string RamFile, string QmpSocket, string? GdbSocket = null)
{
    /// <summary>
    /// Reads a watch config file: one target per line, `NAME RAMFILE QMPSOCKET [GDBSOCKET]`, '#' starts a comment. The file is
    /// read through the bounded regular-file reader; a bad line is one error naming the file and line.
    /// </summary>
    public static IReadOnlyList<WatchTarget> ParseConfig(string path, IntrospectionLimits limits)
    {
        byte[] bytes = Periscope.Memory.Files.DumpFile.ReadWholeIfAtMost(path, limits.MaxWatchConfigBytes, out ulong length)
            ?? throw new WatchConfigException($"{path}: {length} bytes, more than the limit of {limits.MaxWatchConfigBytes} bytes for a watch config");
        int total = bytes.Length;
        string text;
        try { text = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 0, total); }
        catch (System.Text.DecoderFallbackException e) { throw new WatchConfigException($"{path}: at offset {e.Index}: not UTF-8 text"); }
        var targets = new List<WatchTarget>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = raw.Split('#')[0].Trim();
            if (line.Length == 0) continue;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length is not (3 or 4)) throw new WatchConfigException($"{path}: line {lineNumber}: expected NAME RAMFILE QMPSOCKET [GDBSOCKET], found {fields.Length} field(s)");
            if (!names.Add(fields[0])) throw new WatchConfigException($"{path}: line {lineNumber}: target name '{fields[0]}' used twice");
            if (targets.Count == limits.MaxWatchTargets) throw new WatchConfigException($"{path}: line {lineNumber}: more than {limits.MaxWatchTargets} targets (IntrospectionLimits.MaxWatchTargets)");
            targets.Add(new WatchTarget(fields[0], fields[1], fields[2], fields.Length == 4 ? fields[3] : null));
        }
        if (targets.Count == 0) throw new WatchConfigException($"{path}: no targets");
        return targets;
    }
}

public sealed class WatchConfigException(string message) : Exception(message);
