using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Inference;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// The pid cross-views (pid namespace, children lists, thread groups) on the default guest without BTF and without data
/// symbols: struct pid, the pid IDR and the children lists from inferred offsets, init_pid_ns found by structure. They
/// must run complete and clean, read what BTF says, and catch a task unlinked from the task list.
/// </summary>
[Collection("5-level guest")]
public sealed class NoBtfPidViewTests(FiveLevelGuest guest, ITestOutputHelper output)
{
    private static readonly CheckId[] PidViews = [CheckId.PidNamespace, CheckId.ChildrenLists, CheckId.ThreadGroups];

    private static readonly (string Struct, string Member)[] PidMembers =
    [
        ("task_struct", "thread_pid"), ("pid", "numbers"), ("upid", "nr"), ("upid", "ns"), ("pid", "tasks"), ("task_struct", "pid_links"),
        ("task_struct", "children"), ("task_struct", "sibling"), ("pid_namespace", "idr.idr_rt.xa_head"), ("xa_node", "slots"),
    ];

    private LinuxKernel WithBtf => guest.Dump.Kernel;

    private static TargetOptions Bare => new() { NoBtf = true, NoDataSymbols = true };

    private CheckReport Check(Target t)
    {
        var report = new InvariantChecks(t.Kernel).Run();
        foreach (var o in report.Outcomes) output.WriteLine($"{o.Check} {o.Status} {string.Join("; ", o.Gaps.Select(g => g.Detail))}");
        foreach (var f in report.Findings.Where(f => f.Severity != Severity.Info)) output.WriteLine($"{f.Severity} {f.Check} {f.Kind} {f.Subject} 0x{f.Address:x} {f.Detail}");
        return report;
    }

    [Fact]
    public void Pid_views_run_complete_and_clean_from_inferred_offsets_equal_to_BTF_and_init_pid_ns_found_by_structure()
    {
        using var t = Target.OpenDump(guest.DumpPath, Bare);
        var k = t.Kernel;
        Assert.Null(k.Btf);
        foreach (var (s, m) in PidMembers)
        {
            var inferred = k.Inference!.Find(s, m);
            Assert.True(inferred is { IsKnown: true }, $"{s}.{m} not inferred: {inferred?.Rule}");
            Assert.Equal(WithBtf.Layouts.Offset(s, m), inferred!.Offset!.Value);
            Assert.Equal(WithBtf.Layouts.Offset(s, m), k.Layouts.Offset(s, m));
        }
        Assert.True(k.DataAddresses.TryGet("init_pid_ns", out var ns));
        Assert.Equal(InitPidNamespaceSearch.How, ns.How);
        Assert.Equal(WithBtf.Symbols.GetAddress("init_pid_ns"), ns.Address);

        var report = Check(t);
        foreach (var view in PidViews)
            Assert.Equal(CheckStatus.Complete, Assert.Single(report.Outcomes, o => o.Check == view).Status);
        Assert.DoesNotContain(report.Findings, f => PidViews.Contains(f.Check) && f.Severity > Severity.Info);
    }

    [Fact]
    public void Task_unlinked_from_the_task_list_is_found_through_the_pid_namespace_without_BTF()
    {
        var victim = WithBtf.Tasks.First(x => x.Comm == "sleep" && guest.Truth.Processes.ContainsKey(x.Pid));
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, WithBtf);
        ulong node = victim.Address + (ulong)WithBtf.Offsets.Task.Tasks;
        Assert.True(WithBtf.Reader.TryPointer(node, out ulong next));
        Assert.True(WithBtf.Reader.TryPointer(node + 8, out ulong prev));
        d.WriteU64(prev, next);
        d.WriteU64(next + 8, prev);
        d.CloseWriter();
        using var t = Target.OpenDump(d.Path, Bare);
        Assert.Null(t.Kernel.Btf);
        Assert.DoesNotContain(t.Kernel.Tasks, x => x.Address == victim.Address);

        var report = Check(t);
        var hidden = report.Findings.Where(x => x.Kind == FindingKind.HiddenTask).ToList();
        Assert.Contains(hidden, f => f.Check == CheckId.PidNamespace && f.Address == victim.Address && f.Severity == Severity.Critical
            && f.Subject == $"pid {victim.Pid} (sleep)");
        Assert.Contains(hidden, f => f.Check == CheckId.ChildrenLists && f.Address == victim.Address && f.Severity == Severity.Critical);
        Assert.All(hidden, f => Assert.Equal(victim.Address, f.Address));
        Assert.Equal(CheckStatus.Complete, Assert.Single(report.Outcomes, o => o.Check == CheckId.PidNamespace).Status);
    }
}
