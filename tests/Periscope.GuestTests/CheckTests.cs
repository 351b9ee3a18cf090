using System.Globalization;
using System.Text.Json;
using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Targets;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>Baseline-free invariant checks on the real guest and on copies with rootkit-style list surgery applied.</summary>
[Collection("5-level guest")]
public sealed class CheckTests(FiveLevelGuest guest, ITestOutputHelper output)
{
    private LinuxKernel Kernel => guest.Dump.Kernel;

    private CheckReport CheckPatched(Action<PatchedDump> attack)
    {
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        attack(d);
        using var t = d.Open();
        var report = new InvariantChecks(t.Kernel).Run();
        foreach (var f in report.Findings.Where(f => f.Severity != Severity.Info)) output.WriteLine($"{f.Severity} {f.Check} {f.Kind} {f.Subject} 0x{f.Address:x} {f.Detail}");
        foreach (var o in report.Outcomes.Where(o => o.Status != CheckStatus.Complete))
            foreach (var g in o.Gaps) output.WriteLine($"{o.Check} {o.Status} {g.Kind} {g.Detail}");
        return report;
    }

    /// <summary>What list_del does, minus the poisoning: the neighbours forget the node.</summary>
    private void Unlink(PatchedDump d, ulong node)
    {
        Assert.True(Kernel.Reader.TryPointer(node, out ulong next));
        Assert.True(Kernel.Reader.TryPointer(node + 8, out ulong prev));
        d.WriteU64(prev, next);
        d.WriteU64(next + 8, prev);
    }

    private ulong Offset(string type, string member) => (ulong)Kernel.Btf!.FindStruct(type)!.Offset(member);

    private Periscope.Linux.Model.LinuxTask Sleeper() => Kernel.Tasks.First(t => t.Comm == "sleep" && guest.Truth.Processes.ContainsKey(t.Pid));

    [Fact]
    public void Clean_guest_is_clean_and_complete_and_check_exits_0()
    {
        var report = new InvariantChecks(Kernel).Run();
        foreach (var o in report.Outcomes) output.WriteLine($"{o.Check} {o.Status} {string.Join("; ", o.Gaps.Select(g => g.Detail))}");
        Assert.All(report.Outcomes, o => Assert.Equal(CheckStatus.Complete, o.Status));
        Assert.Equal(Enum.GetValues<CheckId>().Order(), report.Outcomes.Select(o => o.Check).Order());
        Assert.DoesNotContain(report.Findings, f => f.Severity >= Severity.Warning);
        Assert.Equal(CheckVerdict.Clean, report.Verdict);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, text, err) = CliRun.Run("check", "--dump", guest.DumpPath);
        output.WriteLine($"periscope check --dump (in process, JIT): {clock.Elapsed.TotalSeconds:F2} s, {report.Findings.Count} info findings");
        Assert.True(code == 0, text + err);
        Assert.Contains("0 critical", text);

        (code, text, err) = CliRun.Run("check", "--dump", guest.DumpPath, "--json");
        Assert.True(code == 0, text + err);
        using var json = JsonDocument.Parse(text);
        Assert.Equal("clean", json.RootElement.GetProperty("verdict").GetString());
        Assert.True(json.RootElement.GetProperty("complete").GetBoolean());
        var checks = json.RootElement.GetProperty("checks").EnumerateArray().ToList();
        Assert.Equal(Enum.GetValues<CheckId>().Length, checks.Count);
        Assert.All(checks, c => Assert.Equal("complete", c.GetProperty("status").GetString()));
        Assert.Contains(checks, c => c.GetProperty("check").GetString() == "run-queues");
    }

    [Fact]
    public void Module_unlinked_from_the_list_is_found_in_the_module_area()
    {
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        var report = CheckPatched(d => Unlink(d, dummy.Address + (ulong)Kernel.Offsets.Module.List));
        var f = Assert.Single(report.Findings, x => x.Kind == FindingKind.HiddenModule);
        Assert.Equal("dummy", f.Subject);
        Assert.Equal(dummy.Address, f.Address);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal(CheckVerdict.Findings, report.Verdict);
    }

    [Fact]
    public void Task_unlinked_from_the_task_list_is_found_through_the_pid_namespace()
    {
        var victim = Sleeper();
        var report = CheckPatched(d => Unlink(d, victim.Address + (ulong)Kernel.Offsets.Task.Tasks));
        // Found twice, independently: through the pid namespace and through its parent's children list.
        var hidden = report.Findings.Where(x => x.Kind == FindingKind.HiddenTask).ToList();
        Assert.Equal(2, hidden.Count);
        Assert.All(hidden, f => Assert.Equal(victim.Address, f.Address));
        Assert.All(hidden, f => Assert.Equal(Severity.Critical, f.Severity));
        Assert.All(hidden, f => Assert.Equal($"pid {victim.Pid} (sleep)", f.Subject));
        Assert.Contains(hidden, f => f.Check == CheckId.PidNamespace && f.Detail.Contains("pid namespace"));
        Assert.Contains(hidden, f => f.Check == CheckId.ChildrenLists && f.Detail.Contains($"child of pid {victim.ParentPid}"));
    }

    /// <summary>A task on a CPU's fair run queue but on no list: the run-queue view alone sees it. The dump is edited
    /// so cpu 0's cfs tree holds only the victim's sched_entity, and the victim is unlinked from the task list.</summary>
    [Fact]
    public void Task_queued_on_a_run_queue_but_unlisted_is_found_through_the_run_queue()
    {
        var victim = Sleeper();
        var k = Kernel;
        Assert.True(k.Symbols.TryGetAddress("__per_cpu_offset", out ulong perCpu));
        Assert.True(k.Reader.TryU64(perCpu, out ulong cpu0));
        ulong rq = cpu0 + k.Symbols.GetAddress("runqueues");
        Assert.True(k.Reader.TryI32(rq + Offset("rq", "cpu"), out int cpu));
        Assert.Equal(0, cpu);
        ulong root = rq + Offset("rq", "cfs") + Offset("cfs_rq", "tasks_timeline.rb_root.rb_node");
        ulong runNode = victim.Address + Offset("task_struct", "se") + Offset("sched_entity", "run_node");

        var report = CheckPatched(d =>
        {
            d.WriteU64(root, runNode);
            d.WriteU64(runNode + Offset("rb_node", "rb_left"), 0);
            d.WriteU64(runNode + Offset("rb_node", "rb_right"), 0);
            Unlink(d, victim.Address + (ulong)Kernel.Offsets.Task.Tasks);
        });
        var f = Assert.Single(report.Findings, x => x.Check == CheckId.RunQueues);
        Assert.Equal(FindingKind.HiddenTask, f.Kind);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal(victim.Address, f.Address);
        Assert.Equal($"pid {victim.Pid} (sleep)", f.Subject);
        Assert.Contains("fair run queue of cpu 0", f.Detail);
    }

    /// <summary>A thread unlinked from its group's thread_group list (the list the model walks on 6.1) stays on
    /// signal->thread_head: the thread-group view finds it, as does the pid namespace (every thread has a pid).</summary>
    [Fact]
    public void Thread_unlinked_from_its_thread_group_is_found_through_signal_thread_head()
    {
        var threaded = Kernel.Tasks.Single(x => x.Comm == "workload" && x.ThreadCount == 4);
        var thread = threaded.Threads[2];
        Assert.NotEqual(threaded.Address, thread.Address);
        var report = CheckPatched(d => Unlink(d, thread.Address + (ulong)Kernel.Offsets.Task.ThreadGroup!.Value));

        var found = Assert.Single(report.Findings, x => x.Check == CheckId.ThreadGroups);
        Assert.Equal(FindingKind.HiddenTask, found.Kind);
        Assert.Equal(Severity.Critical, found.Severity);
        Assert.Equal(thread.Address, found.Address);
        Assert.Equal($"pid {thread.Tid} ({thread.Comm})", found.Subject);
        Assert.Contains($"a thread of pid {threaded.Pid} (on its signal->thread_head list)", found.Detail);
        Assert.Contains(report.Findings, x => x.Check == CheckId.PidNamespace && x.Address == thread.Address);
    }

    [Fact]
    public void Process_marked_with_an_undefined_flag_bit_is_critical_with_the_bit_named()
    {
        var victim = Sleeper();
        uint flags = victim.Flags | 0x40000000;
        var report = CheckPatched(d => d.Write(victim.Address + (ulong)Kernel.Offsets.Task.Flags, BitConverter.GetBytes(flags)));
        var f = Assert.Single(report.Findings, x => x.Kind == FindingKind.UndefinedTaskFlags);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal($"pid {victim.Pid} (sleep)", f.Subject);
        Assert.Equal(victim.Address, f.Address);
        Assert.Contains("0x40000000 (bit 30)", f.Detail);
        Assert.Equal(CheckStatus.Complete, CheckOutcomeStatus(report, CheckId.TaskFlags));
    }

    private static CheckStatus CheckOutcomeStatus(CheckReport report, CheckId id) => report.Outcomes.Single(o => o.Check == id).Status;

    [Fact]
    public void User_process_flagged_as_kernel_thread_is_critical()
    {
        var victim = Kernel.Tasks.Single(t => t.Comm == "renamed-proc");
        uint flags = victim.Flags | Periscope.Linux.Model.LinuxTask.PfKthread;
        var report = CheckPatched(d => d.Write(victim.Address + (ulong)Kernel.Offsets.Task.Flags, BitConverter.GetBytes(flags)));
        var f = Assert.Single(report.Findings, x => x.Kind == FindingKind.KernelThreadWithUserMemory);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal(victim.Address, f.Address);
    }

    [Fact]
    public void Syscall_pointing_into_a_module_is_critical()
    {
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        ulong slot = Kernel.Symbols.GetAddress("sys_call_table") + 139 * 8;
        var report = CheckPatched(d => d.WriteU64(slot, dummy.Base + 0x10));
        var f = Assert.Single(report.Findings, x => x.Check == CheckId.SyscallTable);
        Assert.Equal(slot, f.Address);
        Assert.Contains("module dummy", f.Detail);
    }

    /// <summary>A check that cannot finish says so: nr_cpu_ids raised past MaxCheckCpus leaves the run-queue view
    /// incomplete (and the CPUs past the real ones hold no run queue of theirs); no findings, so `check` exits 3.</summary>
    [Fact]
    public void Check_that_cannot_finish_is_reported_and_check_exits_3()
    {
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.Write(Kernel.Symbols.GetAddress("nr_cpu_ids"), BitConverter.GetBytes(0x7fffffff));
        d.CloseWriter();

        var (code, text, err) = CliRun.Run("check", "--dump", d.Path, "--json");
        output.WriteLine(text + err);
        Assert.Equal(3, code);
        using var json = JsonDocument.Parse(text);
        Assert.Equal("incomplete", json.RootElement.GetProperty("verdict").GetString());
        Assert.False(json.RootElement.GetProperty("complete").GetBoolean());
        Assert.DoesNotContain(json.RootElement.GetProperty("findings").EnumerateArray(), f => f.GetProperty("severity").GetString() != "info");
        var checks = json.RootElement.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("check").GetString()!);
        var runQueues = checks["run-queues"];
        Assert.Equal("incomplete", runQueues.GetProperty("status").GetString());
        // The CPUs past the guest's one possible CPU are skipped (cpu_possible_mask), so the budget is the only gap.
        var gap = Assert.Single(runQueues.GetProperty("gaps").EnumerateArray());
        Assert.Equal("walk-budget", gap.GetProperty("kind").GetString());
        Assert.Equal("nr_cpu_ids is 2147483647: only the first 8192 run queues are read (the limit MaxCheckCpus is 8192)", gap.GetProperty("detail").GetString());
        Assert.All(checks.Where(c => c.Key != "run-queues"), c => Assert.Equal("complete", c.Value.GetProperty("status").GetString()));

        (code, text, _) = CliRun.Run("check", "--dump", d.Path);
        Assert.Equal(3, code);
        Assert.Matches(@"run-queues +incomplete +walk-budget +nr_cpu_ids is 2147483647", text);
        Assert.Contains("verdict incomplete", text);
    }

    /// <summary>Issue 6: random bytes over the task area cut the task list after init_task; every task then seems
    /// "hidden" and a garbage child read as pid 0. Tasks judged against a broken task list are warnings at most,
    /// sightings that do not look like live tasks are gaps, and the run says it is incomplete.</summary>
    [Fact]
    public void Random_bytes_over_a_task_give_no_confident_hidden_task_and_an_incomplete_run()
    {
        var first = Kernel.Tasks.Single(t => t.Pid == 1);
        var noise = new byte[Kernel.Offsets.Task.Size];
        new Random(6).NextBytes(noise);
        var report = CheckPatched(d => d.Write(first.Address, noise));

        Assert.DoesNotContain(report.Findings, f => f.Kind == FindingKind.HiddenTask && f.Severity == Severity.Critical);
        Assert.DoesNotContain(report.Findings, f => f.Subject.StartsWith("pid 0 ", StringComparison.Ordinal));
        Assert.False(report.IsComplete);
        Assert.NotEqual(CheckStatus.Complete, CheckOutcomeStatus(report, CheckId.KernelLists));
        // The live tasks the pid namespace still knows are reported, but as warnings that name the broken list.
        var seen = report.Findings.Where(f => f.Kind == FindingKind.HiddenTask).ToList();
        Assert.NotEmpty(seen);
        Assert.All(seen, f => Assert.Contains("could not be walked completely", f.Detail));
    }
}

/// <summary>
/// `check` against the live tamper guest after periscope_tamper.ko marks a process with an undefined task->flags bit.
/// Nothing filters /proc in this guest, so the process stays visible there; the point is that Periscope flags it.
/// </summary>
[Collection("tamper guest")]
public sealed class FlagHiddenProcessCheckTests(TamperGuest guest, ITestOutputHelper output)
{
    [Fact]
    public void Process_marked_by_the_module_is_reported_by_check_with_its_flag_bit()
    {
        int pid = guest.StartSleep(3300);
        try
        {
            var r = TamperReport.Parse(guest.Tamper($"flaghide {pid}")[0], "flaghide");
            output.WriteLine(r.Line);
            Assert.Equal(pid.ToString(CultureInfo.InvariantCulture), r.Words[0]);
            Assert.Equal(0x40000000UL, r.Hex("bit"));
            Assert.Equal(r.Hex("old") | 0x40000000UL, r.Hex("new"));
            ulong task = r.Hex("task");

            var (code, text, err) = CliRun.Run("check", "--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath, "--pause", "--json");
            output.WriteLine(text + err);
            Assert.Equal(1, code);
            using var json = JsonDocument.Parse(text);
            var marked = json.RootElement.GetProperty("findings").EnumerateArray()
                .Where(f => f.GetProperty("kind").GetString() == "undefined-task-flags").ToList();
            var f = Assert.Single(marked);
            Assert.Equal($"pid {pid} (sleep)", f.GetProperty("subject").GetString());
            Assert.Equal($"0x{task:x}", f.GetProperty("address").GetString());
            Assert.Equal("critical", f.GetProperty("severity").GetString());
            Assert.Contains("0x40000000 (bit 30)", f.GetProperty("detail").GetString());
        }
        finally { guest.Run($"kill {pid}"); }
        guest.AssertKernelHealthy();
    }
}

/// <summary>The demo guest on two vCPUs: cpu 1 has a run queue of its own, reached through __per_cpu_offset[1], and an
/// idle task (swapper/1, pid 0) that is on no task list by design.</summary>
public sealed class TwoCpuGuest() : GuestFixture("max", cpus: 2);

[CollectionDefinition("two-cpu guest")]
public sealed class TwoCpuCollection : ICollectionFixture<TwoCpuGuest>;

[Collection("two-cpu guest")]
public sealed class RunQueueCheckTests(TwoCpuGuest guest, ITestOutputHelper output)
{
    private LinuxKernel Kernel => guest.Dump.Kernel;

    private ulong Offset(string type, string member) => (ulong)Kernel.Btf!.FindStruct(type)!.Offset(member);

    private ulong RunQueue(int cpu)
    {
        Assert.True(Kernel.Reader.TryU64(Kernel.Symbols.GetAddress("__per_cpu_offset") + (ulong)cpu * 8, out ulong offset));
        return offset + Kernel.Symbols.GetAddress("runqueues");
    }

    [Fact]
    public void Second_cpu_idle_task_is_expected_and_the_guest_checks_clean()
    {
        // cpu 1's idle task: pid 0, PF_IDLE, not on the task list (only cpu 0's, init_task, is).
        Assert.True(Kernel.Reader.TryPointer(RunQueue(1) + Offset("rq", "idle"), out ulong idle));
        Assert.DoesNotContain(Kernel.Tasks, t => t.Address == idle);
        Assert.True(Kernel.Reader.TryI32(idle + (ulong)Kernel.Offsets.Task.Pid, out int pid));
        Assert.Equal(0, pid);

        var report = new InvariantChecks(Kernel).Run();
        foreach (var o in report.Outcomes) output.WriteLine($"{o.Check} {o.Status} {string.Join("; ", o.Gaps.Select(g => g.Detail))}");
        Assert.Equal(CheckVerdict.Clean, report.Verdict);
        Assert.Equal(0, CliRun.Run("check", "--dump", guest.DumpPath).Code);
    }

    /// <summary>A copy of the dump in which a sleeping task is the only entity of cpu 1's fair tree and is unlinked from
    /// the task list: hidden everywhere but that run queue.</summary>
    private PatchedDump HideOnSecondCpu(out Periscope.Linux.Model.LinuxTask victim)
    {
        var task = Kernel.Tasks.First(t => t.Comm == "sleep" && guest.Truth.Processes.ContainsKey(t.Pid));
        ulong root = RunQueue(1) + Offset("rq", "cfs") + Offset("cfs_rq", "tasks_timeline.rb_root.rb_node");
        ulong runNode = task.Address + Offset("task_struct", "se") + Offset("sched_entity", "run_node");
        ulong tasksNode = task.Address + (ulong)Kernel.Offsets.Task.Tasks;
        Assert.True(Kernel.Reader.TryPointer(tasksNode, out ulong next));
        Assert.True(Kernel.Reader.TryPointer(tasksNode + 8, out ulong prev));
        var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WriteU64(root, runNode);
        d.WriteU64(runNode + Offset("rb_node", "rb_left"), 0);
        d.WriteU64(runNode + Offset("rb_node", "rb_right"), 0);
        d.WriteU64(prev, next);
        d.WriteU64(next + 8, prev);
        victim = task;
        return d;
    }

    /// <summary>The run-queue view, and only it, reports the victim as a hidden task on cpu 1's fair queue.</summary>
    private void AssertFoundOnSecondCpu(LinuxKernel kernel, Periscope.Linux.Model.LinuxTask victim)
    {
        var report = new InvariantChecks(kernel).Run();
        foreach (var f in report.Findings.Where(f => f.Severity != Severity.Info)) output.WriteLine($"{f.Severity} {f.Check} {f.Subject} {f.Detail}");
        var found = Assert.Single(report.Findings, x => x.Check == CheckId.RunQueues);
        Assert.Equal(FindingKind.HiddenTask, found.Kind);
        Assert.Equal(victim.Address, found.Address);
        Assert.Contains("fair run queue of cpu 1", found.Detail);
    }

    [Fact]
    public void Task_queued_only_on_the_second_cpu_is_found_there()
    {
        Assert.True(Kernel.Reader.TryI32(RunQueue(1) + Offset("rq", "cpu"), out int cpu));
        Assert.Equal(1, cpu);
        using var d = HideOnSecondCpu(out var victim);
        using var t = d.Open();
        AssertFoundOnSecondCpu(t.Kernel, victim);
    }
    /// <summary>Without BTF and without data symbols (as on Debian's i386 kernels): runqueues and __per_cpu_offset come
    /// from idle_task's code, the struct rq and entity offsets are inferred, nr_cpu_ids is the vCPU count; both CPUs'
    /// run queues are walked, complete and clean.</summary>
    [Fact]
    public void Without_BTF_or_data_symbols_both_run_queues_are_walked_complete_and_clean()
    {
        using var t = Target.OpenDump(guest.DumpPath, new TargetOptions { NoBtf = true, NoDataSymbols = true });
        var k = t.Kernel;
        Assert.Null(k.Btf);
        Assert.True(k.DataAddresses.TryGet("runqueues", out var runqueues));
        Assert.Equal(Kernel.Symbols.GetAddress("runqueues"), runqueues.Address);
        Assert.Contains("idle_task", runqueues.How);
        Assert.True(k.DataAddresses.TryGet("__per_cpu_offset", out var perCpu));
        Assert.Equal(Kernel.Symbols.GetAddress("__per_cpu_offset"), perCpu.Address);
        var report = new InvariantChecks(k).Run();
        var outcome = report.Outcomes.Single(o => o.Check == CheckId.RunQueues);
        Assert.True(outcome.Status == CheckStatus.Complete, string.Join("; ", outcome.Gaps.Select(g => g.Detail)));
        Assert.DoesNotContain(report.Findings, f => f.Check == CheckId.RunQueues);
    }

    /// <summary>The same hidden task as above, found without BTF and without data symbols: the inferred offsets lead the
    /// walk through cpu 1's fair tree to the victim's sched_entity.</summary>
    [Fact]
    public void Without_BTF_or_data_symbols_a_task_queued_only_on_the_second_cpu_is_found_there()
    {
        using var d = HideOnSecondCpu(out var victim);
        d.CloseWriter();
        using var t = Target.OpenDump(d.Path, new TargetOptions { NoBtf = true, NoDataSymbols = true });
        Assert.Null(t.Kernel.Btf);
        AssertFoundOnSecondCpu(t.Kernel, victim);
    }
    /// <summary>Hostile run queue, walked through inferred offsets: cpu 1's fair tree made a cycle (a node its own left
    /// child) with a right link into nowhere. The walk ends, says both, and the check is incomplete, not clean.</summary>
    [Fact]
    public void Without_BTF_a_cyclic_fair_tree_with_a_bad_link_is_walked_once_and_reported_incomplete()
    {
        var victim = Kernel.Tasks.First(t => t.Comm == "sleep" && guest.Truth.Processes.ContainsKey(t.Pid));
        ulong root = RunQueue(1) + Offset("rq", "cfs") + Offset("cfs_rq", "tasks_timeline.rb_root.rb_node");
        ulong runNode = victim.Address + Offset("task_struct", "se") + Offset("sched_entity", "run_node");
        const ulong nowhere = 0xdead;
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WriteU64(root, runNode);
        d.WriteU64(runNode + Offset("rb_node", "rb_left"), runNode);
        d.WriteU64(runNode + Offset("rb_node", "rb_right"), nowhere);
        d.CloseWriter();
        using var t = Target.OpenDump(d.Path, new TargetOptions { NoBtf = true, NoDataSymbols = true });
        var report = new InvariantChecks(t.Kernel).Run();
        var outcome = report.Outcomes.Single(o => o.Check == CheckId.RunQueues);
        foreach (var g in outcome.Gaps) output.WriteLine(g.Detail);
        Assert.Equal(CheckStatus.Incomplete, outcome.Status);
        Assert.Contains(outcome.Gaps, g => g.Detail == $"cpu 1: fair run queue node 0x{runNode:x} reached twice (a cycle)");
        Assert.Contains(outcome.Gaps, g => g.Detail == $"cpu 1: fair run queue link 0x{nowhere:x} is not a kernel pointer");
        Assert.DoesNotContain(report.Findings, f => f.Check == CheckId.RunQueues); // the victim is listed
        Assert.NotEqual(CheckVerdict.Clean, report.Verdict);
    }
}
