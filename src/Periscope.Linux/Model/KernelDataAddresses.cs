namespace Periscope.Linux.Model;

/// <summary>Where a kernel data object is, and how that was learned.</summary>
public readonly record struct DataAddress(string Name, ulong Address, string How);

/// <summary>
/// Kernel data objects the checks and evidence need by name (init_pid_ns, runqueues, vmap_area_list…): from kallsyms
/// when it has data symbols, else from the kernel's VMCOREINFO (which names a few: vmap_area_list before 6.9, prb, …),
/// else found by the object's own structure or by the code that uses it (kernels built
/// without CONFIG_KALLSYMS_ALL, such as Debian's i386 ones). Each finder is bounded and returns null rather than
/// guess; results are kept for the kernel's lifetime, misses too.
/// </summary>
public sealed class KernelDataAddresses(LinuxKernel kernel)
{
    private readonly Dictionary<string, DataAddress?> _found = [];
    private readonly Dictionary<string, string> _whyMissing = [];

    public bool TryGet(string name, out DataAddress found)
    {
        if (!_found.TryGetValue(name, out var cached)) _found[name] = cached = Find(name);
        found = cached ?? default;
        return cached is not null;
    }

    public bool TryGetAddress(string name, out ulong address)
    {
        bool ok = TryGet(name, out var found);
        address = found.Address;
        return ok;
    }

    /// <summary>Why the search for <paramref name="name"/> found nothing, when its finder says (for a gap's reason); empty otherwise.</summary>
    public string WhyMissing(string name) => TryGet(name, out _) ? "" : _whyMissing.GetValueOrDefault(name, "");

    private DataAddress? Find(string name)
    {
        if (kernel.Symbols.TryGetAddress(name, out ulong address)) return new DataAddress(name, address, "kallsyms");
        if (kernel.VmcoreInfo is { } info && info.TryGetSymbol(name, out address) && kernel.Reader.IsKernelPointer(address))
            return new DataAddress(name, address, $"SYMBOL({name}) in {info.Source}");
        try
        {
            return FindByStructure(name);
        }
        catch (Exception e) when (e is KernelModelException or ArgumentException or InvalidOperationException)
        {
            kernel.Log.Warn($"{name}: not in kallsyms, and the search by structure failed: {e.Message}");
            return null;
        }
    }

    private DataAddress? Missing(string name, DataAddress? found, string why)
    {
        if (found is null) _whyMissing[name] = why;
        return found;
    }

    /// <summary>The structural finders, one per object a kernel without data symbols still lets us find.</summary>
    private DataAddress? FindByStructure(string name) => name switch
    {
        "modules" => kernel.Inference?.ModulesHead is { } head
            ? new DataAddress(name, head, "the one list_head in the kernel's data cycling through module-area nodes shaped like struct module") : null,
        "__start___jump_table" or "__stop___jump_table" or "ftrace_pages_start" or "ftrace_ops_list" or "ftrace_list_end"
            => Missing(name, Inference.PatchTableDataSearch.Find(kernel, name, out string why), why),
        "vmap_area_list" => Inference.VmapAreaListSearch.Find(kernel.Reader, kernel.Symbols, kernel.Limits.MaxVmapAreas, out string why) is { } list ? new DataAddress(name, list, $"by code: {why}") : null,
        "init_pid_ns" => Inference.InitPidNamespaceSearch.Find(kernel),
        "runqueues" or "__per_cpu_offset" => RunQueueCodeDecoder.FindAddress(kernel, name),
        "tcp_hashinfo" or "udp_table" or "init_net" or "nl_table" => SocketTablesCode.Find(kernel.Reader, kernel.Symbols, name, out string how) is { } at ? new DataAddress(name, at, $"by code: {how}") : null,
        "tk_core" => TimekeeperCode.Find(kernel, name),
        "taint_flags" => Inference.ModuleTaintRule.FindTable(kernel.Reader, kernel.Symbols, kernel.Limits) is { } table
            ? new DataAddress(name, table, $"by code: the one address {string.Join("/", Inference.ModuleTaintRule.TableUsers)} refer to whose bytes fit one taint_flag layout") : null,
        "prog_idr" or "map_idr" or "link_idr" => kernel.Layouts.TryOffset("idr", "idr_rt.xa_head", out int head)
            && BpfIdrCode.Find(kernel.Reader, kernel.Symbols, name, head, out string found) is { } idr ? new DataAddress(name, idr, $"by code: {found}") : null,
        _ => null,
    };
}
