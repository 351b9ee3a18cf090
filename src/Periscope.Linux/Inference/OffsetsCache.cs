using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Periscope.Linux.Discovery;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Files;

namespace Periscope.Linux.Inference;

/// <summary>
/// Inferred offsets kept per kernel build (banner + GNU build id), so that the second attach to the same kernel skips the
/// search. One JSON file per build under $XDG_CACHE_HOME/periscope/offsets (or ~/.cache/periscope/offsets). An entry is
/// hostile input: its size is capped before reading, its key must match, every field is checked, and the offsets are
/// rebuilt through <see cref="OffsetInference.Build"/>; a bad entry is ignored with a warning and the search runs.
/// </summary>
public sealed class OffsetsCache(string directory)
{
    /// <summary>Bumped whenever the rules settle new members (3: the pid cross-views', run queues', vmalloc areas' and
    /// integrity evidence's members; 6: the mounts members; 8: rescuers' workqueue names, kthread full names equal to the
    /// comm, task_struct.cgroups and kernfs_node.name where 7 left them unknown, kernfs_node.__parent named by the release,
    /// netlink_sock.portid after a u16 sk_protocol, and the mounts members on 7.x; 9: bpf_map's attributes where a map id of 1
    /// left them ambiguous, sock.sk_uid and inode.i_uid; 10: ftrace_pages_start found from code without per-CPU candidates; 11: module.taints and the taint_flags layout; 12: cgroup.kn where a pointer to another object reaching the cgroup left it ambiguous;
    /// 13: PREEMPT_RT's layouts: the xarray head after a larger spinlock_t, tk_core with its seqcount's lock pointer, 48-byte
    /// udp slots, lhash2_mask equal to ehash_locks_mask, f_pos after an rt_mutex, and bpf_map.id before name): an entry written by older rules lacks them, and its key (which includes the format)
    /// no longer matches, so the search runs again.</summary>
    public const string Format = "periscope-offsets/13";
    private const int MaxMembers = 512, MaxText = 2048, MaxCandidates = 256;

    public string Directory { get; } = directory;

    /// <summary>The default location, from XDG_CACHE_HOME or HOME; null when neither is set.</summary>
    public static OffsetsCache? Default()
    {
        string? root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg) ? xdg
            : Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home ? Path.Combine(home, ".cache") : null;
        return root is null ? null : new OffsetsCache(Path.Combine(root, "periscope", "offsets"));
    }

    /// <summary>The build's key: a hash of the format, the banner and the build id (absent build id: banner only).</summary>
    public static string Key(string banner, string? buildId) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{Format}\n{banner}\n{buildId ?? "-"}")))[..32];

    private string PathOf(string key) => System.IO.Path.Combine(Directory, key + ".json");

    public (KernelOffsets Offsets, InferenceReport Report)? TryLoad(string key, IntrospectionLimits limits, DiscoveryLog log)
    {
        string path = PathOf(key);
        try
        {
            if (!File.Exists(path)) return null;
            byte[] bytes;
            // The one non-blocking open of a regular file (a FIFO or device planted at the path is refused, not waited on).
            using (var handle = DumpFile.OpenRegular(path, out var info))
            {
                if (info.Length > (ulong)limits.MaxOffsetsCacheBytes)
                    return Ignore(log, path, $"{info.Length} bytes, larger than IntrospectionLimits.MaxOffsetsCacheBytes = {limits.MaxOffsetsCacheBytes}");
                bytes = new byte[(int)info.Length];
                if (RandomAccess.Read(handle, bytes, 0) != bytes.Length) return Ignore(log, path, "it changed size while being read");
            }
            var report = Parse(bytes, key, out string? error);
            if (report is null) return Ignore(log, path, error!);
            return (OffsetInference.Build(report, limits), report);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or KernelModelException or MemoryFormatException)
        {
            return Ignore(log, path, e.Message);
        }
    }

    private static (KernelOffsets, InferenceReport)? Ignore(DiscoveryLog log, string path, string why)
    {
        log.Warn($"offsets cache entry {path} ignored: {why}; inferring again");
        return null;
    }

    /// <summary>Parses and checks an entry; null with <paramref name="error"/> set when anything is off.</summary>
    public static InferenceReport? Parse(ReadOnlySpan<byte> json, string key, out string? error)
    {
        error = null;
        using var doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) { error = "not a JSON object"; return null; }
        if (!root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != Format)
        { error = $"format is not {Format}"; return null; }
        if (!root.TryGetProperty("key", out var k) || k.ValueKind != JsonValueKind.String || k.GetString() != key)
        { error = "its key does not match this kernel build"; return null; }
        if (!root.TryGetProperty("members", out var members) || members.ValueKind != JsonValueKind.Array) { error = "no members array"; return null; }
        int count = members.GetArrayLength();
        if (count > MaxMembers) { error = $"{count} members, more than {MaxMembers}"; return null; }
        var report = new InferenceReport();
        // Absent in entries written before i386 support: those are all 64-bit.
        if (root.TryGetProperty("pointer_size", out var ps))
        {
            if (ps.ValueKind != JsonValueKind.Number || !ps.TryGetInt32(out int size) || size is not (4 or 8)) { error = "pointer_size is not 4 or 8"; return null; }
            report.PointerSize = size;
        }
        if (root.TryGetProperty("special_mapping_vmops_from_text", out var so))
        {
            if (so.ValueKind != JsonValueKind.Number || !so.TryGetUInt64(out ulong delta) || delta > uint.MaxValue) { error = "special_mapping_vmops_from_text is not an image offset"; return null; }
            report.SpecialMappingOpsFromText = delta;
        }
        foreach (var m in members.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object) { error = "a member is not an object"; return null; }
            string? s = Text(m, "struct"), name = Text(m, "member"), rule = Text(m, "rule"), decision = Text(m, "decision");
            if (s is null || name is null || rule is null || decision is null || !Enum.TryParse<InferenceDecision>(decision, out var d) || !Enum.IsDefined(d))
            { error = "a member lacks struct, member, rule or a known decision"; return null; }
            int? offset = null;
            if (m.TryGetProperty("offset", out var o) && o.ValueKind != JsonValueKind.Null)
            {
                if (o.ValueKind != JsonValueKind.Number || !o.TryGetInt32(out int v) || v < 0) { error = $"{s}.{name}: offset is not a non-negative int"; return null; }
                offset = v;
            }
            if ((offset is null) != (d is InferenceDecision.NotFound or InferenceDecision.Ambiguous)) { error = $"{s}.{name}: offset and decision disagree"; return null; }
            var candidates = new List<int>();
            if (m.TryGetProperty("candidates", out var c))
            {
                if (c.ValueKind != JsonValueKind.Array || c.GetArrayLength() > MaxCandidates) { error = $"{s}.{name}: candidates is not an array of at most {MaxCandidates}"; return null; }
                foreach (var x in c.EnumerateArray())
                {
                    if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt32(out int v) || v < 0) { error = $"{s}.{name}: a candidate is not a non-negative int"; return null; }
                    candidates.Add(v);
                }
            }
            report.Load(new InferredMember(s, name, offset, d, candidates, rule));
        }
        return report;
    }

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 and <= MaxText } s ? s : null;

    public void Store(string key, KernelOffsets offsets, InferenceReport report, DiscoveryLog log)
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            string path = PathOf(key), temp = path + $".{Environment.ProcessId}.tmp";
            using (var f = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            using (var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteString("format", Format);
                w.WriteString("key", key);
                w.WriteNumber("pointer_size", report.PointerSize);
                if (report.SpecialMappingOpsFromText is { } delta) w.WriteNumber("special_mapping_vmops_from_text", delta);
                w.WritePropertyName("members");
                WriteMembers(w, report);
                w.WriteEndObject();
            }
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.Warn($"offsets cache not written in {Directory}: {e.Message}");
        }
    }

    /// <summary>The members as a JSON array (also used by `profile export`).</summary>
    public static void WriteMembers(Utf8JsonWriter w, InferenceReport report)
    {
        w.WriteStartArray();
        foreach (var m in report.Members)
        {
            w.WriteStartObject();
            w.WriteString("struct", m.Struct);
            w.WriteString("member", m.Member);
            if (m.Offset is { } o) w.WriteNumber("offset", o); else w.WriteNull("offset");
            w.WriteString("decision", m.Decision.ToString());
            w.WriteStartArray("candidates");
            foreach (int c in m.Candidates) w.WriteNumberValue(c);
            w.WriteEndArray();
            w.WriteString("rule", m.Rule);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
