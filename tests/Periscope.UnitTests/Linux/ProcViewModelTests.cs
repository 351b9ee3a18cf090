using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using static Periscope.UnitTests.Linux.SyntheticKernelBtf;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// The views as the guest shows them over synthetic memory: /proc names of workqueue workers (6.1 and 6.10+
/// formats) and kernel threads, "used by" of modules, per-CPU areas and idle tasks, each with hostile variants.
/// </summary>
public class ProcViewModelTests
{
    private const ulong Task = SyntheticGuest.Base + 0x1000;
    private const ulong Kthread = SyntheticGuest.Base + 0x2000;
    private const ulong Worker = SyntheticGuest.Base + 0x3000;
    private const ulong Pool = SyntheticGuest.Base + 0x4000;
    private const ulong Attrs = SyntheticGuest.Base + 0x5000;
    private const ulong Workqueue = SyntheticGuest.Base + 0x6000;
    private const ulong Text = SyntheticGuest.Base + 0x7000;
    private const uint WorkerFlags = KernelMacros.PF_KTHREAD | KernelMacros.PF_WQ_WORKER;
    /// <summary>Kernel-half, canonical, but outside the synthetic window: unreadable.</summary>
    private const ulong Unmapped = 0xffff_8880_4000_0000;

    private static readonly KernelOffsets Views = new SyntheticKernelBtf { ViewTypes = true }.Offsets();

    /// <summary>A worker of pool (cpu, id) with the given desc and id, reached through task->worker_private.</summary>
    private static void WriteWorker(SyntheticGuest g, int cpu, int poolId, int id, string desc, bool running)
    {
        g.U64(Task + TaskWorkerPrivate, Kthread);
        g.U64(Kthread + KthreadData, Worker);
        g.U64(Worker + WorkerPool, Pool);
        g.Text(Worker + WorkerDesc, desc);
        g.I32(Worker + WorkerId, id);
        g.U64(Worker + WorkerCurrentWork, running ? SyntheticGuest.Base + 0x8000 : 0);
        g.I32(Pool + PoolCpu, cpu);
        g.I32(Pool + PoolId, poolId);
        g.U64(Pool + PoolAttrs, Attrs);
    }

    private static (string Name, Diagnostics Diagnostics) Name(SyntheticGuest g, string comm, uint flags, bool fullWorkerIds)
    {
        var diagnostics = new Diagnostics();
        string name = new TaskNames(g.Reader(IntrospectionLimits.Default), Views, diagnostics, fullWorkerIds).ProcName(Task, 42, comm, flags);
        return (name, diagnostics);
    }

    [Theory]
    [InlineData(false, "kworker/0:1-rcu_gp")]
    [InlineData(true, "kworker/0:1+rcu_gp")]
    public void A_worker_is_its_comm_with_minus_or_plus_desc_as_wq_worker_comm_prints_it(bool running, string expected)
    {
        using var g = new SyntheticGuest();
        WriteWorker(g, 0, 0, 1, "rcu_gp", running);
        var (name, diagnostics) = Name(g, "kworker/0:1", WorkerFlags, fullWorkerIds: false);
        Assert.Equal(expected, name);
        Assert.Empty(diagnostics.Items);
    }

    [Fact]
    public void Since_6_10_the_worker_id_is_rebuilt_in_full_where_the_comm_was_cut()
    {
        using var g = new SyntheticGuest();
        WriteWorker(g, -1, 257, 1000, "events_unbound", running: false);
        Assert.Equal("kworker/u257:1000-events_unbound", Name(g, "kworker/u257:10", WorkerFlags, fullWorkerIds: true).Name);
    }

    /// <summary>Inferred offsets have no worker id members: a 6.10+ id the comm cut comes from the thread's full_name,
    /// the name it was created with.</summary>
    [Fact]
    public void Since_6_10_without_the_id_members_a_cut_worker_id_comes_from_the_kthread_full_name()
    {
        using var g = new SyntheticGuest();
        WriteWorker(g, -1, 257, 1000, "events_unbound", running: true);
        var inferred = new KernelOffsets
        {
            Task = Views.Task, Mm = Views.Mm, Vma = Views.Vma, Module = Views.Module, Path = Views.Path, Maple = Views.Maple,
            CredUid = Views.CredUid, CredGid = Views.CredGid, CredEuid = Views.CredEuid, ListHeadPrev = Views.ListHeadPrev,
            SpecialMappingName = Views.SpecialMappingName, Pid = Views.Pid, Kthread = Views.Kthread,
            Workqueue = Views.Workqueue! with { WorkerId = null, PoolCpu = null, PoolId = null, PoolAttrs = null, AttrsNice = null },
        };
        string Named() => new TaskNames(g.Reader(IntrospectionLimits.Default), inferred, new Diagnostics(), true).ProcName(Task, 42, "kworker/u257:10", WorkerFlags);
        Assert.Equal("kworker/u257:10+events_unbound", Named()); // no full_name: the comm
        g.Text(Text, "kworker/u257:1000");
        g.U64(Kthread + KthreadFullName, Text);
        Assert.Equal("kworker/u257:1000+events_unbound", Named());
    }

    [Fact]
    public void Since_6_10_a_high_priority_worker_has_H_and_a_rescuer_is_kworker_R_wq()
    {
        using (var g = new SyntheticGuest())
        {
            WriteWorker(g, 1, 3, 7, "", running: false);
            g.I32(Attrs + AttrsNice, -20);
            Assert.Equal("kworker/1:7H", Name(g, "kworker/1:7H", WorkerFlags, fullWorkerIds: true).Name);
        }
        using (var g = new SyntheticGuest())
        {
            WriteWorker(g, 0, 0, 0, "mm_percpu_wq", running: false);
            g.U64(Worker + WorkerPool, 0); // a rescuer between rescues is attached to no pool: no desc either
            g.U64(Worker + WorkerRescueWq, Workqueue);
            g.Text(Workqueue + WqName, "mm_percpu_wq");
            Assert.Equal("kworker/R-mm_percpu_wq", Name(g, "kworker/R-mm_pe", WorkerFlags, fullWorkerIds: true).Name);
            Assert.Equal("kworker/R-mm_pe", Name(g, "kworker/R-mm_pe", WorkerFlags, fullWorkerIds: false).Name);
        }
    }

    [Fact]
    public void A_kernel_thread_is_named_by_its_full_name_cut_at_63_characters()
    {
        using var g = new SyntheticGuest();
        g.U64(Task + TaskWorkerPrivate, Kthread);
        g.U64(Kthread + KthreadFullName, Text);
        string full = "irq/24-pciehp-with-a-name-longer-than-sixty-three-characters-in-all";
        g.Text(Text, full);
        Assert.Equal(full[..TaskNames.MaxProcNameLength], Name(g, "irq/24-pciehp-w", KernelMacros.PF_KTHREAD, false).Name);
        // A user task's worker_private is not a struct kthread (io_uring workers use it): the comm stays.
        using var user = new SyntheticGuest();
        user.U64(Task + TaskWorkerPrivate, Kthread);
        user.U64(Kthread + KthreadFullName, Text);
        user.Text(Text, full);
        Assert.Equal("bash", new TaskNames(user.Reader(IntrospectionLimits.Default), Views, new Diagnostics(), false).ProcName(Task, 1, "bash", 0));
    }

    [Fact]
    public void Bad_worker_pointers_leave_the_comm_with_a_diagnostic()
    {
        using (var g = new SyntheticGuest())
        {
            g.U64(Task + TaskWorkerPrivate, 0x4141_4141_4141_4141); // not canonical, not kernel
            var (name, diagnostics) = Name(g, "kworker/0:1", WorkerFlags, fullWorkerIds: false);
            Assert.Equal("kworker/0:1", name);
            Assert.Contains(diagnostics.Items, d => d.Area == "task names" && d.Message.Contains("0x4141414141414141"));
        }
        using (var g = new SyntheticGuest())
        {
            g.U64(Task + TaskWorkerPrivate, Kthread);
            g.U64(Kthread + KthreadData, Unmapped);
            WriteWorker(g, 0, 0, 1, "rcu_gp", false);
            g.U64(Kthread + KthreadData, Unmapped);
            var (name, diagnostics) = Name(g, "kworker/0:1", WorkerFlags, fullWorkerIds: true);
            Assert.Equal("kworker/0:1", name);
            Assert.Contains(diagnostics.Items, d => d.Message.Contains("struct worker"));
        }
    }

    [Fact]
    public void A_user_task_flagged_as_a_worker_keeps_its_comm_with_a_diagnostic()
    {
        using var g = new SyntheticGuest();
        WriteWorker(g, 0, 0, 1, "rcu_gp", false);
        var (name, diagnostics) = Name(g, "kworker/0:1", KernelMacros.PF_WQ_WORKER, fullWorkerIds: false);
        Assert.Equal("kworker/0:1", name);
        Assert.Contains(diagnostics.Items, d => d.Message.Contains("without PF_KTHREAD"));
    }

    [Fact]
    public void Without_the_view_types_names_stay_the_comm_and_the_groups_are_null()
    {
        var plain = new SyntheticKernelBtf().Offsets();
        Assert.Null(plain.ModuleUse);
        Assert.Null(plain.Kthread);
        Assert.Null(plain.Workqueue);
        Assert.Null(plain.RunQueue);
        Assert.NotNull(Views.ModuleUse);
        Assert.NotNull(Views.Workqueue);
        Assert.Equal((RqCpu, RqIdle), (Views.RunQueue!.Cpu, Views.RunQueue.Idle));
        using var g = new SyntheticGuest();
        WriteWorker(g, 0, 0, 1, "rcu_gp", false);
        var names = new TaskNames(g.Reader(IntrospectionLimits.Default), plain, new Diagnostics(), false);
        Assert.Equal("kworker/0:1", names.ProcName(Task, 42, "kworker/0:1", WorkerFlags));
    }

    // ---------------------------------------------------------------- modules: used by

    private const ulong ModulesHead = SyntheticGuest.Base + 0x30_0000;
    private const ulong Uses = SyntheticGuest.Base + 0x40_0000;
    private static ulong Module(int k) => SyntheticGuest.Base + 0x31_0000 + (ulong)k * ModuleSize;
    private static ulong Use(int u) => Uses + (ulong)u * 0x40;
    private static readonly VirtualRange ModuleArea = new(0xffff_ffff_c000_0000, 0xffff_ffff_ff00_0000);

    private static void WriteModule(SyntheticGuest g, int k, string name)
    {
        g.Text(Module(k) + ModuleName, name);
        g.I32(Module(k) + ModuleRefcnt, 1);
        g.U64(Module(k) + ModuleMem, 0xffff_ffff_c000_0000 + (ulong)k * 0x10000);
        g.U32(Module(k) + ModuleMem + 8, 0x1000);
        g.CircularList([Module(k) + ModuleSourceList]); // nobody uses it
    }

    /// <summary><paramref name="users"/> use module <paramref name="used"/>, in list order, through module_use entries from <paramref name="firstUse"/>.</summary>
    private static void WriteUsers(SyntheticGuest g, int used, int firstUse, params int[] users)
    {
        for (int i = 0; i < users.Length; i++) g.U64(Use(firstUse + i) + UseSource, Module(users[i]));
        g.I32(Module(used) + ModuleRefcnt, 1 + users.Length);
        g.CircularList([Module(used) + ModuleSourceList, .. users.Select((_, i) => Use(firstUse + i) + UseSourceList)]);
    }

    private const ulong TaintFlags = SyntheticGuest.Base + 0x48_0000;

    private static (IReadOnlyList<KernelModule>, Diagnostics) ReadModules(SyntheticGuest g, int count, IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        g.CircularList([ModulesHead, .. Enumerable.Range(0, count).Select(k => Module(k) + ModuleListAt)]);
        var reader = g.Reader(limits);
        var diagnostics = new Diagnostics();
        var modules = new ModuleList(reader, Views, new ListWalker(reader, diagnostics, Views.ListHeadPrev), limits, diagnostics, ModuleArea, TaintFlags).Read(ModulesHead);
        return (modules, diagnostics);
    }

    [Fact]
    public void Used_by_lists_the_users_from_source_list_as_proc_modules_prints_it()
    {
        using var g = new SyntheticGuest();
        WriteModule(g, 0, "crc_itu_t");
        WriteModule(g, 1, "omfs");
        WriteModule(g, 2, "udf");
        WriteModule(g, 3, "forever");
        WriteUsers(g, 0, 0, 2, 1);
        g.U64(Module(3) + ModuleInit, 0xffff_ffff_c003_0000); // init without exit: [permanent]
        var (modules, diagnostics) = ReadModules(g, 4);
        Assert.Equal(["crc_itu_t", "omfs", "udf", "forever"], modules.Select(m => m.Name));
        Assert.Equal(["udf,omfs,", "-", "-", "[permanent],"], modules.Select(m => m.ProcUsedBy));
        Assert.Equal(2, modules[0].References);
        Assert.False(diagnostics.IsIncomplete);
    }

    [Fact]
    public void Used_by_is_null_when_the_kernel_types_lack_module_use()
    {
        using var g = new SyntheticGuest();
        g.Text(Module(0) + ModuleName, "crc7");
        g.U64(Module(0) + ModuleMem, 0xffff_ffff_c000_0000);
        g.U32(Module(0) + ModuleMem + 8, 0x1000);
        g.CircularList([ModulesHead, Module(0) + ModuleListAt]);
        var reader = g.Reader(IntrospectionLimits.Default);
        var plain = new SyntheticKernelBtf().Offsets();
        var diagnostics = new Diagnostics();
        var m = Assert.Single(new ModuleList(reader, plain, new ListWalker(reader, diagnostics), IntrospectionLimits.Default, diagnostics, ModuleArea).Read(ModulesHead));
        Assert.Null(m.UsedBy);
        Assert.Null(m.ProcUsedBy);
    }

    [Fact]
    public void A_cyclic_or_overlong_users_list_is_bounded_and_marked_incomplete()
    {
        using (var g = new SyntheticGuest())
        {
            WriteModule(g, 0, "victim");
            WriteModule(g, 1, "user");
            WriteUsers(g, 0, 0, 1, 1, 1);
            g.U64(Use(2) + UseSourceList, Use(1) + UseSourceList); // the last entry loops back, never to the head
            var (modules, diagnostics) = ReadModules(g, 2);
            Assert.Equal(["user", "user", "user"], modules[0].UsedBy);
            Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Area == "users of module 'victim'" && d.Message.Contains("cycle"));
        }
        using (var g = new SyntheticGuest())
        {
            WriteModule(g, 0, "victim");
            WriteModule(g, 1, "user");
            WriteUsers(g, 0, 0, 1, 1, 1, 1, 1);
            var (modules, diagnostics) = ReadModules(g, 2, IntrospectionLimits.Default with { MaxModuleUsers = 2 });
            Assert.Equal(2, modules[0].UsedBy!.Count);
            Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message.Contains("limit of 2 entries"));
        }
        using (var g = new SyntheticGuest())
        {
            WriteModule(g, 0, "victim");
            WriteUsers(g, 0, 0, 0);
            g.U64(Use(0) + UseSource, Unmapped);
            var (modules, diagnostics) = ReadModules(g, 1);
            Assert.Empty(modules[0].UsedBy!);
            Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message.Contains("unreadable"));
        }
    }

    [Fact]
    public void Taint_letters_are_the_module_flags_of_the_set_bits_as_module_flags_prints_them()
    {
        using var g = new SyntheticGuest();
        // taint_flags[]: bit 0 P (module), 5 B (not a module flag), 12 O (module), 13 E (module).
        foreach (var (bit, letter, module) in new[] { (0, 'P', 1), (5, 'B', 0), (12, 'O', 1), (13, 'E', 1) })
            g.Text(TaintFlags + (ulong)(bit * TaintFlagSize), $"{letter}-{(char)module}"); // c_true, c_false, module
        WriteModule(g, 0, "tamper");
        g.U64(Module(0) + ModuleTaints, 1UL << 12 | 1UL << 13 | 1UL << 5);
        WriteModule(g, 1, "loading");
        g.I32(Module(1) + ModuleStateAt, 1); // MODULE_STATE_COMING
        g.U64(Module(1) + ModuleTaints, 1UL << 12);
        WriteModule(g, 2, "clean");
        WriteModule(g, 3, "only_b");
        g.U64(Module(3) + ModuleTaints, 1UL << 5); // taints set, but no module flag among them: "()"
        var (modules, diagnostics) = ReadModules(g, 4);
        Assert.Equal(["OE", "O", "", ""], modules.Select(m => m.Taints));
        Assert.Equal(["(OE)", "(O+)", null, "()"], modules.Select(m => m.ProcFlags));
        Assert.Empty(diagnostics.Items);
    }

    [Fact]
    public void A_taint_bit_without_a_taint_flags_entry_makes_taints_unavailable_with_a_diagnostic()
    {
        using var g = new SyntheticGuest();
        WriteModule(g, 0, "tamper");
        g.U64(Module(0) + ModuleTaints, 1UL << 63); // entry 63: zero bytes, no letter
        var (modules, diagnostics) = ReadModules(g, 1);
        Assert.Null(modules[0].Taints);
        Assert.Null(modules[0].ProcFlags);
        Assert.Contains(diagnostics.Items, d => d.Message.Contains("taint bit 63"));
    }

    // ---------------------------------------------------------------- per-CPU areas and idle tasks

    private const ulong NrCpuIds = SyntheticGuest.Base + 0x50_0000;
    private const ulong PerCpuOffset = SyntheticGuest.Base + 0x50_1000;
    private const ulong PossibleMask = SyntheticGuest.Base + 0x50_2000;
    /// <summary>`runqueues` as kallsyms gives it: an offset into the per-CPU section, small.</summary>
    private const ulong Runqueues = 0x3_0000;
    private const ulong PerCpuBase = SyntheticGuest.Base + 0x20_0000;
    private static ulong CpuArea(int cpu) => PerCpuBase + (ulong)cpu * 0x4_0000 - Runqueues;
    private static ulong Idle(int cpu) => SyntheticGuest.Base + 0x10_0000 + (ulong)cpu * TaskSize;

    private static KernelSymbols Symbols(bool possibleMask) => new(
    [
        new(NrCpuIds, 'D', "nr_cpu_ids"), new(PerCpuOffset, 'D', "__per_cpu_offset"), new(Runqueues, 'D', "runqueues"),
        .. possibleMask ? [new KernelSymbol(PossibleMask, 'D', "__cpu_possible_mask")] : Array.Empty<KernelSymbol>(),
    ]);

    /// <summary><paramref name="cpus"/> CPUs, each with its run queue and an idle task swapper/N (pid 0, PF_IDLE).</summary>
    private static void WriteCpus(SyntheticGuest g, int cpus)
    {
        g.U32(NrCpuIds, (uint)cpus);
        for (int cpu = 0; cpu < cpus; cpu++)
        {
            g.U64(PerCpuOffset + (ulong)cpu * 8, CpuArea(cpu));
            ulong rq = CpuArea(cpu) + Runqueues;
            g.I32(rq + RqCpu, cpu);
            g.U64(rq + RqIdle, Idle(cpu));
            g.Text(Idle(cpu) + TaskComm, $"swapper/{cpu}");
            g.U32(Idle(cpu) + TaskFlags, KernelMacros.PF_IDLE | KernelMacros.PF_KTHREAD);
            g.CircularList([Idle(cpu) + TaskThreadGroup]);
        }
    }

    private static (IReadOnlyList<IdleTask>, Diagnostics) ReadIdle(SyntheticGuest g, KernelSymbols symbols, IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        var reader = g.Reader(limits);
        var diagnostics = new Diagnostics();
        var lists = new ListWalker(reader, diagnostics, Views.ListHeadPrev);
        var tasks = new TaskList(reader, Views, Idle(0), limits, diagnostics, new PathResolver(reader, Views, limits, diagnostics), lists);
        return (new IdleTasks(reader, Views, symbols, limits, diagnostics, tasks).Read(), diagnostics);
    }

    [Fact]
    public void Each_possible_cpu_has_its_idle_task_from_its_run_queue()
    {
        using var g = new SyntheticGuest();
        WriteCpus(g, 4);
        g.U64(PossibleMask, 0b1011); // cpu 2 is a hole in cpu_possible_mask: it has no run queue
        g.U64(PerCpuOffset + 2 * 8, 0x4141_4141_4141_4141);
        var (idle, diagnostics) = ReadIdle(g, Symbols(possibleMask: true));
        Assert.Equal([0, 1, 3], idle.Select(i => i.Cpu));
        Assert.Equal(["swapper/0", "swapper/1", "swapper/3"], idle.Select(i => i.Task.Name));
        Assert.All(idle, i => Assert.Equal((0, i.Cpu), (i.Task.Pid, i.Task.IdleCpu!.Value)));
        Assert.False(diagnostics.IsIncomplete);
    }

    [Fact]
    public void A_run_queue_naming_another_cpu_or_an_idle_task_that_is_not_one_is_rejected()
    {
        using var g = new SyntheticGuest();
        WriteCpus(g, 3);
        g.I32(CpuArea(1) + Runqueues + RqCpu, 0); // cpu 1's slot leads to cpu 0's run queue
        g.I32(Idle(2) + TaskPid, 1234); // cpu 2's rq->idle is an ordinary task
        var (idle, diagnostics) = ReadIdle(g, Symbols(possibleMask: false));
        Assert.Equal([0], idle.Select(i => i.Cpu));
        Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message == "cpu 1: the run queue at 0x" + (CpuArea(1) + Runqueues).ToString("x") + " names cpu 0");
        Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message.Contains("cpu 2:") && d.Message.Contains("has pid 1234"));
    }

    [Fact]
    public void Nr_cpu_ids_is_capped_by_MaxCpus_and_the_message_states_both_numbers()
    {
        using var g = new SyntheticGuest();
        WriteCpus(g, 3);
        g.U32(NrCpuIds, 100_000);
        var reader = g.Reader(IntrospectionLimits.Default);
        var areas = PerCpuAreas.Read(reader, Symbols(possibleMask: false), 2, "MaxCpus");
        Assert.Equal([0, 1], areas.Cpus.Select(c => c.Cpu));
        var gap = Assert.Single(areas.Gaps);
        Assert.Equal((PerCpuGapKind.CapReached, "nr_cpu_ids is 100000: only the first 2 CPUs are read (the limit MaxCpus is 2)"), (gap.Kind, gap.Message));
    }

    [Fact]
    public void Without_smp_symbols_or_with_nr_cpu_ids_zero_nothing_is_read()
    {
        using var g = new SyntheticGuest();
        var reader = g.Reader(IntrospectionLimits.Default);
        var none = PerCpuAreas.Read(reader, new KernelSymbols([]), 64, "MaxCpus");
        Assert.Equal(PerCpuGapKind.Unavailable, Assert.Single(none.Gaps).Kind);
        var zero = PerCpuAreas.Read(reader, Symbols(possibleMask: false), 64, "MaxCpus");
        Assert.Empty(zero.Cpus);
        Assert.Equal(PerCpuGapKind.Corrupt, Assert.Single(zero.Gaps).Kind);
    }

    [Fact]
    public void Release_versions_decide_the_worker_name_format()
    {
        Assert.True(Periscope.Linux.LinuxKernel.ReleaseVersion("6.12.48+deb13-amd64") >= KernelMacros.WorkerIdFormatSince);
        Assert.False(Periscope.Linux.LinuxKernel.ReleaseVersion("6.1.0-57-amd64") >= KernelMacros.WorkerIdFormatSince);
        Assert.True(Periscope.Linux.LinuxKernel.ReleaseVersion("7.0.13-amd64") >= KernelMacros.WorkerIdFormatSince);
        Assert.Equal(new Version(0, 0), Periscope.Linux.LinuxKernel.ReleaseVersion("?"));
    }

    [Theory]
    [InlineData("6.1.0-57-amd64", "parent")]
    [InlineData("6.12.117+deb13-amd64", "parent")]
    [InlineData("6.14.11-amd64", "parent")]
    [InlineData("6.15.0-1-amd64", "__parent")]
    [InlineData("7.3.4+deb13-amd64", "__parent")]
    [InlineData("?", "parent")]
    public void The_release_names_kernfs_nodes_parent_member(string release, string member)
    {
        Assert.Equal(member, KernelMacros.KernfsParentMember(Periscope.Linux.LinuxKernel.ReleaseVersion(release)));
        Assert.Equal(release, Periscope.Linux.LinuxKernel.ReleaseOf($"Linux version {release} (debian-kernel@lists.debian.org) #1 SMP"));
    }

    [Fact]
    public void A_btf_kernfs_node_that_disagrees_with_the_release_is_reported()
    {
        var v7 = new Version(7, 3);
        var v6 = new Version(6, 12);
        Assert.Null(KernelMacros.ConfirmKernfsParent(m => m == "__parent", v7));
        Assert.Null(KernelMacros.ConfirmKernfsParent(m => m == "parent", v6));
        Assert.Null(KernelMacros.ConfirmKernfsParent(_ => false, v7));
        Assert.Contains("has parent, not __parent", KernelMacros.ConfirmKernfsParent(m => m == "parent", v7));
        Assert.Contains("has __parent, not parent", KernelMacros.ConfirmKernfsParent(m => m == "__parent", v6));
        // ps --full's members list both names: a kernel has one, and the offset table lists the one it has.
        Assert.Contains(("kernfs_node", "parent"), ProcessDetailOffsets.Members);
        Assert.Contains(("kernfs_node", "__parent"), ProcessDetailOffsets.Members);
    }
}
