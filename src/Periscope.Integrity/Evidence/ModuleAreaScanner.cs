using System.Buffers.Binary;
using Periscope.Linux;

namespace Periscope.Integrity.Evidence;

/// <summary>A struct module found in memory that no listed module owns.</summary>
public sealed record HiddenModule(ulong Address, string Name, ulong Base, ulong Size, ulong TextSize);

/// <summary>
/// Finds modules unlinked from the `modules` list: every vmalloc area in the module area (MODULES_VADDR..MODULES_END,
/// where module_alloc places module cores on x86-64) that no listed module covers is searched for a struct module whose core base points
/// back at the area. Bounded by <see cref="Periscope.Memory.IntrospectionLimits.MaxVmapAreas"/> and
/// <see cref="Periscope.Memory.IntrospectionLimits.MaxHiddenModuleScanBytes"/>.
/// </summary>
public static class ModuleAreaScanner
{
    public static IReadOnlyList<HiddenModule> FindHidden(LinuxKernel kernel, EvidenceLayout layout, List<EvidenceGap> gaps)
    {
        var result = new List<HiddenModule>();
        var area = layout.VmapArea;
        if (area is null) { gaps.Add(new(EvidenceFamily.HiddenModules, "struct vmap_area not usable in BTF: " + string.Join("; ", layout.Missing))); return result; }
        if (!kernel.Symbols.TryGetAddress("vmap_area_list", out ulong head)) { gaps.Add(new(EvidenceFamily.HiddenModules, "symbol vmap_area_list not found")); return result; }
        var listed = kernel.Modules;
        var o = kernel.Offsets.Module;
        int baseOffset = o.CoreLayout is { } core ? core + o.LayoutBase : o.Mem is { } mem ? mem + o.LayoutBase : -1;
        if (baseOffset < 0) { gaps.Add(new(EvidenceFamily.HiddenModules, "struct module has no core layout base in BTF")); return result; }
        int perArea = kernel.Limits.MaxHiddenModuleScanBytes;
        long budget = kernel.Limits.MaxHiddenModuleScanTotalBytes;
        foreach (ulong va in kernel.Lists.Walk(head, area["list"], kernel.Limits.MaxVmapAreas, "vmap area list", includeHead: false))
        {
            if (!kernel.Reader.TryU64(va + (ulong)area["va_start"], out ulong s) || !kernel.Reader.TryU64(va + (ulong)area["va_end"], out ulong e)) continue;
            if (!kernel.ModuleArea.Contains(s) || e <= s) continue;
            if (listed.Any(m => m.Base != 0 && m.Base < e && m.Base + Math.Max(m.Size, 1) > s)) continue;
            ulong length = Math.Min(e - s, (ulong)perArea);
            if ((long)length > budget)
            {
                gaps.Add(new(EvidenceFamily.HiddenModules, $"module-area scan stopped at 0x{s:x}: {kernel.Limits.MaxHiddenModuleScanTotalBytes} bytes searched (the limit)"));
                break;
            }
            budget -= (long)length;
            if (Search(kernel, s, length, baseOffset) is { } hidden) result.Add(hidden);
        }
        return result;
    }

    /// <summary>A struct module in [start, start+length) whose core base is <paramref name="start"/>.</summary>
    public static HiddenModule? Search(LinuxKernel kernel, ulong start, ulong length, int baseOffset)
    {
        var o = kernel.Offsets.Module;
        var bytes = new byte[length];
        int n = kernel.KernelSpace.Read(start, bytes);
        for (int off = 0; off + baseOffset + 8 <= n; off += 8)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(off + baseOffset)) != start) continue;
            ulong candidate = start + (ulong)off;
            string? name = kernel.Reader.ReadFixedString(candidate + (ulong)o.Name, o.NameSize);
            if (name is not { Length: > 0 } || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')) continue;
            var (size, text) = CoreSize(kernel, candidate);
            return new HiddenModule(candidate, name, start, size, text);
        }
        return null;
    }

    /// <summary>Core size and text size of a struct module (6.1 core_layout or 6.4+ mem[MOD_TEXT]).</summary>
    public static (ulong Size, ulong Text) CoreSize(LinuxKernel kernel, ulong module)
    {
        var o = kernel.Offsets.Module;
        if (o.CoreLayout is { } core)
        {
            kernel.Reader.TryU32(module + (ulong)core + (ulong)o.LayoutSize, out uint size);
            uint text = 0;
            if (o.LayoutTextSize is { } ts) kernel.Reader.TryU32(module + (ulong)core + (ulong)ts, out text);
            return (size, text);
        }
        if (o.Mem is { } mem)
        {
            // mem[0] is MOD_TEXT (enum mod_mem_type); its size is the text, the core is what the text area spans.
            kernel.Reader.TryU32(module + (ulong)mem + (ulong)o.LayoutSize, out uint text);
            return (text, text);
        }
        return (0, 0);
    }
}
