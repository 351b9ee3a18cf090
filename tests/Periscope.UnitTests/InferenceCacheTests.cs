using System.Text.Json.Nodes;
using Periscope.Linux.Discovery;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests;

/// <summary>
/// The offsets cache is hostile input: an entry is parsed field by field, its key must match, and its offsets are rebuilt
/// through OffsetInference.Build, which refuses offsets outside the search windows and names every missing member.
/// </summary>
public class InferenceCacheTests
{
    internal const string Key = "0123456789abcdef0123456789abcdef";

    /// <summary>Debian 6.1's offsets (from its BTF), as the search reports them.</summary>
    internal static readonly (string Struct, string Member, int Offset)[] Debian61 =
    [
        ("task_struct", "comm", 0xba0), ("task_struct", "tasks", 0x890), ("task_struct", "mm", 0x8e0), ("mm_struct", "pgd", 0x48),
        ("task_struct", "flags", 0x2c), ("task_struct", "real_parent", 0x980), ("task_struct", "parent", 0x988), ("task_struct", "group_leader", 0x9b0),
        ("task_struct", "real_cred", 0xb88), ("task_struct", "cred", 0xb90), ("task_struct", "signal", 0xc00), ("signal_struct", "thread_head", 0x10),
        ("task_struct", "thread_node", 0xa30), ("task_struct", "pid", 0x970), ("task_struct", "tgid", 0x974), ("task_struct", "thread_group", 0xa20),
        ("task_struct", "__state", 0x18), ("task_struct", "exit_state", 0x904), ("mm_struct", "mm_mt.ma_root", 0x8), ("vm_area_struct", "vm_mm", 0x10),
        ("mm_struct", "map_count", 0x68), ("vm_area_struct", "vm_start", 0), ("vm_area_struct", "vm_end", 8), ("vm_area_struct", "vm_file", 0x70),
        ("mm_struct", "exe_file", 0x3b0), ("vm_area_struct", "vm_pgoff", 0x68), ("vm_area_struct", "vm_flags", 0x20), ("vm_area_struct", "vm_ops", 0x60),
        ("vm_area_struct", "vm_private_data", 0x78), ("vm_special_mapping", "name", 0), ("mm_struct", "start_code", 0x100), ("module", "name", 0x18),
        ("module", "core_layout", 0x140), ("cred", "uid", 8), ("cred", "gid", 12), ("cred", "euid", 24), ("file", "f_path", 0x10),
        ("dentry", "d_name", 0x20), ("dentry", "d_parent", 0x18), ("vfsmount", "mnt_root", 0), ("mount", "mnt", 0x20), ("mount", "mnt_parent", 0x10),
        ("mount", "mnt_mountpoint", 0x18), ("file", "f_inode", 0x20), ("inode", "i_sb", 0x28), ("inode", "i_ino", 0x40), ("super_block", "s_dev", 0x10),
    ];

    internal static JsonObject Entry(IEnumerable<(string Struct, string Member, int Offset)> members, string key = Key)
    {
        var array = new JsonArray();
        foreach (var (s, m, o) in members)
            array.Add(new JsonObject { ["struct"] = s, ["member"] = m, ["offset"] = o, ["decision"] = "Unique", ["candidates"] = new JsonArray(o), ["rule"] = "test" });
        return new JsonObject { ["format"] = OffsetsCache.Format, ["key"] = key, ["members"] = array };
    }

    internal static InferenceReport? Parse(JsonNode entry, out string? error) =>
        OffsetsCache.Parse(System.Text.Encoding.UTF8.GetBytes(entry.ToJsonString()), Key, out error);

    [Fact]
    public void A_valid_entry_rebuilds_every_offset_the_model_uses()
    {
        var report = Parse(Entry(Debian61), out string? error);
        Assert.True(report is not null, error);
        var o = OffsetInference.Build(report!, IntrospectionLimits.Default);
        Assert.Equal(0x890, o.Task.Tasks);
        Assert.Equal(0x970, o.Task.Pid);
        Assert.Equal(16, o.Task.CommSize);
        Assert.Equal(0x108, o.Mm.EndCode);   // start_code + 8: declaration order
        Assert.Equal(0x130, o.Mm.StartStack);
        Assert.Equal(0x28, o.Path.DentryName); // d_name + qstr.name
        Assert.Equal(0x24, o.Path.DentryNameLength);
        Assert.Equal(8, o.Maple!.Root);
        Assert.Equal(0xf8, o.Maple.RangeMeta);
        Assert.Null(o.Module.RefCount); // not in the entry: "used by" counts are then unavailable, not guessed
        Assert.Equal(Debian61.Length, OffsetTable.Of(o).Count(e => Debian61.Any(d => d.Struct == e.Struct && d.Member == e.Member && d.Offset == e.Offset)));
    }

    [Fact]
    public void An_entry_for_another_kernel_build_is_refused()
    {
        Assert.Null(Parse(Entry(Debian61, key: "ffffffffffffffffffffffffffffffff"), out string? error));
        Assert.Contains("key", error);
    }

    [Fact]
    public void An_offset_outside_its_search_window_is_refused_with_the_numbers()
    {
        var members = Debian61.Select(m => m.Member == "tasks" ? m with { Offset = 0x10_0000 } : m);
        var report = Parse(Entry(members), out _)!;
        var e = Assert.ThrowsAny<KernelModelException>(() => OffsetInference.Build(report, IntrospectionLimits.Default));
        Assert.Contains("task_struct.tasks = 0x100000", e.Message);
        Assert.Contains("0x4000-byte search window", e.Message);
    }

    [Fact]
    public void Every_missing_member_the_model_needs_is_named()
    {
        var members = Debian61.Where(m => m.Member is not ("tasks" or "vm_pgoff"));
        var report = Parse(Entry(members), out _)!;
        var e = Assert.ThrowsAny<KernelModelException>(() => OffsetInference.Build(report, IntrospectionLimits.Default));
        Assert.Contains("2 member(s)", e.Message);
        Assert.Contains("task_struct.tasks", e.Message);
        Assert.Contains("vm_area_struct.vm_pgoff", e.Message);
    }

    [Theory]
    [InlineData("offset", "-8", "not a non-negative int")]
    [InlineData("offset", "\"0x890\"", "not a non-negative int")]
    [InlineData("decision", "\"Guessed\"", "known decision")]
    [InlineData("decision", "\"NotFound\"", "offset and decision disagree")]
    [InlineData("candidates", "[1, -1]", "candidate is not a non-negative int")]
    public void A_malformed_member_makes_the_entry_refused(string field, string json, string expected)
    {
        var entry = Entry(Debian61);
        entry["members"]![0]![field] = JsonNode.Parse(json);
        Assert.Null(Parse(entry, out string? error));
        Assert.Contains(expected, error);
    }

    [Fact]
    public void Too_many_candidates_or_members_are_refused_before_use()
    {
        var entry = Entry(Debian61);
        entry["members"]![0]!["candidates"] = new JsonArray(Enumerable.Range(0, 300).Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());
        Assert.Null(Parse(entry, out string? error));
        Assert.Contains("at most 256", error);

        var many = Entry(Enumerable.Range(0, 600).Select(i => ("task_struct", $"m{i}", i)));
        Assert.Null(Parse(many, out error));
        Assert.Contains("600 members, more than 512", error);
    }

    [Fact]
    public void An_oversized_entry_is_ignored_with_a_diagnostic_stating_size_and_limit()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"periscope-cache-test-{Guid.NewGuid():n}");
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, Key + ".json"), Entry(Debian61).ToJsonString());
            var log = new DiscoveryLog();
            var limits = IntrospectionLimits.Default with { MaxOffsetsCacheBytes = 100 };
            Assert.Null(new OffsetsCache(dir).TryLoad(Key, limits, log));
            var warning = Assert.Single(log.Warnings);
            Assert.Contains("larger than IntrospectionLimits.MaxOffsetsCacheBytes = 100", warning);

            // Within the limit, the same entry loads.
            var loaded = new OffsetsCache(dir).TryLoad(Key, IntrospectionLimits.Default, log);
            Assert.Equal(0x890, loaded!.Value.Offsets.Task.Tasks);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Not_json_is_ignored_not_thrown()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"periscope-cache-test-{Guid.NewGuid():n}");
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, Key + ".json"), "{\"format\": [[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]}");
            var log = new DiscoveryLog();
            Assert.Null(new OffsetsCache(dir).TryLoad(Key, IntrospectionLimits.Default, log));
            Assert.Contains("ignored", Assert.Single(log.Warnings));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData(nameof(IntrospectionLimits.MaxInferenceSteps))]
    [InlineData(nameof(IntrospectionLimits.MaxInferenceTaskBytes))]
    [InlineData(nameof(IntrospectionLimits.MaxOffsetsCacheBytes))]
    public void Inference_limits_reject_zero(string name)
    {
        var limits = name switch
        {
            nameof(IntrospectionLimits.MaxInferenceSteps) => IntrospectionLimits.Default with { MaxInferenceSteps = 0 },
            nameof(IntrospectionLimits.MaxInferenceTaskBytes) => IntrospectionLimits.Default with { MaxInferenceTaskBytes = 0 },
            _ => IntrospectionLimits.Default with { MaxOffsetsCacheBytes = 0 },
        };
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => limits.Validate());
        Assert.Contains(name, e.Message);
    }
}
