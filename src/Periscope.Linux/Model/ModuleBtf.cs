using Periscope.Linux.Btf;
using Periscope.Linux.Objects;

namespace Periscope.Linux.Model;

/// <summary>
/// Kernel modules' own types: each loaded module's split BTF, read from outside the way the kernel keeps it after the
/// load. struct module's btf_data points into the load image and is cleared once the module's init ran
/// (do_init_module), so the source is the kernel's btf_modules list (kernel/bpf/btf.c: one struct btf_module per
/// module with BTF, whose struct btf holds a copy of the raw .BTF section in data/data_size). Each blob is capped
/// (<see cref="Periscope.Memory.IntrospectionLimits.MaxModuleBtfBytes"/>), parsed on top of vmlinux's BTF, checked
/// against the start_id/start_str_off the kernel recorded, and cached per module; anything malformed is a reason
/// naming the module, never an exception. Layouts of btf_module and btf come from vmlinux BTF.
/// </summary>
public sealed class ModuleBtf(LinuxKernel kernel)
{
    private readonly Dictionary<string, (BtfTypes? Btf, string? Why)> _cache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, KernelObjects> _objects = new(StringComparer.Ordinal);

    /// <summary>The split BTF of <paramref name="module"/> combined with vmlinux's (ids below its
    /// <see cref="BtfTypes.FirstOwnId"/> are vmlinux's), or null with the reason.</summary>
    public BtfTypes? For(string module, out string? why)
    {
        if (!_cache.TryGetValue(module, out var entry))
            _cache[module] = entry = (Read(module, out string? reason), reason);
        why = entry.Why;
        return entry.Btf;
    }

    /// <summary>Typed objects with <paramref name="module"/>'s types as well as vmlinux's, or null with the reason.</summary>
    public KernelObjects? Objects(string module, out string? why)
    {
        if (_objects.TryGetValue(module, out var objects)) { why = null; return objects; }
        if (For(module, out why) is not { } btf) return null;
        return _objects[module] = new KernelObjects(btf, kernel.Reader, kernel.Symbols);
    }

    private BtfTypes? Read(string module, out string? why)
    {
        if (kernel.Btf is not { } vmlinux) { why = "the kernel's BTF is not used (offsets were inferred)"; return null; }
        if (!kernel.Symbols.TryGetAddress("btf_modules", out ulong head))
        {
            why = "kallsyms lists no btf_modules (a kernel without CONFIG_DEBUG_INFO_BTF_MODULES)";
            return null;
        }
        if (vmlinux.FindStruct("btf_module") is null || vmlinux.FindStruct("btf") is not { } btfType)
        {
            why = "vmlinux BTF lacks struct btf_module or struct btf";
            return null;
        }
        try
        {
            int visited = 0;
            foreach (var entry in kernel.Object("list_head", head).ListEntries("btf_module", "list"))
            {
                if (++visited > kernel.Limits.MaxBtfModules)
                {
                    why = $"btf_modules: no '{module}' within MaxBtfModules = {kernel.Limits.MaxBtfModules} entries";
                    return null;
                }
                if (!entry["module"].TryDeref(out var mod) || mod["name"].ReadString(64) != module) continue;
                if (!entry["btf"].TryDeref(out var btf)) { why = $"module {module}: btf_module.btf is unreadable"; return null; }
                return Parse(module, vmlinux, btf, btfType.HasMember("start_id"), out why);
            }
            why = $"module {module} is not loaded, or has no BTF (not on btf_modules)";
            return null;
        }
        catch (ObjectFaultException e)
        {
            why = $"btf_modules: {e.Message}";
            return null;
        }
        catch (ObjectTypeException e)
        {
            // This kernel's btf_module or btf lacks a member the walk uses: the module's types are unavailable, not a crash.
            why = $"btf_modules: {e.Message}";
            return null;
        }
    }

    private BtfTypes? Parse(string module, BtfTypes vmlinux, KernelObject btf, bool hasStart, out string? why)
    {
        ulong data = btf["data"].ReadPointer();
        ulong size = btf["data_size"].ReadUInt64();
        if (data == 0 || size == 0) { why = $"module {module}: struct btf 0x{btf.Address:x} has no data"; return null; }
        if (size > (ulong)kernel.Limits.MaxModuleBtfBytes)
        {
            why = $"module {module}: struct btf 0x{btf.Address:x} claims {size} bytes of BTF, more than MaxModuleBtfBytes = {kernel.Limits.MaxModuleBtfBytes}";
            return null;
        }
        var blob = new byte[size];
        if (kernel.Reader.Read(data, blob) != blob.Length)
        {
            why = $"module {module}: its BTF at 0x{data:x} ({size} bytes) is unreadable";
            return null;
        }
        if (hasStart)
        {
            // The kernel parsed this blob on top of vmlinux's: its first id and string offset must be where ours end.
            ulong startId = btf["start_id"].ReadUInt64(), startStr = btf["start_str_off"].ReadUInt64();
            if (startId != (ulong)vmlinux.Count + 1 || startStr != (ulong)vmlinux.StringSectionLength)
            {
                why = $"module {module}: its BTF starts at type id {startId} and string offset {startStr}, vmlinux's ends at {vmlinux.Count} and {vmlinux.StringSectionLength} (split on another base?)";
                return null;
            }
        }
        if (!BtfTypes.TryParseSplit(blob, vmlinux, kernel.Limits, out var types, out var error))
        {
            why = $"module {module}: BTF at 0x{data:x}, offset 0x{error!.Offset:x}: {error.Message}";
            return null;
        }
        why = null;
        return types;
    }
}
