namespace Periscope.Integrity.Evidence;

/// <summary>Who owns the code a branch now goes to.</summary>
public enum CodeOwnerKind { KernelText, ListedModule, HiddenModule, Unowned }

/// <summary>Where control goes: owner kind, module (if any), and a symbol+offset description.</summary>
public sealed record ControlTarget(ulong Address, CodeOwnerKind Owner, ModuleEvidence? Module, string Description)
{
    public override string ToString() => Description;
}

/// <summary>Lookups over one <see cref="EvidenceSnapshot"/>: sets and a sorted symbol array. Pure and immutable.</summary>
public sealed class EvidenceIndex
{
    /// <summary>A kernel symbol (no size recorded) is taken to cover at most this many bytes when naming an address.</summary>
    private const ulong MaxKernelSymbolSpan = 1 << 20;
    private readonly Dictionary<ulong, ulong> _jumps = [];
    private readonly HashSet<ulong> _staticCalls;
    private readonly HashSet<ulong> _ftraceSites;
    private readonly CodeSymbol[] _symbols;

    public EvidenceIndex(EvidenceSnapshot snapshot)
    {
        Snapshot = snapshot;
        foreach (var j in snapshot.JumpEntries) _jumps.TryAdd(j.Code, j.Target);
        _staticCalls = [.. snapshot.StaticCallSites];
        _ftraceSites = [.. snapshot.FtraceSites];
        _symbols = [.. snapshot.Symbols];
        // Collected symbols arrive in address order (kallsyms, then each module's): sort only when they do not, stably.
        if (!IsSorted(_symbols)) _symbols = [.. snapshot.Symbols.OrderBy(s => s.Address)];
    }

    public EvidenceSnapshot Snapshot { get; }

    private static bool IsSorted(CodeSymbol[] symbols)
    {
        for (int i = 1; i < symbols.Length; i++)
            if (symbols[i].Address < symbols[i - 1].Address) return false;
        return true;
    }

    public bool InKernelText(ulong va) => va >= Snapshot.KernelTextStart && va < Snapshot.KernelTextEnd;

    public bool TryGetJumpTarget(ulong code, out ulong target) => _jumps.TryGetValue(code, out target);
    public bool IsStaticCallSite(ulong va) => _staticCalls.Contains(va);
    public bool IsFtraceSite(ulong va) => _ftraceSites.Contains(va);
    public IReadOnlyDictionary<ulong, ulong> JumpTargets => _jumps;

    /// <summary>The listed (not hidden) module holding <paramref name="va"/>.</summary>
    public ModuleEvidence? ListedModuleAt(ulong va) => Snapshot.Modules.FirstOrDefault(m => !m.Hidden && m.Contains(va));

    public ModuleEvidence? ModuleAt(ulong va) => ListedModuleAt(va) ?? Snapshot.Modules.FirstOrDefault(m => m.Hidden && m.Contains(va));

    /// <summary>True when <paramref name="va"/> is the first byte of a function in kernel text or in a listed module.</summary>
    public bool IsFunctionStart(ulong va)
    {
        // A binary search over the sorted symbols, not a set of their addresses: verify builds two indexes of ~100,000
        // symbols each, and hashing every address into a set was a tenth of its time (allocation and page faults).
        if (!StartsSymbol(va)) return false;
        if (InKernelText(va)) return true;
        return ListedModuleAt(va) is not null;
    }

    private bool StartsSymbol(ulong va)
    {
        int lo = 0, hi = _symbols.Length - 1;
        while (lo <= hi)
        {
            int mid = lo + (hi - lo) / 2;
            ulong at = _symbols[mid].Address;
            if (at == va) return true;
            if (at < va) lo = mid + 1; else hi = mid - 1;
        }
        return false;
    }

    /// <summary>The symbol holding <paramref name="va"/>: the nearest at or below it, within its size (or a bounded
    /// span for kernel symbols, which carry no size) and owned by the same module or the kernel.</summary>
    public bool TryFindSymbol(ulong va, out CodeSymbol symbol)
    {
        int lo = 0, hi = _symbols.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (_symbols[mid].Address <= va) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        symbol = found >= 0 ? _symbols[found] : default;
        if (found < 0) return false;
        ulong offset = va - symbol.Address;
        if (symbol.Size != 0) return offset < symbol.Size;
        if (symbol.Module != 0) return false;
        return offset < MaxKernelSymbolSpan && InKernelText(va) == InKernelText(symbol.Address);
    }

    public ulong? SymbolAddress(string name)
    {
        foreach (var s in _symbols) if (s.Module == 0 && s.Name == name) return s.Address;
        return null;
    }

    /// <summary>Where control goes when it reaches <paramref name="va"/>.</summary>
    public ControlTarget Resolve(ulong va)
    {
        var module = ModuleAt(va);
        string? sym = TryFindSymbol(va, out var s) && (module is null || s.Module == module.Address || s.Module == 0 && module.Contains(s.Address))
            ? (va == s.Address ? s.Name : $"{s.Name}+0x{va - s.Address:x}") : null;
        if (module is { Hidden: false } listed)
            return new ControlTarget(va, CodeOwnerKind.ListedModule, listed, sym is null ? $"{listed.Name}+0x{va - listed.Base:x}" : $"{sym} [{listed.Name}]");
        if (module is { Hidden: true } hidden)
            return new ControlTarget(va, CodeOwnerKind.HiddenModule, hidden,
                $"{sym ?? $"0x{va:x}"} in HIDDEN module {hidden.Name} (struct module at 0x{hidden.Address:x})");
        if (InKernelText(va))
            return new ControlTarget(va, CodeOwnerKind.KernelText, null, sym ?? $"kernel text 0x{va:x}");
        return new ControlTarget(va, CodeOwnerKind.Unowned, null, $"unowned executable memory at 0x{va:x}");
    }

    /// <summary>module+offset, symbol+offset, or the bare address: for finding locations.</summary>
    public string Describe(ulong va)
    {
        if (ModuleAt(va) is { } m) return $"{m.Name}+0x{va - m.Base:x}";
        if (TryFindSymbol(va, out var s) && s.Module == 0) return va == s.Address ? s.Name : $"{s.Name}+0x{va - s.Address:x}";
        return $"0x{va:x}";
    }
}
