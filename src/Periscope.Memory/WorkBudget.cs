namespace Periscope.Memory;

/// <summary>The families of work a <see cref="WorkBudget"/> bounds in total, each with its cap in <see cref="IntrospectionLimits"/>.</summary>
public enum WorkKind
{
    TaskNodes,
    Threads,
    ModuleNodes,
    ModuleBytes,
    Vmas,
    MapleNodes,
    PathComponents,
    BytesRead,
    PagesRead,
}

/// <summary>
/// Total work one command may spend on hostile guest structures, per family, shared by every walker of one kernel.
/// Per-list caps stop one long list; the budget stops many lists (4,096 tasks sharing one thread list, a million
/// tiny maple trees) from multiplying into unbounded work. Consuming past a limit fails (the walker stops with a
/// diagnostic) and the budget remembers it, so the result is reported incomplete. Thread-safe.
/// </summary>
public sealed class WorkBudget
{
    private static readonly int KindCount = Enum.GetValues<WorkKind>().Length;
    private readonly long[] _used = new long[KindCount];
    private readonly long[] _limit;
    private int _exhausted; // bit per WorkKind

    public WorkBudget(IntrospectionLimits limits)
    {
        limits.Validate();
        _limit = new long[KindCount];
        _limit[(int)WorkKind.TaskNodes] = limits.MaxTaskNodesTotal;
        _limit[(int)WorkKind.Threads] = limits.MaxThreadsTotal;
        _limit[(int)WorkKind.ModuleNodes] = limits.MaxModuleNodesTotal;
        _limit[(int)WorkKind.ModuleBytes] = limits.MaxModuleBytesTotal;
        _limit[(int)WorkKind.Vmas] = limits.MaxVmasTotal;
        _limit[(int)WorkKind.MapleNodes] = limits.MaxMapleNodesTotal;
        _limit[(int)WorkKind.PathComponents] = limits.MaxPathComponentsTotal;
        _limit[(int)WorkKind.BytesRead] = limits.MaxModelBytesRead;
        _limit[(int)WorkKind.PagesRead] = limits.MaxModelPagesRead;
    }

    /// <summary>Name of the limits property that caps <paramref name="kind"/>.</summary>
    public static string LimitName(WorkKind kind) => kind switch
    {
        WorkKind.TaskNodes => nameof(IntrospectionLimits.MaxTaskNodesTotal),
        WorkKind.Threads => nameof(IntrospectionLimits.MaxThreadsTotal),
        WorkKind.ModuleNodes => nameof(IntrospectionLimits.MaxModuleNodesTotal),
        WorkKind.ModuleBytes => nameof(IntrospectionLimits.MaxModuleBytesTotal),
        WorkKind.Vmas => nameof(IntrospectionLimits.MaxVmasTotal),
        WorkKind.MapleNodes => nameof(IntrospectionLimits.MaxMapleNodesTotal),
        WorkKind.PathComponents => nameof(IntrospectionLimits.MaxPathComponentsTotal),
        WorkKind.BytesRead => nameof(IntrospectionLimits.MaxModelBytesRead),
        WorkKind.PagesRead => nameof(IntrospectionLimits.MaxModelPagesRead),
        _ => kind.ToString(),
    };

    public long Used(WorkKind kind) => Volatile.Read(ref _used[(int)kind]);

    public long Limit(WorkKind kind) => _limit[(int)kind];

    /// <summary>
    /// Takes <paramref name="amount"/> units. False (and nothing taken) when that would pass the limit; the family is
    /// then marked exhausted for the rest of the command.
    /// </summary>
    public bool TryConsume(WorkKind kind, long amount = 1)
    {
        int k = (int)kind;
        long limit = _limit[k];
        while (true)
        {
            long used = Volatile.Read(ref _used[k]);
            if (amount < 0 || amount > limit - used)
            {
                MarkExhausted(kind);
                return false;
            }
            if (Interlocked.CompareExchange(ref _used[k], used + amount, used) == used) return true;
        }
    }

    private void MarkExhausted(WorkKind kind)
    {
        int bit = 1 << (int)kind, seen;
        do seen = Volatile.Read(ref _exhausted);
        while ((seen & bit) == 0 && Interlocked.CompareExchange(ref _exhausted, seen | bit, seen) != seen);
    }

    public bool IsExhausted(WorkKind kind) => (Volatile.Read(ref _exhausted) & (1 << (int)kind)) != 0;

    public bool AnyExhausted => Volatile.Read(ref _exhausted) != 0;

    /// <summary>The families that ran out, in enum order.</summary>
    public IReadOnlyList<WorkKind> Exhausted => Enum.GetValues<WorkKind>().Where(IsExhausted).ToArray();

    /// <summary>One line for a diagnostic: which budget, how much was used, and the limit.</summary>
    public string Describe(WorkKind kind) =>
        $"work budget {LimitName(kind)} = {Limit(kind)} exhausted ({Used(kind)} used, more requested)";
}
