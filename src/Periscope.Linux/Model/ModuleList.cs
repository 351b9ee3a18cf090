using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>Walks the `modules` list. Handles the 6.1 core_layout/init_layout and the 6.4+ mem[] layouts.</summary>
public sealed class ModuleList(GuestReader reader, KernelOffsets offsets, ListWalker lists, IntrospectionLimits limits, Diagnostics diagnostics)
{
    // enum mod_mem_type in 6.4+: MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_*
    private const int ModText = 0, ModRodata = 2;

    public IReadOnlyList<KernelModule> Read(ulong modulesHead)
    {
        var o = offsets.Module;
        var result = new List<KernelModule>();
        foreach (ulong module in lists.Walk(modulesHead, o.List, limits.MaxModules, "module list", includeHead: false))
        {
            string? name = reader.ReadFixedString(module + (ulong)o.Name, o.NameSize);
            if (name is null) { diagnostics.Report("module", "unreadable struct module", module); continue; }
            reader.TryI32(module + (ulong)o.State, out int state);
            ulong baseAddr = 0, size = 0;
            ulong? text = null, ro = null;
            if (o.CoreLayout is { } core)
            {
                ulong layout = module + (ulong)core;
                baseAddr = reader.U64OrZero(layout + (ulong)o.LayoutBase);
                reader.TryU32(layout + (ulong)o.LayoutSize, out uint coreSize);
                size = coreSize;
                if (o.InitLayout is { } init && reader.TryU32(module + (ulong)init + (ulong)o.LayoutSize, out uint initSize)) size += initSize;
                if (o.LayoutTextSize is { } ts && reader.TryU32(layout + (ulong)ts, out uint t)) text = t;
                if (o.LayoutRoSize is { } rs && reader.TryU32(layout + (ulong)rs, out uint r)) ro = r;
            }
            else if (o.Mem is { } mem)
            {
                for (int i = 0; i < o.MemCount; i++)
                {
                    ulong m = module + (ulong)mem + (ulong)(i * o.MemSize);
                    reader.TryU32(m + (ulong)o.LayoutSize, out uint s);
                    size += s;
                    if (i == ModText) { baseAddr = reader.U64OrZero(m + (ulong)o.LayoutBase); text = s; }
                    if (i == ModRodata) ro = s;
                }
            }
            int? refs = null;
            if (o.RefCount is { } rc && reader.TryI32(module + (ulong)rc, out int count)) refs = count - 1; // MODULE_REF_BASE
            result.Add(new KernelModule
            {
                Address = module, Name = name, Base = baseAddr, Size = size, TextSize = text, ReadOnlySize = ro, References = refs,
                State = state is >= 0 and <= 3 ? (ModuleState)state : ModuleState.Unknown,
            });
        }
        return result;
    }
}
