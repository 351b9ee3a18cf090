using System.Text.Json;
using Periscope.Linux;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Tests.Shared;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// The views as the guest itself shows them, on the two-vCPU guest: "used by" as /proc/modules prints it, task names
/// as /proc/PID/stat prints them (workqueue workers "kworker/0:1-rcu_gp"), and one idle task per CPU. Ground truth
/// is read through the guest's command channel, so it describes the running guest the test attaches to.
/// </summary>
[Collection("two-cpu guest")]
public sealed class ProcViewTests(TwoCpuGuest guest, ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    private LinuxKernel Kernel => guest.Dump.Kernel;

    private string Run(string command)
    {
        var (code, text) = guest.Guest.RunCommand(command, CommandTimeout);
        Assert.True(code == 0, $"'{command}' exited {code}: {text}");
        return text;
    }

    /// <summary>pid → name of every task /proc lists (threads included), from /proc/PID/task/TID/stat.</summary>
    private Dictionary<int, string> ProcNames()
    {
        var names = new Dictionary<int, string>();
        foreach (var line in Run("cat /proc/[0-9]*/task/[0-9]*/stat 2>/dev/null; true").Split('\n'))
        {
            if (line.Length == 0 || !char.IsAsciiDigit(line[0])) continue;
            var s = GroundTruth.ParseStat(line.TrimEnd('\r'));
            names[s.Pid] = s.Comm;
        }
        return names;
    }

    [Fact]
    public void Every_proc_modules_line_is_identical_with_used_by_and_taint_markers()
    {
        // The guest loads omfs, which uses crc-itu-t (named crc_itu_t); periscope_tamper, out of tree and unsigned,
        // taints the kernel with O and E. Loaded here once (idempotent), compared live on the paused guest.
        // A guest built around a kernel without its headers (scripts/kernel-matrix) has no tamper module.
        bool tamper = Run("test -f /lib/modules/periscope_tamper.ko && echo yes || echo no").Trim() == "yes";
        if (tamper) Run("grep -q '^periscope_tamper ' /proc/modules || insmod /lib/modules/periscope_tamper.ko");
        var truth = Run("cat /proc/modules").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        IReadOnlyList<KernelModule> ours;
        using (var live = guest.AttachLive())
        using (live.Pause())
            ours = live.Kernel.Modules;
        var lines = ours.Select(m => $"{m.Name} {m.Size} {m.References} {m.ProcUsedBy} {m.State.ProcName()} 0x{m.Base:x16}"
            + (m.ProcFlags is { } flags ? " " + flags : "")).ToList();
        foreach (var l in lines) output.WriteLine(l);
        Assert.Equal(truth, lines);
        Assert.Equal(["omfs"], ours.Single(m => m.Name == "crc_itu_t").UsedBy);
        if (tamper) Assert.Equal("(OE)", ours.Single(m => m.Name == "periscope_tamper").ProcFlags);
        else output.WriteLine("no tamper module in this guest: taint markers not exercised");

        var (code, text, err) = CliRun.Run("modules", "--dump", guest.DumpPath, "--json");
        Assert.True(code == 0, err);
        using var json = JsonDocument.Parse(text);
        var crc = json.RootElement.EnumerateArray().Single(e => e.GetProperty("name").GetString() == "crc_itu_t");
        Assert.Equal(["omfs"], crc.GetProperty("usedBy").EnumerateArray().Select(e => e.GetString()));
        (code, text, err) = CliRun.Run("modules", "--dump", guest.DumpPath);
        Assert.True(code == 0, err);
        Assert.Contains(text.Split('\n'), l => l.StartsWith("crc_itu_t ", StringComparison.Ordinal) && l.TrimEnd().EndsWith(" omfs,", StringComparison.Ordinal));
    }

    /// <summary>Without BTF the taint markers come from the inferred module.taints and taint_flag layout: they must equal
    /// BTF's and /proc/modules' markers, and the inferred offsets BTF's, with the out-of-tree unsigned tamper module loaded;
    /// also without data symbols, where the taint_flags table is found through code.</summary>
    [Fact]
    public void Taint_markers_without_BTF_equal_BTFs_and_proc_modules_with_a_tainted_module_loaded()
    {
        bool tamper = Run("test -f /lib/modules/periscope_tamper.ko && echo yes || echo no").Trim() == "yes";
        if (!tamper)
        {
            output.WriteLine("no tamper module in this guest: no tainted module to take evidence from");
            return;
        }
        Run("grep -q '^periscope_tamper ' /proc/modules || insmod /lib/modules/periscope_tamper.ko");
        var truth = Run("cat /proc/modules").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .ToDictionary(l => l.Split(' ')[0], l => l.EndsWith(')') ? l[l.LastIndexOf(" (", StringComparison.Ordinal)..].Trim() : null);
        Assert.Equal("(OE)", truth["periscope_tamper"]);
        // One live attach at a time (the guest's tool QMP socket takes one client): with BTF, then without.
        ModuleTaintOffsets? btfOffsets;
        int btfCFalse;
        IReadOnlyList<KernelModule> btfModules, inferredModules;
        using (var withBtf = guest.AttachLive())
        using (withBtf.Pause())
        {
            btfOffsets = withBtf.Kernel.Offsets.ModuleTaint;
            btfCFalse = (int)withBtf.Kernel.Btf!.FindStruct("taint_flag")!.Offset("c_false");
            btfModules = withBtf.Kernel.Modules;
        }
        using (var noBtf = guest.AttachLive(new Periscope.Targets.TargetOptions { NoBtf = true }))
        using (noBtf.Pause())
        {
            var k = noBtf.Kernel;
            Assert.Null(k.Btf);
            var report = k.Inference!;
            foreach (var m in report.Members.Where(m => m.Struct == "taint_flag" || m.Name == "module.taints"))
                output.WriteLine($"{m.Name} {(m.Offset is { } o ? $"0x{o:x}" : "-")} {m.Decision}: {m.Rule}");
            Assert.NotNull(k.Offsets.ModuleTaint);
            Assert.Equal(btfOffsets, k.Offsets.ModuleTaint);
            Assert.Equal(btfCFalse, report.Find("taint_flag", "c_false")?.Offset);
            inferredModules = k.Modules;
        }
        // Without data symbols (Debian's i386 kernels): taint_flags is the table print_tainted's code refers to, and its
        // layout is BTF's. (The x86-64 guest simulated so finds no modules list head: then there are no markers to compare.)
        using (var noData = guest.AttachLive(new Periscope.Targets.TargetOptions { NoBtf = true, NoDataSymbols = true }))
        using (noData.Pause())
        {
            var report = noData.Kernel.Inference!;
            Assert.Equal((btfOffsets!.FlagSize, btfOffsets.FlagLetter, btfOffsets.FlagModule),
                (report.Find("taint_flag", InferenceReport.SizeOfMember)?.Offset, report.Find("taint_flag", "c_true")?.Offset, report.Find("taint_flag", "module")?.Offset));
            if (report.Find("module", "name")?.IsKnown == true)
            {
                Assert.Equal(btfOffsets, noData.Kernel.Offsets.ModuleTaint);
                Assert.Equal(btfModules.Select(m => (m.Name, m.ProcFlags)), noData.Kernel.Modules.Select(m => (m.Name, m.ProcFlags)));
            }
            else output.WriteLine($"without data symbols: {report.Find("module", "name")?.Rule}");
        }
        Assert.Equal(truth, inferredModules.ToDictionary(m => m.Name, m => m.ProcFlags));
        Assert.Equal(btfModules.Select(m => (m.Name, m.Taints, m.ProcFlags)), inferredModules.Select(m => (m.Name, m.Taints, m.ProcFlags)));
    }

    [Fact]
    public void One_idle_task_per_cpu_is_listed_as_swapper_N_with_pid_0()
    {
        int cpus = int.Parse(Run("nproc").Trim());
        Assert.Equal(2, cpus);
        var idle = Kernel.ProcessTable.Where(t => t.Pid == 0).ToList();
        foreach (var t in idle) output.WriteLine($"pid {t.Pid} {t.Name} cpu {t.IdleCpu} task 0x{t.Address:x}");
        Assert.Equal(Enumerable.Range(0, cpus).Select(c => $"swapper/{c}"), idle.Select(t => t.Name));
        Assert.Equal(Enumerable.Range(0, cpus).Select(c => (int?)c), idle.Select(t => t.IdleCpu));
        Assert.Equal(Enumerable.Range(0, cpus), Kernel.IdleTasks.Select(i => i.Cpu));
        Assert.Equal(Kernel.Tasks[0].Address, Kernel.IdleTasks[0].Task.Address); // cpu 0's idle task is init_task
        Assert.All(idle, t => Assert.NotEqual(0u, t.Flags & KernelMacros.PF_IDLE));
        Assert.Equal(idle.Count, idle.Select(t => t.Address).Distinct().Count());
        Assert.Equal(Kernel.Tasks.Count + cpus - 1, Kernel.ProcessTable.Count);

        var (code, text, err) = CliRun.Run("ps", "--dump", guest.DumpPath);
        Assert.True(code == 0, err);
        var swappers = text.Split('\n').Where(l => l.TrimStart().StartsWith("0 ", StringComparison.Ordinal)).ToList();
        Assert.Equal(cpus, swappers.Count);
        Assert.Contains(swappers, l => l.Contains("swapper/1"));
    }

    [Fact]
    public void Every_task_name_equals_the_guests_proc_stat_name_on_a_paused_guest()
    {
        // Workers change their "+desc"/"-desc" between runs: a name is compared only when /proc showed it unchanged
        // before and after the paused read. Which ones change is the guest's business; enough of them must stay.
        var before = ProcNames();
        Dictionary<int, string> ours;
        using (var live = guest.AttachLive())
        using (live.Pause())
            ours = live.Kernel.ProcessTable.SelectMany(t => t.Threads).Where(t => t.Tid != 0).ToDictionary(t => t.Tid, t => t.Name);
        var after = ProcNames();

        var stable = before.Where(p => after.TryGetValue(p.Key, out var again) && again == p.Value && ours.ContainsKey(p.Key)).ToList();
        int changed = before.Count(p => after.TryGetValue(p.Key, out var again) && again != p.Value);
        output.WriteLine($"{before.Count} tasks before, {after.Count} after, {stable.Count} stable and listed, {changed} renamed in between");
        var workers = stable.Where(p => p.Value.StartsWith("kworker/", StringComparison.Ordinal) && (p.Value.Contains('-') || p.Value.Contains('+'))).ToList();
        foreach (var (pid, name) in workers) output.WriteLine($"{pid}: /proc '{name}', Periscope '{ours[pid]}'");
        Assert.True(workers.Count >= 3, $"only {workers.Count} workqueue workers with a description stayed unchanged");
        Assert.True(changed <= before.Count / 4, $"{changed} of {before.Count} tasks were renamed while the guest was read");
        // Equal before and after is not unchanged in between: a worker may run another workqueue's item and come back
        // (kworker/0:0 alternates between mm_percpu_wq and events every second). Such a name may differ only in the
        // workqueue, one the guest's own workers were listed with; the worker's own part and its marker must be equal.
        var workqueues = before.Values.Concat(after.Values).Select(WorkerName.Split).Where(w => w is not null).Select(w => w!.Value.Workqueue).ToHashSet();
        bool RanOtherWorkInBetween(int pid) => WorkerName.Split(ours[pid]) is { } o && WorkerName.Split(before[pid]) is { } b
            && o.Worker == b.Worker && workqueues.Contains(o.Workqueue);
        var alternated = stable.Where(p => ours[p.Key] != p.Value && RanOtherWorkInBetween(p.Key)).ToList();
        foreach (var (pid, name) in alternated) output.WriteLine($"{pid}: /proc '{name}' before and after, Periscope '{ours[pid]}' in between (another listed workqueue)");
        Assert.True(workers.Count - alternated.Count >= 3, $"only {workers.Count - alternated.Count} workqueue workers with a description were compared");
        var wrong = stable.Where(p => ours[p.Key] != p.Value && !RanOtherWorkInBetween(p.Key)).Select(p => $"pid {p.Key}: /proc '{p.Value}', Periscope '{ours[p.Key]}'").ToList();
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));

        // The raw comm stays available: json carries both.
        var (code, text, err) = CliRun.Run("ps", "--dump", guest.DumpPath, "--json");
        Assert.True(code == 0, err);
        using var json = JsonDocument.Parse(text);
        Assert.Contains(json.RootElement.EnumerateArray(), e => e.GetProperty("name").GetString()!.StartsWith(e.GetProperty("comm").GetString() + "-", StringComparison.Ordinal)
            && e.GetProperty("comm").GetString()!.StartsWith("kworker/", StringComparison.Ordinal));
    }

    [Fact]
    public void A_garbage_per_cpu_offset_costs_that_cpus_idle_task_only_with_a_diagnostic()
    {
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.WriteU64(Kernel.Symbols.GetAddress("__per_cpu_offset") + 8, 0x4141_4141_4141_4141);
        using var t = d.Open();
        Assert.Equal([0], t.Kernel.IdleTasks.Select(i => i.Cpu));
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Area == "idle tasks" && x.Incomplete && x.Message.StartsWith("cpu 1:", StringComparison.Ordinal));
        Assert.True(t.Kernel.IsIncomplete);
    }

    [Fact]
    public void Absurd_nr_cpu_ids_is_capped_by_MaxCpus()
    {
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        d.Write(Kernel.Symbols.GetAddress("nr_cpu_ids"), BitConverter.GetBytes(0x7fff_ffffu));
        using var t = d.Open(Kernel.Limits with { MaxCpus = 64 });
        Assert.True(t.Kernel.IdleTasks.Count <= 64);
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Area == "idle tasks" && x.Message.Contains($"nr_cpu_ids is {0x7fff_ffff}") && x.Message.Contains("MaxCpus is 64"));
    }
}

/// <summary>A workqueue worker's name as /proc shows it: "kworker/0:1H" (the worker), then '-' or '+' (idle or running)
/// and the workqueue it last ran; null for any other name.</summary>
internal static class WorkerName
{
    public static (string Worker, string Workqueue)? Split(string name)
    {
        if (!name.StartsWith("kworker/", StringComparison.Ordinal)) return null;
        int mark = name.IndexOfAny(['-', '+']);
        return mark < 0 ? null : (name[..(mark + 1)], name[(mark + 1)..]);
    }
}
