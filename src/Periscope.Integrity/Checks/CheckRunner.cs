using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.Integrity.Checks;

/// <summary>What a check may ask of the kernel before it runs: symbols and BTF types. Small, so checks' prerequisites
/// are testable without a guest.</summary>
public interface IKernelFacts
{
    bool HasSymbol(string name);
    bool HasStruct(string name);
    bool HasMember(string structName, string path);
    /// <summary>False when the kernel's offsets were inferred without BTF: checks needing types are skipped.</summary>
    bool HasBtf => true;
}

/// <summary>The facts of a kernel rebuilt from guest memory: data objects from kallsyms or found by structure, member
/// offsets from BTF or inferred.</summary>
public sealed class KernelFacts(LinuxKernel kernel) : IKernelFacts
{
    public bool HasSymbol(string name) => kernel.DataAddresses.TryGetAddress(name, out _);
    public bool HasBtf => kernel.Btf is not null;
    public bool HasStruct(string name) => kernel.Layouts.HasStruct(name);
    public bool HasMember(string structName, string path) => kernel.Layouts.HasMember(structName, path);
}

/// <summary>The symbols and BTF members a check cannot run without.</summary>
public sealed record CheckRequirements
{
    public IReadOnlyList<string> Symbols { get; init; } = [];
    /// <summary>(struct, member path); a null path asks for the struct only.</summary>
    public IReadOnlyList<(string Struct, string? Member)> Types { get; init; } = [];

    public static CheckRequirements None { get; } = new();

    public IEnumerable<CheckGap> Missing(IKernelFacts facts)
    {
        foreach (var s in Symbols)
            if (!facts.HasSymbol(s)) yield return new CheckGap(GapKind.MissingSymbol, $"kallsyms has no symbol {s}");
        foreach (var (type, member) in Types)
        {
            if (!facts.HasStruct(type)) yield return new CheckGap(GapKind.MissingType, facts.HasBtf ? $"BTF has no struct {type}" : $"skipped: no BTF (offsets inferred), struct {type} is unknown");
            else if (member is not null && !facts.HasMember(type, member)) yield return new CheckGap(GapKind.MissingType, $"BTF struct {type} has no member {member}");
        }
    }
}

/// <summary>One check: what it needs and what it does with a <see cref="CheckRun"/>.</summary>
public sealed record InvariantCheck(CheckId Id, CheckRequirements Requires, Action<CheckRun> Body);

/// <summary>
/// The sink one check reports into: findings, the gaps that make it incomplete, and its total-work budget. A check
/// never throws for bad guest data; it records a gap and carries on with what it can read.
/// </summary>
public sealed class CheckRun(CheckId check, IntrospectionLimits limits)
{
    private const int MaxGaps = 20;
    private readonly List<CheckFinding> _findings = [];
    private readonly List<CheckGap> _gaps = [];
    private int _droppedGaps;
    private long _nodes;
    private bool _skipped;
    private bool _unavailable;

    public CheckId Check { get; } = check;
    public IntrospectionLimits Limits { get; } = limits;
    public IReadOnlyList<CheckFinding> Findings => _findings;
    public bool BudgetExhausted => _nodes > Limits.MaxCheckWalkNodes;

    public void Report(FindingKind kind, Severity severity, string subject, ulong address, string detail) =>
        _findings.Add(new CheckFinding(Check, kind, severity, subject, address, detail));

    public void Incomplete(GapKind kind, string detail)
    {
        if (_gaps.Count < MaxGaps) _gaps.Add(new CheckGap(kind, detail));
        else _droppedGaps++;
    }

    /// <summary>The check cannot run at all; nothing it reported is trusted to be the whole picture.</summary>
    public void Skip(GapKind kind, string detail)
    {
        _skipped = true;
        Incomplete(kind, detail);
    }

    /// <summary>The check cannot run on this kernel at all (see <see cref="CheckStatus.Unavailable"/>): one gap says why.</summary>
    public void Unavailable(string detail)
    {
        _unavailable = true;
        Incomplete(GapKind.UnsupportedKernel, detail);
    }

    /// <summary>Spends one node of the check's walk budget; false (and a gap, once) when the budget is used up.</summary>
    public bool Visit()
    {
        if (++_nodes <= Limits.MaxCheckWalkNodes) return true;
        if (_nodes == Limits.MaxCheckWalkNodes + 1L)
            Incomplete(GapKind.WalkBudget, $"stopped after {Limits.MaxCheckWalkNodes} list/tree nodes: the limit MaxCheckWalkNodes is {Limits.MaxCheckWalkNodes}");
        return false;
    }

    public CheckOutcome Outcome()
    {
        var gaps = _droppedGaps == 0 ? _gaps.ToArray() : [.. _gaps, new CheckGap(_gaps[^1].Kind, $"and {_droppedGaps} more gaps")];
        var status = _unavailable ? CheckStatus.Unavailable : _skipped ? CheckStatus.Skipped : gaps.Length > 0 ? CheckStatus.Incomplete : CheckStatus.Complete;
        return new CheckOutcome(Check, status, gaps, _findings.Count);
    }
}

/// <summary>Runs checks in order: a check whose requirements are missing is skipped with the reasons; a check that
/// throws is incomplete, and the others still run; diagnostics its walks leave (cycles, bad links) are its gaps.</summary>
public static class CheckRunner
{
    /// <summary>One line: what a check needs that a kernel without BTF (offsets inferred) does not provide.</summary>
    public static string UnavailableReason(CheckRequirements requires, IKernelFacts facts)
    {
        var symbols = requires.Symbols.Where(s => !facts.HasSymbol(s)).ToList();
        var types = requires.Types.Select(t => t.Struct).Where(t => !facts.HasStruct(t)).Distinct().ToList();
        var parts = new List<string>();
        var members = requires.Types.Where(t => facts.HasStruct(t.Struct) && t.Member is not null && !facts.HasMember(t.Struct, t.Member))
            .Select(t => $"{t.Struct}.{t.Member}").Distinct().ToList();
        if (symbols.Count > 0) parts.Add($"the data symbol{(symbols.Count > 1 ? "s" : "")} {string.Join(", ", symbols)} (not in kallsyms, not found by structure)");
        if (types.Count > 0) parts.Add($"the layout of struct {string.Join(", ", types)} (not inferred)");
        if (members.Count > 0) parts.Add($"the member{(members.Count > 1 ? "s" : "")} {string.Join(", ", members)} (not inferred)");
        return $"not on this kernel (no BTF, offsets inferred): needs {string.Join(" and ", parts)}";
    }

    public static CheckReport Run(IKernelFacts facts, IEnumerable<InvariantCheck> checks, IntrospectionLimits limits, Diagnostics? diagnostics = null)
    {
        var outcomes = new List<CheckOutcome>();
        var findings = new List<CheckFinding>();
        foreach (var check in checks)
        {
            var run = new CheckRun(check.Id, limits);
            var missing = check.Requires.Missing(facts).ToList();
            if (missing.Count > 0 && !facts.HasBtf)
                run.Unavailable(UnavailableReason(check.Requires, facts));
            else if (missing.Count > 0)
                foreach (var gap in missing) run.Skip(gap.Kind, gap.Detail);
            else
            {
                int before = diagnostics?.Items.Count ?? 0;
                try { check.Body(run); }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    run.Incomplete(GapKind.Failed, $"stopped by {ex.GetType().Name}: {ex.Message}");
                }
                if (diagnostics is not null)
                    foreach (var d in diagnostics.Items.Skip(before)) run.Incomplete(GapKind.CorruptStructure, d.ToString());
            }
            outcomes.Add(run.Outcome());
            findings.AddRange(run.Findings);
        }
        return new CheckReport(outcomes, findings);
    }
}
