using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests.Checks;

/// <summary>A kernel's symbols and BTF members as plain sets: prerequisites without a guest.</summary>
internal sealed class FakeFacts(IEnumerable<string> symbols, IEnumerable<string> members) : IKernelFacts
{
    private readonly HashSet<string> _symbols = [.. symbols];
    private readonly HashSet<string> _members = [.. members]; // "struct" or "struct.member.path"

    public bool HasSymbol(string name) => _symbols.Contains(name);
    public bool HasStruct(string name) => _members.Contains(name);
    public bool HasMember(string structName, string path) => _members.Contains($"{structName}.{path}");

    /// <summary>Everything every check asks for, minus what is named.</summary>
    public static FakeFacts AllExcept(params string[] missing)
    {
        var symbols = new List<string>();
        var members = new List<string>();
        foreach (var id in Enum.GetValues<CheckId>())
        {
            var r = InvariantChecks.RequirementsOf(id);
            symbols.AddRange(r.Symbols);
            foreach (var (type, member) in r.Types)
            {
                members.Add(type);
                if (member is not null) members.Add($"{type}.{member}");
            }
        }
        return new FakeFacts(symbols.Except(missing), members.Except(missing));
    }
}

public sealed class CheckRunnerTests
{
    private static InvariantCheck Check(CheckId id, Action<CheckRun> body) => new(id, InvariantChecks.RequirementsOf(id), body);

    private static CheckReport Run(IKernelFacts facts, params InvariantCheck[] checks) =>
        CheckRunner.Run(facts, checks, IntrospectionLimits.Default);

    [Fact]
    public void Kernel_without_a_modules_list_head_skips_the_hidden_module_check_and_is_incomplete()
    {
        bool ran = false;
        var report = Run(FakeFacts.AllExcept("modules"), Check(CheckId.ModuleArea, _ => ran = true), Check(CheckId.SyscallTable, _ => { }));

        Assert.False(ran);
        var skipped = report.Outcomes[0];
        Assert.Equal(CheckId.ModuleArea, skipped.Check);
        Assert.Equal(CheckStatus.Skipped, skipped.Status);
        var gap = Assert.Single(skipped.Gaps);
        Assert.Equal(GapKind.MissingSymbol, gap.Kind);
        Assert.Contains("modules", gap.Detail);
        Assert.Equal(CheckStatus.Complete, report.Outcomes[1].Status);
        Assert.Empty(report.Findings);
        Assert.Equal(CheckVerdict.Incomplete, report.Verdict);
        Assert.Equal(3, (int)report.Verdict);
    }

    /// <summary>A kernel without BTF (offsets inferred, no data symbols: Debian's 686) cannot run the run-queue check by
    /// construction: it is unavailable with one line naming what it needs, and the verdict of the checks that ran stands.</summary>
    [Fact]
    public void Without_BTF_a_check_whose_inputs_the_kernel_lacks_is_unavailable_with_one_reason_and_the_verdict_stays_incomplete()
    {
        var noBtf = new NoBtfFacts(FakeFacts.AllExcept("runqueues", "__per_cpu_offset", "nr_cpu_ids", "rq", "cfs_rq", "task_struct.se"));
        bool flagsRan = false;
        var report = Run(noBtf, Check(CheckId.RunQueues, _ => throw new InvalidOperationException("must not run")), Check(CheckId.TaskFlags, _ => flagsRan = true));
        Assert.True(flagsRan);
        var rq = report.Outcomes[0];
        Assert.Equal(CheckStatus.Unavailable, rq.Status);
        var gap = Assert.Single(rq.Gaps);
        Assert.Equal(GapKind.UnsupportedKernel, gap.Kind);
        Assert.Equal("not on this kernel (no BTF, offsets inferred): needs the data symbols runqueues, __per_cpu_offset (not in kallsyms, not found by structure) and the layout of struct rq, cfs_rq (not inferred) and the member task_struct.se (not inferred)", gap.Detail);
        Assert.Equal(CheckStatus.Complete, report.Outcomes[1].Status);
        Assert.False(report.IsComplete); // the run queues were not compared: "clean" is not earned
        Assert.Equal(CheckVerdict.Incomplete, report.Verdict);

        // The same missing inputs on a kernel WITH BTF are a skip (something is wrong with this kernel or dump): exit 3.
        var withBtf = Run(FakeFacts.AllExcept("runqueues"), Check(CheckId.RunQueues, _ => { }));
        Assert.Equal(CheckStatus.Skipped, withBtf.Outcomes.Single().Status);
        Assert.Equal(CheckVerdict.Incomplete, withBtf.Verdict);
    }

    private sealed class NoBtfFacts(IKernelFacts inner) : IKernelFacts
    {
        public bool HasSymbol(string name) => inner.HasSymbol(name);
        public bool HasStruct(string name) => inner.HasStruct(name);
        public bool HasMember(string structName, string path) => inner.HasMember(structName, path);
        public bool HasBtf => false;
    }

    [Fact]
    public void Missing_BTF_member_names_the_struct_and_member()
    {
        var report = Run(FakeFacts.AllExcept("rq.cfs"), Check(CheckId.RunQueues, _ => throw new InvalidOperationException("must not run")));
        var gap = Assert.Single(report.Outcomes.Single().Gaps);
        Assert.Equal(GapKind.MissingType, gap.Kind);
        Assert.Equal("BTF struct rq has no member cfs", gap.Detail);
        Assert.Equal(CheckStatus.Skipped, report.Outcomes.Single().Status);
    }

    [Fact]
    public void Every_check_in_the_catalog_is_skipped_when_its_symbols_are_missing()
    {
        foreach (var id in Enum.GetValues<CheckId>())
        {
            var needs = InvariantChecks.RequirementsOf(id);
            if (needs.Symbols.Count == 0) continue;
            var report = Run(FakeFacts.AllExcept(needs.Symbols[0]), Check(id, _ => throw new InvalidOperationException("must not run")));
            Assert.Equal(CheckStatus.Skipped, report.Outcomes.Single().Status);
        }
    }

    [Fact]
    public void A_check_that_throws_is_incomplete_and_the_next_check_still_runs()
    {
        bool second = false;
        var report = Run(FakeFacts.AllExcept(),
            Check(CheckId.PidNamespace, _ => throw new KernelModelException("struct pid is 3 bytes")),
            Check(CheckId.TaskFlags, _ => second = true));
        Assert.True(second);
        var failed = report.Outcomes[0];
        Assert.Equal(CheckStatus.Incomplete, failed.Status);
        Assert.Equal(GapKind.Failed, failed.Gaps.Single().Kind);
        Assert.Contains("struct pid is 3 bytes", failed.Gaps.Single().Detail);
        Assert.Equal(CheckVerdict.Incomplete, report.Verdict);
    }

    [Fact]
    public void Walk_budget_stops_the_walk_with_a_gap_that_states_the_limit()
    {
        var limits = IntrospectionLimits.Default with { MaxCheckWalkNodes = 10 };
        int visited = 0;
        var report = CheckRunner.Run(FakeFacts.AllExcept(), [Check(CheckId.ChildrenLists, run =>
        {
            for (int i = 0; i < 1_000_000; i++)
            {
                if (!run.Visit()) break;
                visited++;
            }
            Assert.False(run.Visit()); // stays exhausted; the gap is reported once
        })], limits);
        Assert.Equal(10, visited);
        var gap = Assert.Single(report.Outcomes.Single().Gaps);
        Assert.Equal(GapKind.WalkBudget, gap.Kind);
        Assert.Contains("MaxCheckWalkNodes is 10", gap.Detail);
    }

    [Fact]
    public void Diagnostics_left_by_a_check_walk_make_that_check_incomplete()
    {
        var diagnostics = new Diagnostics();
        diagnostics.Report("task list", "reported before any check"); // the model's, not a check's
        var report = CheckRunner.Run(FakeFacts.AllExcept(),
            [Check(CheckId.ChildrenLists, _ => diagnostics.Report("children of pid 7", "cycle: 0x10 revisited", 0x20)), Check(CheckId.TaskFlags, _ => { })],
            IntrospectionLimits.Default, diagnostics);
        var gap = Assert.Single(report.Outcomes[0].Gaps);
        Assert.Equal(GapKind.CorruptStructure, gap.Kind);
        Assert.Contains("children of pid 7: cycle", gap.Detail);
        Assert.Equal(CheckStatus.Complete, report.Outcomes[1].Status);
    }

    [Theory]
    [InlineData(null, false, CheckVerdict.Clean)]
    [InlineData(Severity.Info, false, CheckVerdict.Clean)]
    [InlineData(Severity.Info, true, CheckVerdict.Incomplete)]
    [InlineData(null, true, CheckVerdict.Incomplete)]
    [InlineData(Severity.Warning, false, CheckVerdict.Findings)]
    [InlineData(Severity.Critical, true, CheckVerdict.Findings)]
    public void Verdict_follows_the_shared_exit_code_scheme(Severity? finding, bool incomplete, CheckVerdict expected)
    {
        var report = Run(FakeFacts.AllExcept(), Check(CheckId.TaskFlags, run =>
        {
            if (finding is { } s) run.Report(FindingKind.UndefinedTaskFlags, s, "pid 9 (x)", 0x1000, "test");
            if (incomplete) run.Incomplete(GapKind.UnsupportedKernel, "test");
        }));
        Assert.Equal(expected, report.Verdict);
    }

    [Fact]
    public void Gaps_beyond_twenty_are_counted_not_listed()
    {
        var report = Run(FakeFacts.AllExcept(), Check(CheckId.RunQueues, run =>
        {
            for (int i = 0; i < 50; i++) run.Incomplete(GapKind.UnreadableMemory, $"cpu {i}");
        }));
        var gaps = report.Outcomes.Single().Gaps;
        Assert.Equal(21, gaps.Count);
        Assert.Equal("and 30 more gaps", gaps[^1].Detail);
    }
}
