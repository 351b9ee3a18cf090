namespace Periscope.Linux.Inference;

/// <summary>How the constraint search settled one member.</summary>
public enum InferenceDecision
{
    /// <summary>Exactly one offset in the window satisfied the rule.</summary>
    Unique,
    /// <summary>Several offsets satisfied the rule; a documented tie-break (named in the rule) picked one.</summary>
    TieBreak,
    /// <summary>A declaration-order fact of the kernel (named in <see cref="StructuralFacts"/>), checked against the data.</summary>
    Structural,
    /// <summary>Several offsets satisfied the rule and nothing separates them: the member is left unknown.</summary>
    Ambiguous,
    /// <summary>No offset satisfied the rule (or the evidence it needs is absent): the member is left unknown.</summary>
    NotFound,
}

/// <summary>The search could not settle a member the model needs; <see cref="Report"/> holds all the evidence.</summary>
public sealed class OffsetInferenceException(InferenceReport report, string message) : Model.KernelModelException(message)
{
    public InferenceReport Report { get; } = report;
}

/// <summary>Where an offset came from.</summary>
public enum OffsetSource { Btf, Inferred, Cache }

/// <summary>
/// One member the search looked for: the candidates every rule enumerated over its whole window, the decision, and
/// the rule in words. An unknown member (<see cref="Offset"/> null) is reported, never guessed.
/// </summary>
public sealed record InferredMember(string Struct, string Member, int? Offset, InferenceDecision Decision, IReadOnlyList<int> Candidates, string Rule)
{
    public string Name => $"{Struct}.{Member}";
    public bool IsKnown => Offset is not null;
}

/// <summary>Everything the constraint search learned and how: one record per member, plus the objects it used as evidence.</summary>
public sealed class InferenceReport
{
    private readonly List<InferredMember> _members = [];

    /// <summary>The member name under which a struct's size (an array stride) is reported: sizeof, not an offset.</summary>
    public const string SizeOfMember = "(sizeof)";

    public IReadOnlyList<InferredMember> Members => _members;
    /// <summary>The init_task address, and whether it came from kallsyms or was found by its own structure.</summary>
    public ulong InitTask { get; internal set; }
    public bool InitTaskFromStructure { get; internal set; }
    /// <summary>The `modules` list head when kallsyms has no data symbols and it was found by its own structure; else null.</summary>
    public ulong? ModulesHead { get; internal set; }
    /// <summary>special_mapping_vmops as an offset from _text when kallsyms lacks it and it was found by what it does; kept
    /// in the offsets cache (the image slides as a whole under KASLR, so the offset is the build's).</summary>
    public ulong? SpecialMappingOpsFromText { get; internal set; }
    /// <summary>Evidence counts: tasks, threads, user mms, VMAs, files and modules the rules were checked against.</summary>
    public int Tasks { get; internal set; }
    /// <summary>Leaders whose whole task_struct the column rules searched (all of them up to IntrospectionLimits.MaxInferenceTaskSamples).</summary>
    public int SampledTasks { get; internal set; }
    public int Threads { get; internal set; }
    public int Mms { get; internal set; }
    public int Vmas { get; internal set; }
    public int Files { get; internal set; }
    public int Modules { get; internal set; }
    /// <summary>The guest's pointer and unsigned long size the offsets were inferred for: 8 (x86-64) or 4 (i386).</summary>
    public int PointerSize { get; internal set; } = 8;
    /// <summary>Candidate tests spent (bounded by IntrospectionLimits.MaxInferenceSteps).</summary>
    public long Steps { get; internal set; }

    internal int? Add(string structName, string member, IReadOnlyList<int> candidates, string rule, Func<IReadOnlyList<int>, int>? tieBreak = null, string? tieBreakRule = null)
    {
        InferenceDecision decision;
        int? offset = null;
        if (candidates.Count == 1) { decision = InferenceDecision.Unique; offset = candidates[0]; }
        else if (candidates.Count == 0) decision = InferenceDecision.NotFound;
        else if (tieBreak is not null) { decision = InferenceDecision.TieBreak; offset = tieBreak(candidates); rule += $"; tie-break: {tieBreakRule}"; }
        else decision = InferenceDecision.Ambiguous;
        _members.Add(new InferredMember(structName, member, offset, decision, candidates.ToArray(), rule));
        return offset;
    }

    internal int AddStructural(string structName, string member, int offset, string rule)
    {
        _members.Add(new InferredMember(structName, member, offset, InferenceDecision.Structural, [offset], rule));
        return offset;
    }

    internal void Load(InferredMember member) => _members.Add(member);

    internal void AddUnknown(string structName, string member, string why) =>
        _members.Add(new InferredMember(structName, member, null, InferenceDecision.NotFound, [], why));

    public InferredMember? Find(string structName, string member) =>
        _members.FirstOrDefault(m => m.Struct == structName && m.Member == member);

    /// <summary>Members left unknown (not found, or ambiguous), for "feature unavailable" messages.</summary>
    public IEnumerable<InferredMember> Unknown => _members.Where(m => !m.IsKnown);
}
