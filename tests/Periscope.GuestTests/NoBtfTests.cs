using Periscope.Linux;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Targets;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// The default guest without BTF: offsets inferred from the data (--no-btf, and a dump whose BTF blob is zeroed) must
/// equal the kernel's own BTF for every member inferred, and give the same processes, threads, modules and maps, which
/// must match the guest's own /proc (ground truth on its serial port).
/// </summary>
[Collection("5-level guest")]
public sealed class NoBtfTests(FiveLevelGuest guest, ITestOutputHelper output)
{
    private LinuxKernel WithBtf => guest.Dump.Kernel;

    private Target OpenNoBtf() => Target.OpenDump(guest.DumpPath, new TargetOptions { NoBtf = true });

    /// <summary>dmesg without BTF reads the printk ring through the layout the kernel publishes in VMCOREINFO: every
    /// record must equal the one read through BTF, and the layouts must agree member by member.</summary>
    [Fact]
    public void Dmesg_without_BTF_equals_dmesg_with_BTF_through_the_VMCOREINFO_layout()
    {
        using var t = OpenNoBtf();
        var withoutBtf = PrintkLayout.Of(t.Kernel);
        Assert.Equal("the dump's VMCOREINFO note", withoutBtf.Source);
        Assert.Equal(PrintkLayout.Of(WithBtf) with { Source = "" }, withoutBtf with { Source = "" });
        var ours = new PrintkLog(t.Kernel).Read();
        var theirs = new PrintkLog(WithBtf).Read();
        Assert.True(theirs.Count > 50);
        Assert.Equal(theirs, ours);
    }

    [Fact]
    public void Every_inferred_offset_equals_the_BTF_offset()
    {
        using var t = OpenNoBtf();
        var k = t.Kernel;
        Assert.Null(k.Btf);
        Assert.Equal(OffsetSource.Inferred, k.OffsetSource);
        var report = k.Inference!;
        var btf = WithBtf.Btf!;
        int compared = 0;
        foreach (var m in report.Members)
        {
            output.WriteLine($"{m.Name,-34} {(m.Offset is { } o ? $"0x{o:x}" : "-"),-8} {m.Decision,-10} [{string.Join(" ", m.Candidates.Select(c => $"0x{c:x}"))}]");
            if (m.Offset is not { } offset) continue;
            var s = btf.FindStruct(m.Struct);
            Assert.True(s is not null, $"BTF has no struct {m.Struct}");
            if (m.Member == InferenceReport.SizeOfMember)
            {
                Assert.True(s!.Size == offset, $"sizeof({m.Struct}): inferred {offset}, BTF {s.Size} ({m.Decision}: {m.Rule})");
                compared++;
                continue;
            }
            Assert.True(s!.HasMember(m.Member), $"BTF struct {m.Struct} has no member {m.Member}");
            Assert.True(s.Offset(m.Member) == offset, $"{m.Name}: inferred 0x{offset:x}, BTF 0x{s.Offset(m.Member):x} ({m.Decision}: {m.Rule})");
            compared++;
        }
        Assert.True(compared >= 50, $"only {compared} members inferred");
        // kworker names (rescuers' too) and ps --full's cgroup path: every member they read was inferred (and compared above).
        foreach (var name in new[] { "task_struct.worker_private", "kthread.data", "kthread.full_name", "worker.task", "worker.current_work", "worker.pool",
                     "worker.desc", "worker.rescue_wq", "workqueue_struct.name", "task_struct.cgroups", "css_set.dom_cset", "css_set.dfl_cgrp", "cgroup.kn", "kernfs_node.priv",
                     $"kernfs_node.{KernelMacros.KernfsParentMember(LinuxKernel.ReleaseVersion(k.Release))}", "kernfs_node.name" })
            Assert.True(report.Members.Any(m => m.Name == name && m.IsKnown), $"{name} was not inferred");
        // The sockets' uid column: /bin/uidsocks (uid 4242) gives the evidence.
        foreach (var name in new[] { "sock.sk_uid", "inode.i_uid" })
            Assert.True(report.Members.Any(m => m.Name == name && m.IsKnown), $"{name} was not inferred");
        // The taint markers: the taint_flags table is found whenever kallsyms names it; module.taints needs a tainted module
        // (then it was compared above), without one it stays unknown and says why.
        if (WithBtf.Symbols.TryGetAddress("taint_flags", out _))
            Assert.True(report.Find("taint_flag", InferenceReport.SizeOfMember)?.IsKnown == true, "the taint_flags layout was not inferred");
        var taints = report.Find("module", "taints")!;
        if (WithBtf.Modules.Any(m => m.Tainted)) Assert.True(taints.IsKnown, $"module.taints not inferred with a tainted module loaded: {taints.Rule}");
        else Assert.Contains("no listed module carries taint evidence", taints.Rule);
        // Everything the model reads, by name, is what BTF gives (the members without BTF-only counterparts aside).
        var fromBtf = OffsetTable.Of(WithBtf.Offsets).ToDictionary(e => e.Name, e => e.Offset);
        foreach (var e in OffsetTable.Of(k.Offsets))
            Assert.True(fromBtf.TryGetValue(e.Name, out int b) && b == e.Offset, $"{e.Name}: model uses 0x{e.Offset:x} without BTF, 0x{(fromBtf.TryGetValue(e.Name, out int x) ? x : -1):x} with BTF");
        Assert.Equal(WithBtf.Offsets.Task.CommSize, k.Offsets.Task.CommSize);
        Assert.Equal(WithBtf.Offsets.Module.NameSize, k.Offsets.Module.NameSize);
        var (mb, mi) = (WithBtf.Offsets.Module, k.Offsets.Module);
        // (MemSize is the mem[] stride: meaningful with the 6.4+ layout only; BTF gives sizeof(module_layout) before.)
        Assert.Equal((mb.CoreLayout, mb.Mem, mb.MemCount, mb.Mem is null ? 0 : mb.MemSize, mb.MemText, mb.MemRodata, mb.LayoutBase, mb.LayoutSize),
            (mi.CoreLayout, mi.Mem, mi.MemCount, mi.Mem is null ? 0 : mi.MemSize, mi.MemText, mi.MemRodata, mi.LayoutBase, mi.LayoutSize));
        Assert.Equal(WithBtf.Offsets.Maple, k.Offsets.Maple);
        Assert.Equal(WithBtf.InitTask, k.InitTask);
    }

    /// <summary>`info --offsets` shows every offset with its evidence, the ones inferred only when a view asks (timeline's
    /// start_time and timekeeper) included: each row without BTF equals the BTF run's row of the same name.</summary>
    [Fact]
    public void Info_offsets_without_BTF_lists_every_row_equal_to_BTF_timeline_members_included()
    {
        static Dictionary<string, (int? Offset, string Source)> Rows(params string[] extra)
        {
            var (code, text, error) = CliRun.Run(["info", "--offsets", "--json", .. extra]);
            Assert.True(code == 0, error);
            using var doc = System.Text.Json.JsonDocument.Parse(text);
            return doc.RootElement.GetProperty("offsets").EnumerateArray().ToDictionary(
                e => e.GetProperty("name").GetString()!,
                e => (e.GetProperty("offset").ValueKind == System.Text.Json.JsonValueKind.Null ? (int?)null : e.GetProperty("offset").GetInt32(), e.GetProperty("source").GetString()!));
        }
        var btf = Rows("--dump", guest.DumpPath);
        var inferred = Rows("--no-btf", "--no-offsets-cache", "--dump", guest.DumpPath);
        foreach (var name in new[] { "task_struct.start_time", "timekeeper.tkr_mono.base", "timekeeper.offs_real" })
        {
            Assert.Equal("Btf", btf[name].Source);
            Assert.Equal("Inferred", inferred[name].Source);
            Assert.NotNull(inferred[name].Offset);
        }
        Assert.NotNull(inferred["task_struct.start_boottime"].Offset);
        int compared = 0;
        foreach (var (name, row) in inferred)
            if (row.Offset is { } offset && btf.TryGetValue(name, out var b) && b.Offset is { } expected)
            {
                Assert.True(offset == expected, $"{name}: 0x{offset:x} without BTF, 0x{expected:x} with BTF");
                compared++;
            }
        Assert.True(compared >= 50, $"only {compared} rows in common");
    }

    /// <summary>`struct` without BTF has no types: it shows the struct's inferred members, each as the word at its offset,
    /// at the addresses BTF gives them; a struct with no inferred member is an incomplete result.</summary>
    [Fact]
    public void Struct_without_BTF_shows_the_inferred_members_at_their_BTF_addresses()
    {
        var (code, text, error) = CliRun.Run("struct", "task_struct", "init_task", "--json", "--no-btf", "--no-offsets-cache", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        ulong init = WithBtf.Symbols.GetAddress("init_task");
        var btf = WithBtf.Btf!.FindStruct("task_struct")!;
        using var doc = System.Text.Json.JsonDocument.Parse(text);
        var members = doc.RootElement.GetProperty("members").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.True(members.Count >= 20, $"only {members.Count} members");
        foreach (var (name, m) in members)
            Assert.Equal($"0x{init + (ulong)btf.Offset(name):x}", m.GetProperty("address").GetString());
        // init_task is its own parent and group leader; it has no mm.
        foreach (var self in new[] { "real_parent", "parent", "group_leader" })
            Assert.Equal($"0x{init:x16}", members[self].GetProperty("value").GetString());
        Assert.Equal($"0x{0:x16}", members["mm"].GetProperty("value").GetString());
        var (unknownCode, _, unknownError) = CliRun.Run("struct", "no_such_struct", "init_task", "--no-btf", "--no-offsets-cache", "--dump", guest.DumpPath);
        Assert.Equal(3, unknownCode);
        Assert.Contains("no member of struct no_such_struct was inferred", unknownError);
    }

    /// <summary>lsof without BTF: every process's open files (path, kind, flags, mode, position, inode) are the BTF run's,
    /// netfiles' pipes, eventfd and sockets among them (the members themselves are compared with BTF by name above).</summary>
    [Fact]
    public void Lsof_of_every_process_equals_lsof_with_BTF()
    {
        using var t = OpenNoBtf();
        var ours = new Periscope.Linux.Files.OpenFiles(t.Kernel);
        var theirs = new Periscope.Linux.Files.OpenFiles(WithBtf);
        Assert.Null(ours.Unavailable);
        static string Line(Periscope.Linux.Files.OpenFile f) => $"{f.Pid} {f.Fd} {f.File:x} {f.Path} {f.Kind} {f.Flags:x} {f.Mode:x} {f.Position} {f.Inode} {f.MountId}";
        var all = new List<Periscope.Linux.Files.OpenFile>();
        foreach (var task in WithBtf.Tasks)
        {
            var (expected, actual) = (theirs.Read(task), ours.Read(t.Kernel.Tasks.Single(x => x.Address == task.Address)));
            Assert.Equal(expected.Gap, actual.Gap);
            Assert.Equal(expected.Files.Select(Line), actual.Files.Select(Line));
            all.AddRange(actual.Files);
        }
        Assert.True(all.Count >= 30, $"only {all.Count} open files");
        Assert.All(all, f => Assert.NotNull(f.MountId)); // mount.mnt_id is inferred (for `mounts`)
        var netfiles = all.Where(f => f.Pid == Assert.Single(WithBtf.Tasks, x => x.Comm == "netfiles").Pid).ToList();
        Assert.Equal(2, netfiles.Count(f => f.Kind == Periscope.Linux.Files.OpenFileKind.Pipe));
        Assert.Single(netfiles, f => f.Path == "anon_inode:[eventfd]");
        Assert.True(netfiles.Count(f => f.Kind == Periscope.Linux.Files.OpenFileKind.Socket) >= 9);
    }

    /// <summary>mounts without BTF: every process's mount namespace, root mount and mountinfo lines are the BTF run's
    /// (the init namespace and the one views.sh's unshared process made), and the CLI prints the same.</summary>
    [Fact]
    public void Mounts_of_every_process_equal_mounts_with_BTF()
    {
        using var t = OpenNoBtf();
        var ours = new MountReader(t.Kernel);
        var theirs = new MountReader(WithBtf);
        Assert.Null(ours.Unavailable);
        var namespaces = new HashSet<ulong>();
        int lines = 0;
        foreach (var task in WithBtf.Tasks.Where(x => x.Pid != 0))
        {
            var same = t.Kernel.Tasks.Single(x => x.Address == task.Address);
            Assert.Equal(theirs.NamespaceOf(task), ours.NamespaceOf(same));
            Assert.Equal(theirs.RootMountOf(task), ours.RootMountOf(same));
            if (theirs.NamespaceOf(task) is not { } ns) continue;
            namespaces.Add(ns);
            var expected = theirs.Read(ns, theirs.RootMountOf(task));
            Assert.Equal(expected, ours.Read(ns, ours.RootMountOf(same)));
            if (!task.IsKernelThread) lines += expected.Count;
        }
        Assert.True(namespaces.Count >= 2, $"only {namespaces.Count} mount namespace(s)");
        // User processes only: each sees /, /proc, /sys, /dev and /sys/fs/cgroup. Kernel threads see them too up to 6.x, and
        // none since 7.0 (init_fs, which they share, is rooted on the kernel's internal rootfs mount, under no namespace).
        Assert.True(lines >= 50, $"only {lines} mount lines of user processes");
        Assert.False(t.Kernel.IsIncomplete, string.Join("; ", t.Kernel.IncompleteReasons));
        var (code, output, error) = Periscope.Tests.Shared.CliRun.Run("mounts", "--no-btf", "--no-offsets-cache", "--dump", guest.DumpPath);
        var (btfCode, btfOutput, _) = Periscope.Tests.Shared.CliRun.Run("mounts", "--dump", guest.DumpPath);
        Assert.True(code == 0, error);
        Assert.Equal(0, btfCode);
        Assert.Equal(btfOutput, output);
        // init's root: the initramfs, the namespace's root mount up to 6.x ("1 1 0:2"), mounted on nullfs since 7.0 ("2 1 0:3").
        Assert.Matches(@"^\d+ \d+ 0:\d+ / / rw - rootfs rootfs rw\n", output);
    }

    [Fact]
    public void Processes_threads_modules_and_maps_are_those_with_BTF_and_match_proc()
    {
        using var t = OpenNoBtf();
        var k = t.Kernel;
        static string Task(LinuxTask x) =>
            $"{x.Pid} {x.Tgid} {x.ParentPid} {x.Uid} {x.Gid} {x.State} {x.IsKernelThread} {x.Comm} {x.Name} {x.ExePath} [{string.Join(",", x.Threads.Select(th => $"{th.Tid}:{th.Comm}:{th.Name}:{th.State}"))}]";
        Assert.Equal(WithBtf.Tasks.Select(Task), k.Tasks.Select(Task));
        static string Module(KernelModule m) => $"{m.Name} {m.Address:x} {m.Base:x} {m.Size} {m.State} {m.References} {m.TextSize} [{string.Join(",", m.UsedBy ?? ["?"])}] {m.Permanent}";
        Assert.Equal(WithBtf.Modules.Select(Module), k.Modules.Select(Module));
        Assert.Equal(guest.Truth.Modules.Select(m => (m.Name, m.Base, m.Size, m.References)), k.Modules.Select(m => (m.Name, m.Base, m.Size, m.References ?? -1)));

        int compared = 0;
        foreach (var task in k.Tasks.Where(x => x.Mm != 0))
        {
            var ours = k.GetVmas(task).Select(v => $"{v.Start:x}-{v.End:x} {v.Permissions} {v.Offset:x} {v.DeviceMajor:x2}:{v.DeviceMinor:x2} {v.Inode} {v.Path}").ToList();
            var withBtf = WithBtf.GetVmas(WithBtf.Tasks.Single(x => x.Address == task.Address))
                .Select(v => $"{v.Start:x}-{v.End:x} {v.Permissions} {v.Offset:x} {v.DeviceMajor:x2}:{v.DeviceMinor:x2} {v.Inode} {v.Path}").ToList();
            Assert.Equal(withBtf, ours);
            if (guest.Truth.Maps.TryGetValue(task.Pid, out var truth) && truth.Count > 0)
            {
                Assert.Equal(truth.Select(m => $"{m.Start:x}-{m.End:x} {m.Perms} {m.Offset:x} {m.Device} {m.Inode} {m.Path}"), ours);
                compared++;
            }
        }
        Assert.True(compared >= 6, $"compared maps of only {compared} processes with /proc");
        Assert.False(k.IsIncomplete, string.Join("\n", k.IncompleteReasons));
        var threaded = Assert.Single(k.Tasks, x => x.Comm == "workload" && x.ThreadCount == 4);
        Assert.Equal(guest.Truth.Processes[threaded.Pid].Threads.Select(x => x.Pid).Order(), threaded.Threads.Select(x => x.Tid).Order());
    }

    [Fact]
    public void Module_symbols_and_used_by_are_those_with_BTF()
    {
        using var t = OpenNoBtf();
        var k = t.Kernel;
        var ours = ModuleSymbols.Read(k).Select(s => s.ToString()).ToList();
        Assert.Equal(ModuleSymbols.Read(WithBtf).Select(s => s.ToString()), ours);
        Assert.True(ours.Count > 20, $"only {ours.Count} module symbols");
        Assert.Contains(ours, s => char.IsUpper(s[17])); // exported symbols keep their upper-case letter
        Assert.Contains(k.Modules, m => m.UsedBy is { Count: > 0 }); // omfs uses crc-itu-t
        Assert.Equal(WithBtf.Modules.Select(m => string.Join(",", m.UsedBy!)), k.Modules.Select(m => string.Join(",", m.UsedBy ?? ["unavailable"])));
    }

    [Fact]
    public void A_dump_with_its_BTF_blob_zeroed_works_like_no_btf()
    {
        ulong start = WithBtf.Symbols.GetAddress("__start_BTF"), stop = WithBtf.Symbols.GetAddress("__stop_BTF");
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, WithBtf);
        for (ulong va = start; va < stop;)
        {
            ulong end = Math.Min(stop, (va & ~0xfffUL) + 4096); // page by page: each write is translated on its own
            d.Write(va, new byte[end - va]);
            va = end;
        }
        using var t = d.Open();
        var k = t.Kernel;
        Assert.Null(k.Btf);
        Assert.Equal(OffsetSource.Inferred, k.OffsetSource);
        Assert.Contains(k.Log.Facts, f => f.Name == "BTF" && f.How.Contains("no BTF in the kernel image", StringComparison.Ordinal));
        Assert.Equal(WithBtf.Tasks.Select(x => (x.Pid, x.Comm, x.ParentPid, x.ExePath, x.ThreadCount)), k.Tasks.Select(x => (x.Pid, x.Comm, x.ParentPid, x.ExePath, x.ThreadCount)));
        Assert.Equal(WithBtf.Modules.Select(m => (m.Name, m.Base, m.Size)), k.Modules.Select(m => (m.Name, m.Base, m.Size)));
    }

    [Fact]
    public void Init_task_is_found_by_its_structure_alone()
    {
        var k = WithBtf;
        ulong found = OffsetInference.FindInitTask(k.Reader, k.Symbols, k.Layout, k.Limits, k.ModuleArea);
        Assert.Equal(k.Symbols.GetAddress("init_task"), found);
    }

    /// <summary>Without data symbols (a kernel built without KALLSYMS_ALL) the integrity evidence's tables are found from
    /// the code that uses them, checked against their data (PatchTableDataSearch): each must be the address kallsyms
    /// names, or its miss must say why; on every kernel of the matrix, x86-64 (this) and i386 (Guest32Tests).</summary>
    [Fact]
    public void Without_data_symbols_the_patch_tables_found_from_code_are_the_ones_kallsyms_names()
    {
        using var t = Target.OpenDump(guest.DumpPath, new TargetOptions { NoBtf = true, NoDataSymbols = true });
        var found = t.Kernel.DataAddresses;
        foreach (string name in new[] { "ftrace_pages_start", "__start___jump_table", "__stop___jump_table", "ftrace_ops_list", "ftrace_list_end" })
        {
            Assert.False(t.Kernel.Symbols.TryGetAddress(name, out _), name);
            Assert.True(found.TryGet(name, out var at), $"{name} not found from code: {found.WhyMissing(name)}");
            output.WriteLine($"{name} 0x{at.Address:x}: {at.How}");
            Assert.Equal(WithBtf.Symbols.GetAddress(name), at.Address);
        }
    }

    [Fact]
    public void Without_data_symbols_init_task_and_init_cred_come_from_structure_and_ps_and_maps_are_those_with_BTF()
    {
        using var t = Target.OpenDump(guest.DumpPath, new TargetOptions { NoBtf = true, NoDataSymbols = true });
        var k = t.Kernel;
        Assert.False(k.Symbols.TryGetAddress("init_task", out _));
        Assert.False(k.Symbols.TryGetAddress("init_cred", out _));
        Assert.True(k.Inference!.InitTaskFromStructure);
        Assert.Equal(WithBtf.InitTask, k.InitTask);
        foreach (var member in new[] { "uid", "euid" })
            Assert.Equal((long)WithBtf.Btf!.FindStruct("cred")!.Offset(member), (long?)k.Inference.Find("cred", member)!.Offset);
        static string Task(LinuxTask x) => $"{x.Pid} {x.Tgid} {x.ParentPid} {x.Uid} {x.Gid} {x.State} {x.IsKernelThread} {x.Comm} {x.ExePath} {x.ThreadCount}";
        Assert.Equal(WithBtf.Tasks.Select(Task), k.Tasks.Select(Task));
        // [vdso]/[vvar] are named through special_mapping_vmops, a data symbol: those names alone are missing.
        static string VmaLine(Vma v) => $"{v.Start:x}-{v.End:x} {v.Permissions} {v.Offset:x} {v.Inode} {(v.Path is { } p && p.StartsWith("[v", StringComparison.Ordinal) ? "" : v.Path)}";
        int compared = 0;
        foreach (var task in k.Tasks.Where(x => x.Mm != 0))
        {
            Assert.Equal(WithBtf.GetVmas(WithBtf.Tasks.Single(x => x.Address == task.Address)).Select(VmaLine), k.GetVmas(task).Select(VmaLine));
            compared++;
        }
        Assert.True(compared >= 6, $"compared maps of only {compared} processes");
        // Without data symbols the `modules` list head is searched by its structure (the kernel matrix: found on 7.2.13,
        // not on 6.1's default guest): found, the list must be BTF's; not found, that is stated, never guessed.
        if (k.Inference.ModulesHead is null)
        {
            Assert.Empty(k.Modules);
            Assert.Contains(k.IncompleteReasons, r => r.Contains("no `modules` list head", StringComparison.Ordinal));
        }
        else Assert.Equal(WithBtf.Modules.Select(m => $"{m.Address:x} {m.Name} {m.Base:x} {m.Size}"), k.Modules.Select(m => $"{m.Address:x} {m.Name} {m.Base:x} {m.Size}"));
    }

    [Fact]
    public void Second_attach_takes_the_offsets_from_the_cache_and_a_corrupt_entry_is_ignored()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"periscope-offsets-{Guid.NewGuid():n}");
        try
        {
            var cache = new OffsetsCache(dir);
            var options = new TargetOptions { NoBtf = true, OffsetsCache = cache };
            KernelOffsets first;
            using (var t = Target.OpenDump(guest.DumpPath, options))
            {
                Assert.Equal(OffsetSource.Inferred, t.Kernel.OffsetSource);
                first = t.Kernel.Offsets;
            }
            string entry = Assert.Single(Directory.GetFiles(dir, "*.json"));
            using (var t = Target.OpenDump(guest.DumpPath, options))
            {
                Assert.Equal(OffsetSource.Cache, t.Kernel.OffsetSource);
                Assert.Equal(OffsetTable.Of(first), OffsetTable.Of(t.Kernel.Offsets));
                Assert.Equal(WithBtf.Tasks.Count, t.Kernel.Tasks.Count);
                Assert.DoesNotContain(t.Kernel.Log.Timings, x => x.Stage == "offset inference");
            }
            // A hostile entry: tasks moved far outside task_struct. Ignored with a warning; the search runs again.
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(entry))!;
            var tasks = json["members"]!.AsArray().Single(m => (string?)m!["struct"] == "task_struct" && (string?)m["member"] == "tasks")!;
            tasks["offset"] = 999_999;
            File.WriteAllText(entry, json.ToJsonString());
            using (var t = Target.OpenDump(guest.DumpPath, options))
            {
                Assert.Equal(OffsetSource.Inferred, t.Kernel.OffsetSource);
                Assert.Contains(t.Kernel.Log.Warnings, w => w.Contains("offsets cache entry", StringComparison.Ordinal) && w.Contains("task_struct.tasks", StringComparison.Ordinal));
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
    /// <summary>The run-queue cross-view runs on inferred offsets: complete, and clean on the untouched guest.</summary>
    [Fact]
    public void Run_queue_check_is_complete_and_clean_without_BTF()
    {
        using var t = OpenNoBtf();
        var report = new Periscope.Integrity.Checks.InvariantChecks(t.Kernel).Run();
        var outcome = report.Outcomes.Single(o => o.Check == Periscope.Integrity.Checks.CheckId.RunQueues);
        Assert.True(outcome.Status == Periscope.Integrity.Checks.CheckStatus.Complete, string.Join("; ", outcome.Gaps.Select(g => g.Detail)));
        Assert.DoesNotContain(report.Findings, f => f.Check == Periscope.Integrity.Checks.CheckId.RunQueues);
    }

    /// <summary>sockets' kernel-table view on inferred offsets: the same sockets (address, kind, state, addresses, type,
    /// protocol, unix path, owner uid, netlink port id) as through BTF, read from tcp_hashinfo, udp_table, init_net's unix hash and nl_table.</summary>
    [Fact]
    public void Sockets_kernel_tables_without_BTF_equal_those_with_BTF()
    {
        using var t = OpenNoBtf();
        static List<string> Rows(Periscope.Linux.Network.SocketReport r) => r.Sockets
            .Where(s => (s.Seen & Periscope.Linux.Network.SocketViews.KernelTable) != 0)
            .Select(s => $"0x{s.Sock:x} {s.Kind} {s.State:X2} {s.Local} {s.Remote} {s.Type} {s.Protocol} {s.Listening} uid {s.Uid} {s.PortId}").Order().ToList();
        var withBtf = Rows(new Periscope.Linux.Network.Sockets(WithBtf).Read());
        var without = new Periscope.Linux.Network.Sockets(t.Kernel).Read();
        Assert.Empty(without.Gaps);
        Assert.DoesNotContain(without.Unavailable, u => u.StartsWith("socket uids", StringComparison.Ordinal));
        Assert.Equal(withBtf, Rows(without));
        // The uid column is inferred (sock.sk_uid): /bin/uidsocks' sockets (uid 4242) on 127.0.0.1:7005 (tcp) and :7006 (udp).
        Assert.Contains(withBtf, r => r.Contains(" Tcp 0A 0100007F:1B5D ", StringComparison.Ordinal) && r.Contains(" uid 4242 ", StringComparison.Ordinal));
        Assert.Contains(withBtf, r => r.Contains(" Udp 07 0100007F:1B5E ", StringComparison.Ordinal) && r.Contains(" uid 4242 ", StringComparison.Ordinal));
        // Not vacuous: /bin/netfiles' tcp listener (127.0.0.1:7001), its established pair, udp and a bound unix socket.
        Assert.Contains(withBtf, r => r.Contains(" Tcp 0A 0100007F:1B59 ", StringComparison.Ordinal));
        Assert.Equal(2, withBtf.Count(r => r.Contains(" Tcp 01 ", StringComparison.Ordinal)));
        Assert.Contains(withBtf, r => r.Contains(" Udp 07 0100007F:1B5B ", StringComparison.Ordinal));
        Assert.Contains(withBtf, r => r.Contains(" Unix ", StringComparison.Ordinal) && r.Contains("/tmp/periscope-views.sock", StringComparison.Ordinal));
        // netfiles' NETLINK_ROUTE socket, from nl_table (found, and its members inferred, without BTF), with its port id.
        var netlink = Assert.Single(withBtf, r => r.Contains(" Netlink ", StringComparison.Ordinal));
        Assert.EndsWith($" 0 False uid 0 {guest.Truth.Processes.Values.Single(p => p.Leader.Comm == "netfiles").Leader.Pid}", netlink, StringComparison.Ordinal);
        Assert.DoesNotContain(without.Unavailable, u => u.StartsWith("netlink table", StringComparison.Ordinal));
        output.WriteLine(string.Join('\n', withBtf));
    }
}
