using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Walks the `modules` list. Handles the 6.1 core_layout/init_layout and the 6.4+ mem[] layouts; mem[] indices
/// (enum mod_mem_type) and states (enum module_state) come from BTF. A node whose state is no module_state value, or
/// whose memory does not lie inside the module area, is not a struct module (for example the list head was pointed
/// into a task_struct): it is rejected with a diagnostic and the result is marked incomplete. Module bytes are drawn
/// from the work budget, so garbage sizes cannot add up to more than the module area holds.
/// </summary>
public sealed class ModuleList(GuestReader reader, KernelOffsets offsets, ListWalker lists, IntrospectionLimits limits, Diagnostics diagnostics, VirtualRange moduleArea,
    ulong? taintFlags = null)
{
    /// <summary>Bits of module->taints (an unsigned long): no more taint_flags entries are ever read.</summary>
    private const int TaintBits = 64;

    private const string Area = "module list";

    public IReadOnlyList<KernelModule> Read(ulong modulesHead)
    {
        var o = offsets.Module;
        var result = new List<KernelModule>();
        if (modulesHead == 0) return result; // no list head known (the caller said why)
        foreach (ulong module in lists.Walk(modulesHead, o.List, limits.MaxModules, Area, includeHead: false, budget: WorkKind.ModuleNodes))
        {
            string? name = reader.ReadFixedString(module + (ulong)o.Name, o.NameSize);
            if (name is null) { diagnostics.ReportIncomplete(Area, "unreadable struct module", module); continue; }
            reader.TryI32(module + (ulong)o.State, out int rawState);
            var state = o.StateOf(rawState);
            if (state == ModuleState.Unknown)
            {
                diagnostics.ReportIncomplete(Area, $"state {rawState} is no enum module_state value: not a struct module, skipped", module);
                continue;
            }
            ulong baseAddr = 0, size = 0;
            ulong? text = null, ro = null;
            string? implausible = null;
            if (o.CoreLayout is { } core)
            {
                ulong layout = module + (ulong)core;
                baseAddr = reader.PointerOrZero(layout + (ulong)o.LayoutBase);
                reader.TryU32(layout + (ulong)o.LayoutSize, out uint coreSize);
                size = coreSize;
                implausible ??= CheckExtent("core_layout", baseAddr, coreSize);
                if (o.InitLayout is { } init && reader.TryU32(module + (ulong)init + (ulong)o.LayoutSize, out uint initSize))
                {
                    implausible ??= CheckExtent("init_layout", reader.PointerOrZero(module + (ulong)init + (ulong)o.LayoutBase), initSize);
                    size += initSize;
                }
                if (o.LayoutTextSize is { } ts && reader.TryU32(layout + (ulong)ts, out uint t)) text = t;
                if (o.LayoutRoSize is { } rs && reader.TryU32(layout + (ulong)rs, out uint r)) ro = r;
                if (text > size || ro > size) implausible ??= $"text size {text} or read-only size {ro} exceeds the core size {coreSize}";
            }
            else if (o.Mem is { } mem)
            {
                for (int i = 0; i < o.MemCount; i++)
                {
                    ulong m = module + (ulong)mem + (ulong)i * (ulong)o.MemSize;
                    reader.TryU32(m + (ulong)o.LayoutSize, out uint s);
                    ulong b = reader.PointerOrZero(m + (ulong)o.LayoutBase);
                    implausible ??= CheckExtent($"mem[{i}]", b, s);
                    size += s;
                    if (i == o.MemText) { baseAddr = b; text = s; }
                    if (i == o.MemRodata) ro = s;
                }
            }
            if (size == 0 && state != ModuleState.Unformed) implausible ??= $"a {state} module with no memory";
            if (implausible is not null)
            {
                diagnostics.ReportIncomplete(Area, $"module '{name}': {implausible}: not a struct module, skipped", module);
                continue;
            }
            if (!reader.Budget.TryConsume(WorkKind.ModuleBytes, (long)Math.Min(size, long.MaxValue)))
            {
                diagnostics.ReportIncomplete(Area, $"module '{name}' of {size} bytes: {reader.Budget.Describe(WorkKind.ModuleBytes)}", module);
                break;
            }
            int? refs = null;
            if (o.RefCount is { } rc && reader.TryI32(module + (ulong)rc, out int count)) refs = count - KernelMacros.MODULE_REF_BASE;
            var (usedBy, permanent) = ReadUsers(module, name);
            var (taints, tainted) = ReadTaints(module, name);
            result.Add(new KernelModule
            {
                Address = module, Name = name, Base = baseAddr, Size = size, TextSize = text, ReadOnlySize = ro, References = refs,
                State = state, UsedBy = usedBy, Permanent = permanent, Taints = taints, Tainted = tainted,
            });
        }
        return result;
    }

    /// <summary>
    /// module_flags_taint(): the letter (c_true) of every set bit of module->taints whose taint_flags entry is a
    /// module flag (every set bit on 7.x, whose taint_flag has no module member), in bit order. Only set bits are looked up (at most 64 entries); a letter that is not a printable
    /// ASCII character is not a taint_flag entry: the taints are then unavailable, with a diagnostic.
    /// </summary>
    private (string? Letters, bool Tainted) ReadTaints(ulong module, string name)
    {
        if (offsets.ModuleTaint is not { } t || taintFlags is not { } table) return (null, false);
        if (!reader.TryULong(module + (ulong)t.Taints, out ulong bits)) return (null, false);
        var letters = new System.Text.StringBuilder();
        for (int bit = 0; bit < TaintBits; bit++)
        {
            if ((bits >> bit & 1) == 0) continue;
            ulong entry = table + (ulong)(bit * t.FlagSize);
            byte isModule = 1; // 7.x: no module flag, every set bit is printed
            if (!reader.TryU8(entry + (ulong)t.FlagLetter, out byte letter) || (t.FlagModule is { } fm && !reader.TryU8(entry + (ulong)fm, out isModule))
                || letter is < 0x21 or > 0x7e)
            {
                diagnostics.Report(Area, $"module '{name}': taint bit {bit} has no readable taint_flags entry at 0x{entry:x}", module);
                return (null, bits != 0);
            }
            if (isModule != 0) letters.Append((char)letter);
        }
        return (letters.ToString(), bits != 0);
    }

    /// <summary>
    /// The modules using this one: module->source_list links struct module_use entries (through use->source_list),
    /// each naming its user in use->source. The walk is capped (MaxModuleUsers) and drawn from the module-node
    /// budget; a user that is no readable kernel pointer ends the list with an incomplete diagnostic.
    /// </summary>
    private (IReadOnlyList<string>? UsedBy, bool Permanent) ReadUsers(ulong module, string name)
    {
        if (offsets.ModuleUse is not { } u) return (null, false);
        bool permanent = u.Init is { } init && u.Exit is { } exit && reader.TryPointer(module + (ulong)init, out ulong initFn) && initFn != 0
            && reader.TryPointer(module + (ulong)exit, out ulong exitFn) && exitFn == 0;
        var users = new List<string>();
        string what = $"users of module '{name}'";
        foreach (ulong use in lists.Walk(module + (ulong)u.SourceList, u.UseSourceList, limits.MaxModuleUsers, what, includeHead: false, budget: WorkKind.ModuleNodes))
        {
            if (!reader.TryPointer(use + (ulong)u.UseSource, out ulong source) || !reader.IsKernelPointer(source))
            {
                diagnostics.ReportIncomplete(what, $"module_use 0x{use:x} names no readable user module (source 0x{source:x})", use);
                break;
            }
            string? user = reader.ReadFixedString(source + (ulong)offsets.Module.Name, offsets.Module.NameSize);
            if (user is null)
            {
                diagnostics.ReportIncomplete(what, $"user module 0x{source:x} is unreadable", use);
                break;
            }
            users.Add(user);
        }
        return (users, permanent);
    }

    /// <summary>Null when [base, base + size) is empty or lies in the module area; otherwise why not.</summary>
    private string? CheckExtent(string what, ulong baseAddr, ulong size) =>
        size == 0 || moduleArea.Contains(baseAddr, size) ? null
            : $"{what} 0x{baseAddr:x} + {size} bytes lies outside the module area 0x{moduleArea.Start:x}-0x{moduleArea.End:x}";
}
