using System.Globalization;
using System.Text.Json;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Bpf;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>A guest of its own for the eBPF and page cache views: /bin/bpfload (guest/start.d/52-bpf.sh) holds a map and
/// nine programs, eight of them attached (socket filter, cgroup link, XDP link, TC (tcx or cls_bpf), kprobe, kretprobe
/// and tracepoint perf events, fentry trampoline); /tmp/pscope-pages has holes.</summary>
public sealed class BpfGuest() : GuestFixture("max", extraAppend: "periscope.bpf")
{
    private BpfTruth? _bpf;

    /// <summary>The sections guest/truth.d/bpf.sh printed.</summary>
    public BpfTruth Bpf => _bpf ??= BpfTruth.Parse(ReadDataLog());

    private string ReadDataLog()
    {
        using var fs = new FileStream(Guest.DataLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(fs).ReadToEnd();
    }
}

/// <summary>guest/truth.d/bpf.sh: "@@BEGIN bpf-list" (bpfload list: prog/map/link lines from BPF_OBJ_GET_INFO_BY_FD),
/// "perf PID FD PROG_ID FD_TYPE NAME" (BPF_TASK_FD_QUERY, as `bpftool perf`), "@@BEGIN bpf-attach" ("attach POINT PROG_ID"),
/// "@@BEGIN pagecache" ("PATH SIZE SHA256").</summary>
public sealed class BpfTruth
{
    public List<ProgLine> Programs { get; } = [];
    public List<MapLine> Maps { get; } = [];
    public List<LinkLine> Links { get; } = [];
    public List<PerfLine> PerfEvents { get; } = [];
    public Dictionary<string, uint> Attached { get; } = [];
    public Dictionary<string, (long Size, string Sha256)> Files { get; } = [];

    public sealed record ProgLine(uint Id, int Type, string Name, string Tag, uint JitedLength, uint XlatedLength, string MapIds);
    public sealed record MapLine(uint Id, int Type, string Name, uint KeySize, uint ValueSize, uint MaxEntries);
    public sealed record LinkLine(uint Id, int Type, uint ProgId);
    /// <param name="FdType">enum bpf_task_fd_type: 1 tracepoint, 2 kprobe, 3 kretprobe.</param>
    public sealed record PerfLine(int Pid, int Fd, uint ProgId, int FdType, string Name);

    public static BpfTruth Parse(string text)
    {
        var truth = new BpfTruth();
        string section = "";
        static uint U(string s) => uint.Parse(s, CultureInfo.InvariantCulture);
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                if (line == "@@DONE") break;
                section = line.Split(' ') is { Length: 2 } p ? p[1] : "";
                continue;
            }
            var f = line.Split(' ');
            switch (section)
            {
                case "bpf-list" when f[0] == "prog" && f.Length == 8:
                    truth.Programs.Add(new ProgLine(U(f[1]), (int)U(f[2]), f[3], f[4], U(f[5]), U(f[6]), f[7]));
                    break;
                case "bpf-list" when f[0] == "map" && f.Length == 7:
                    truth.Maps.Add(new MapLine(U(f[1]), (int)U(f[2]), f[3], U(f[4]), U(f[5]), U(f[6])));
                    break;
                case "bpf-list" when f[0] == "link" && f.Length == 4:
                    truth.Links.Add(new LinkLine(U(f[1]), (int)U(f[2]), U(f[3])));
                    break;
                case "bpf-list" when f[0] == "perf" && f.Length == 6:
                    truth.PerfEvents.Add(new PerfLine((int)U(f[1]), (int)U(f[2]), U(f[3]), (int)U(f[4]), f[5]));
                    break;
                case "bpf-attach" when f[0] == "attach" && f.Length == 3:
                    truth.Attached[f[1]] = U(f[2]);
                    break;
                case "pagecache" when f.Length == 3:
                    truth.Files[f[0]] = (long.Parse(f[1], CultureInfo.InvariantCulture), f[2]);
                    break;
            }
        }
        return truth;
    }
}

/// <summary>
/// `bpf` against the kernel's own view (BPF_*_GET_NEXT_ID + BPF_OBJ_GET_INFO_BY_FD, what bpftool prints): the same
/// programs, maps and links with the same ids, types, names, tags, lengths and map ids; each program bpfload attached is
/// found at its attach point; the program calling bpf_probe_write_user is flagged and no other.
/// </summary>
public sealed class BpfViewsTests(BpfGuest guest, ITestOutputHelper output) : IClassFixture<BpfGuest>
{
    private LinuxKernel Kernel => guest.Dump.Kernel;

    [Fact]
    public void Bpf_id_lists_equal_the_kernels_own_view_and_attached_programs_are_found_where_they_are_attached()
    {
        var truth = guest.Bpf;
        // TC: bpfload attaches its program by tcx on 6.6+ and as a cls_bpf filter on lo's clsact qdisc before, whose
        // types Periscope reads from the cls_bpf module's split BTF.
        bool tcx = Kernel.Btf!.FindStruct("net_device")!.HasMember("tcx_ingress");
        Assert.Equal(9, truth.Programs.Count); // the guest's loader really loaded what the test expects
        Assert.Equal(8, truth.Attached.Count);
        Assert.Equal(3, truth.PerfEvents.Count);
        var report = new BpfView(Kernel).Read();
        Assert.Empty(report.Gaps);
        BpfAttachPoint[] read = [BpfAttachPoint.Link, BpfAttachPoint.SocketFilter, BpfAttachPoint.Cgroup, BpfAttachPoint.Xdp, BpfAttachPoint.Kprobe,
            BpfAttachPoint.Kretprobe, BpfAttachPoint.Tracepoint, BpfAttachPoint.PerfEvent, BpfAttachPoint.TraceEvent, BpfAttachPoint.Trampoline];
        read = [.. read, BpfAttachPoint.Tc];
        Assert.Equal(read, report.AttachPointsRead);

        Assert.Equal(truth.Programs.Select(p => (p.Id, p.Type, p.Name, p.Tag, p.JitedLength, p.XlatedLength, p.MapIds)),
            report.Programs.Select(p => (p.Id, p.Type, p.Name, p.Tag, p.JitLength, (uint)p.InstructionCount * 8,
                p.MapIds.Count == 0 ? "-" : string.Join(",", p.MapIds))));
        Assert.Equal(truth.Maps.Select(m => (m.Id, m.Type, m.Name, m.KeySize, m.ValueSize, m.MaxEntries)),
            report.Maps.Select(m => (m.Id, m.Type, m.Name, m.KeySize, m.ValueSize, m.MaxEntries)));
        Assert.Equal(truth.Links.Select(l => (l.Id, l.Type, l.ProgId)), report.Links.Select(l => (l.Id, l.Type, l.ProgramId)));

        var byId = report.Programs.ToDictionary(p => p.Id);
        Assert.All(report.Programs, p => Assert.Equal(BpfProgramFinding.None, p.Finding));
        // netfiles' udp6 socket carries a classic filter (SO_ATTACH_FILTER): counted, never a hidden program.
        Assert.Equal(1, report.ClassicSocketFilters);
        Assert.All(report.Programs, p => Assert.True(p.Seen.HasFlag(BpfProgramViews.IdList)));
        Assert.Single(byId[truth.Attached["socket_filter"]].Attachments, a => a.Point == BpfAttachPoint.SocketFilter && a.Target.StartsWith("udp socket", StringComparison.Ordinal));
        Assert.Single(byId[truth.Attached["cgroup_inet_ingress"]].Attachments, a => a.Point == BpfAttachPoint.Cgroup && a.Target == "cgroup /pscope inet_ingress");
        Assert.Single(byId[truth.Attached["xdp"]].Attachments, a => a.Point == BpfAttachPoint.Xdp && a.Target.StartsWith("netdev lo ", StringComparison.Ordinal));
        // Perf events, exactly as BPF_TASK_FD_QUERY answers for each fd: the program, the kind and the probed function or
        // tracepoint, and the owning process; each program found once, through its own event.
        Assert.Equal(truth.PerfEvents.Select(e => (e.ProgId, e.FdType switch { 1 => BpfAttachPoint.Tracepoint, 2 => BpfAttachPoint.Kprobe, 3 => BpfAttachPoint.Kretprobe, _ => BpfAttachPoint.PerfEvent },
                    e.FdType == 1 ? $"tracepoint sched:{e.Name} (perf event of pid {e.Pid})" : $"{(e.FdType == 2 ? "kprobe" : "kretprobe")} {e.Name} (perf event of pid {e.Pid})"))
                .Order(),
            report.Programs.SelectMany(p => p.Attachments.Where(a => a.Point is BpfAttachPoint.Kprobe or BpfAttachPoint.Kretprobe or BpfAttachPoint.Tracepoint)
                .Select(a => (p.Id, a.Point, a.Target))).Order());
        Assert.Equal([truth.Attached["kprobe"], truth.Attached["kretprobe"], truth.Attached["tracepoint"]], truth.PerfEvents.Select(e => e.ProgId).Order());
        Assert.Equal("do_sys_openat2", truth.PerfEvents.Single(e => e.ProgId == truth.Attached["kprobe"]).Name);
        // fentry: on the trampoline of do_sys_openat2 (and, independently, its tracing link).
        var fentry = byId[truth.Attached["fentry"]];
        Assert.Equal("fentry do_sys_openat2", Assert.Single(fentry.Attachments, a => a.Point == BpfAttachPoint.Trampoline).Target);
        Assert.Single(fentry.Attachments, a => a.Point == BpfAttachPoint.Link);
        Assert.Equal(2, fentry.Attachments.Count);
        var tc = byId[truth.Attached[tcx ? "tcx_ingress" : "tc_ingress"]];
        string tcTarget = Assert.Single(tc.Attachments, a => a.Point == BpfAttachPoint.Tc).Target;
        Assert.StartsWith("netdev lo (net ns ", tcTarget, StringComparison.Ordinal);
        // cls_bpf: the filter bpfload made (handle 1, TCA_BPF_NAME "pscope_cls"), found from the device's mini_Qdisc.
        Assert.EndsWith(tcx ? ") tcx ingress" : ") tc ingress cls_bpf handle 0x1 pscope_cls", tcTarget, StringComparison.Ordinal);
        var unattached = report.Programs.Single(p => !truth.Attached.ContainsValue(p.Id));
        Assert.Empty(unattached.Attachments);

        // Helper calls: only pscope_wu calls bpf_probe_write_user, and its JIT image lies in kernel memory.
        Assert.Equal(BpfRiskyHelpers.WritesUserMemory, report.Programs.Single(p => p.Name == "pscope_wu").Risky);
        Assert.Contains("bpf_probe_write_user", report.Programs.Single(p => p.Name == "pscope_wu").Helpers);
        Assert.All(report.Programs.Where(p => p.Name != "pscope_wu"), p => Assert.Equal(BpfRiskyHelpers.None, p.Risky));
        Assert.All(report.Programs, p => Assert.True(Kernel.Reader.IsKernelPointer(p.JitAddress) && p.JitLength > 0, $"prog {p.Id}: JIT 0x{p.JitAddress:x}+{p.JitLength}"));
        output.WriteLine(string.Join("\n", report.Programs.Select(p => $"{p.Id} {p.TypeName} {p.Name} {string.Join("; ", p.Attachments)}")));
    }

    /// <summary>
    /// `bpf --no-btf` on the same dump: every bpf member the view reads is inferred from the IDRs' objects at BTF's offset
    /// (bpf_map.id too: with one map its id 1 is also usercnt's value, but usercnt is declared after name and id before
    /// it), and the ID lists equal BTF's field by field; the attach points whose
    /// members are not inferred are gaps (the report is incomplete), never an empty "nothing attached".
    /// </summary>
    [Fact]
    public void Bpf_without_btf_lists_what_btf_lists_from_offsets_equal_to_btfs()
    {
        using var t = Periscope.Targets.Target.OpenDump(guest.DumpPath, new Periscope.Targets.TargetOptions { NoBtf = true });
        var noBtf = t.Kernel;
        Assert.Null(noBtf.Btf);
        var btfMembers = new Dictionary<string, int>();
        Kernel.Offsets.Bpf!.List((s, m, v) => { if (v is { } x) btfMembers[$"{s}.{m}"] = x; });
        var inferred = new Dictionary<string, int>();
        Assert.NotNull(noBtf.Offsets.Bpf);
        noBtf.Offsets.Bpf.List((s, m, v) => { if (v is { } x) inferred[$"{s}.{m}"] = x; });
        foreach (var m in noBtf.Inference!.Members.Where(m => m.Struct.StartsWith("bpf_", StringComparison.Ordinal) && !m.IsKnown))
            output.WriteLine($"{m.Name}: {m.Decision} [{string.Join(" ", m.Candidates.Select(c => $"0x{c:x}"))}] {m.Rule}");
        Assert.Equal(btfMembers.Keys.Order(), inferred.Keys.Order());
        Assert.All(inferred, kv => Assert.Equal(btfMembers[kv.Key], kv.Value));

        var withBtf = new BpfView(Kernel).Read();
        var without = new BpfView(noBtf).Read();
        static object P(BpfProgram p) => (p.Id, p.Type, p.TypeName, p.Name, p.Tag, p.InstructionCount, p.JitAddress, p.JitLength, p.LoadTimeNs,
            string.Join(",", p.MapIds), string.Join(",", p.Helpers), p.Risky, p.Seen.HasFlag(BpfProgramViews.IdList));
        Assert.Equal(9, without.Programs.Count);
        Assert.Equal(withBtf.Programs.Select(P), without.Programs.Select(P));
        Assert.Equal(withBtf.Maps, without.Maps);
        Assert.Equal(withBtf.Links, without.Links);
        Assert.Equal([BpfAttachPoint.Link], without.AttachPointsRead);
        Assert.True(without.IsIncomplete);
        Assert.All(without.Gaps, g => Assert.Contains("not read without BTF", g, StringComparison.Ordinal));
        Assert.Equal(6, without.Gaps.Count);
        // The links are read without BTF: the programs they hold are attached there.
        Assert.All(without.Links, l => Assert.Contains(without.Programs.Single(p => p.Id == l.ProgramId).Attachments, a => a.Point == BpfAttachPoint.Link));
        Assert.Contains(noBtf.Inference!.Members, m => m.Name == "bpf_map.id" && m.Decision == Periscope.Linux.Inference.InferenceDecision.Unique);
    }

    [Fact]
    public void Bpf_cli_live_and_dump_json_agree_and_exit_1_for_the_probe_write_user_program()
    {
        var (code, json, err) = CliRun.Run("bpf", "--dump", guest.DumpPath, "--json");
        Assert.True(code == 1, err);
        var (liveCode, liveJson, liveErr) = CliRun.Run("bpf", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause", "--json");
        Assert.True(liveCode == 1, liveErr);
        static string[] Rows(string text)
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.GetProperty("programs").EnumerateArray()
                .Select(p => $"{p.GetProperty("id").GetUInt32()} {p.GetProperty("typeName").GetString()} {p.GetProperty("name").GetString()} {p.GetProperty("tag").GetString()} "
                             + $"{string.Join(",", p.GetProperty("riskyHelpers").EnumerateArray().Select(h => h.GetString()))} {p.GetProperty("finding").GetString()} "
                             + string.Join(";", p.GetProperty("attachments").EnumerateArray().Select(a => a.GetProperty("point").GetString())))
                .ToArray();
        }
        var dumpRows = Rows(json);
        Assert.Equal(dumpRows, Rows(liveJson));
        Assert.Equal(guest.Bpf.Programs.Select(p => $"{p.Id} {p.Name} {p.Tag}"), dumpRows.Select(r => string.Join(' ', r.Split(' ')[0], r.Split(' ')[2], r.Split(' ')[3])));
        Assert.Contains(dumpRows, r => r.Contains(" pscope_wu ", StringComparison.Ordinal) && r.Contains(" WritesUserMemory None", StringComparison.Ordinal));

        var (tableCode, table, tableErr) = CliRun.Run("bpf", "--dump", guest.DumpPath);
        Assert.True(tableCode == 1, tableErr);
        Assert.Contains("WARNING: bpf program", table);
        Assert.DoesNotContain("CRITICAL", table);
    }

    [Fact]
    public void Bpf_jit_code_is_measured_into_the_baseline_and_a_patched_jit_byte_is_code_modified()
    {
        string db = Path.Combine(guest.Guest.WorkDirectory, $"bpf-baseline-{Guid.NewGuid():n}.db");
        using var store = BaselineStore.Open(db);
        var summary = BaselineRecorder.Record(Kernel, store, "test");
        var baseline = store.Latest(summary.BuildId, Kernel.Layout.TextVa)!;
        var evidence = EvidenceStore.Load(store, summary.Id, Kernel.Limits)!;
        var jit = baseline.Regions.Select(r => r.Region).Where(r => r.Kind == RegionKind.BpfJitCode).ToList();
        // One region per program the kernel lists, at its JIT address and length.
        Assert.Equal(guest.Bpf.Programs.Select(p => $"bpf prog {p.Id} {p.Name} {p.Tag} jit+{p.JitedLength}").Order(),
            jit.Select(r => $"{r.Name}+{r.Length}").Order());
        Assert.Empty(Verifier.Verify(Kernel, baseline, evidence).Findings);

        var target = jit.Single(r => r.Name.Contains(" pscope_sf ", StringComparison.Ordinal));
        ulong at = target.Start + 4;
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.Write(at, [0xcc]);
        using var t = d.Open();
        var f = Assert.Single(Verifier.Verify(t.Kernel, baseline, evidence).Findings);
        Assert.Equal(target.Name, f.Region);
        Assert.Equal(RegionKind.BpfJitCode, f.Kind);
        Assert.Equal(at, f.VirtualAddress);
        Assert.Equal([0xcc], f.Found);
        Assert.Equal(Severity.Critical, f.Severity);
    }

    [Fact]
    public void Dump_file_writes_the_page_cache_bytes_the_guests_sha256sum_reads_with_its_holes_listed()
    {
        // /tmp/pscope-pages (guest/start.d/52-bpf.sh): pages 0-1 and 5 written, 2-4 never, then a partial last page.
        foreach (var (file, live) in new[] { ("/tmp/pscope-pages", false), ("/bin/busybox", false), ("/tmp/pscope-pages", true) })
        {
            var (size, sha) = guest.Bpf.Files[file];
            string outPath = Path.Combine(guest.Guest.WorkDirectory, $"file-{Guid.NewGuid():n}");
            string[] source = live ? ["--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause"] : ["--dump", guest.DumpPath];
            var (code, json, err) = CliRun.Run(["dump", "file", file, "--out", outPath, "--json", .. source]);
            output.WriteLine(json + err);
            Assert.True(code == 0, err);
            Assert.Equal(size, new FileInfo(outPath).Length);
            using (var stream = File.OpenRead(outPath))
                Assert.Equal(sha, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream)));
            using var doc = JsonDocument.Parse(json);
            var holes = doc.RootElement.GetProperty("holes").EnumerateArray().Select(h => (h.GetProperty("offset").GetInt64(), h.GetProperty("length").GetInt64())).ToArray();
            if (file == "/bin/busybox") Assert.Empty(holes);
            else Assert.Equal([(2 * 4096L, 3 * 4096L)], holes);
            Assert.Equal((size + 4095) / 4096 - holes.Sum(h => h.Item2 / 4096), doc.RootElement.GetProperty("pagesCached").GetInt64());
            File.Delete(outPath);
        }
        var (missing, _, missingErr) = CliRun.Run("dump", "file", "/tmp/no-such-file", "--out", Path.Combine(guest.Guest.WorkDirectory, "none"), "--dump", guest.DumpPath);
        Assert.Equal(2, missing);
        Assert.Contains("no-such-file", missingErr);
    }
}
