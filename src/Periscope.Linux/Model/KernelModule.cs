namespace Periscope.Linux.Model;

/// <summary>A loaded module as the kernel's `modules` list describes it; Base/Size are what /proc/modules prints.</summary>
public sealed record KernelModule
{
    public required ulong Address { get; init; }
    public required string Name { get; init; }
    public required ulong Base { get; init; }
    public required ulong Size { get; init; }
    public required ModuleState State { get; init; }
    /// <summary>Reference count as /proc/modules prints it, when the kernel tracks it.</summary>
    public int? References { get; init; }
    /// <summary>Executable part of the core image (from base), when the layout says.</summary>
    public ulong? TextSize { get; init; }
    /// <summary>Text plus read-only data (from base), when the layout says.</summary>
    public ulong? ReadOnlySize { get; init; }
    /// <summary>Names of the modules using this one (module->source_list, in list order); null when unavailable
    /// (no CONFIG_MODULE_UNLOAD, or the kernel's types do not describe struct module_use).</summary>
    public IReadOnlyList<string>? UsedBy { get; init; }
    /// <summary>Has an init function but no exit function: it can never be unloaded ("[permanent]" in /proc/modules).</summary>
    public bool Permanent { get; init; }

    /// <summary>The taint letters of this module in TAINT_* order (e.g. "OE"), as module_flags() prints them;
    /// null when unavailable, empty when the module taints nothing.</summary>
    public string? Taints { get; init; }
    /// <summary>module->taints was non-zero: /proc/modules then ends the line with <see cref="ProcFlags"/>.</summary>
    public bool Tainted { get; init; }

    /// <summary>The last field of a /proc/modules line ("(OE)", "(O+)" while loading), or null when it has none.</summary>
    public string? ProcFlags => Tainted && Taints is not null
        ? $"({Taints}{(State == ModuleState.Going ? "-" : State == ModuleState.Coming ? "+" : "")})" : null;

    /// <summary>
    /// The "used by" field exactly as /proc/modules prints it (kernel/module/procfs.c, print_unload_info): each user's
    /// name followed by a comma, then "[permanent]," if so, or "-" when there is neither; null when unavailable.
    /// </summary>
    public string? ProcUsedBy => UsedBy is null ? null
        : UsedBy.Count == 0 && !Permanent ? "-"
        : string.Concat(UsedBy.Select(u => u + ",")) + (Permanent ? "[permanent]," : "");
}

public enum ModuleState { Live = 0, Coming = 1, Going = 2, Unformed = 3, Unknown = -1 }

public static class ModuleStates
{
    /// <summary>The word /proc/modules uses.</summary>
    public static string ProcName(this ModuleState s) => s switch
    {
        ModuleState.Live => "Live",
        ModuleState.Coming => "Loading",
        ModuleState.Going => "Unloading",
        ModuleState.Unformed => "Unformed",
        _ => "?",
    };
}
