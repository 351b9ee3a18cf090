using System.Buffers.Binary;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Integrity.Evidence;

/// <summary>A struct module found in memory that no listed module owns.</summary>
public sealed record HiddenModule(ulong Address, string Name, ulong Base, ulong Size, ulong TextSize);

/// <summary>What the module area holds besides listed modules: hidden modules, and vmalloc areas no module owns.</summary>
public sealed record ModuleAreaView(IReadOnlyList<HiddenModule> Hidden, IReadOnlyList<VmallocArea> Unowned, bool Complete);

/// <summary>
/// Finds modules unlinked from the `modules` list: every busy vmalloc area in the module area (MODULES_VADDR..MODULES_END
/// on x86-64; the vmalloc range on i386) that no listed module's memory overlaps is searched for a struct module whose
/// own memory descriptor (core_layout before 6.4, a mem[] entry since) points back at the area. The areas come from
/// <see cref="VmallocAreas"/> (every era, BTF or inferred offsets); every read is word-size aware. Bounded by
/// <see cref="Periscope.Memory.IntrospectionLimits.MaxVmapAreas"/> and
/// <see cref="Periscope.Memory.IntrospectionLimits.MaxHiddenModuleScanBytes"/>.
/// </summary>
public static class ModuleAreaScanner
{
    /// <summary>verify's HiddenModules evidence: hidden modules, or a gap saying why the scan could not run or finish.</summary>
    public static IReadOnlyList<HiddenModule> FindHidden(LinuxKernel kernel, List<EvidenceGap> gaps)
    {
        if (VmallocAreas.Open(kernel, out string reason) is not { } areas)
        {
            gaps.Add(new(EvidenceFamily.HiddenModules, reason));
            return [];
        }
        long budget = kernel.Limits.MaxHiddenModuleScanTotalBytes;
        ulong? stoppedAt = null;
        var view = Scan(kernel, areas.Walk(kernel.Limits.MaxVmapAreas), (start, length) =>
        {
            if ((long)length > budget) { stoppedAt ??= start; return false; }
            budget -= (long)length;
            return true;
        });
        if (stoppedAt is { } at)
            gaps.Add(new(EvidenceFamily.HiddenModules, $"module-area scan stopped at 0x{at:x}: {kernel.Limits.MaxHiddenModuleScanTotalBytes} bytes searched (the limit)"));
        return view.Hidden;
    }

    /// <summary>
    /// Sorts the areas inside the module area into owned (a listed module's memory overlaps it), hidden (it holds a
    /// struct module that points back at it; the hidden module's other memory is then its own, not unowned) and unowned.
    /// <paramref name="mayRead"/> is asked before each area is searched (start, bytes): false skips it and makes the
    /// view incomplete.
    /// </summary>
    public static ModuleAreaView Scan(LinuxKernel kernel, IEnumerable<VmallocArea> areas, Func<ulong, ulong, bool> mayRead)
    {
        var owned = new List<(ulong Start, ulong End)>();
        foreach (var m in kernel.Modules) owned.AddRange(MemoryOf(kernel, m.Address));
        var candidates = new List<VmallocArea>();
        foreach (var a in areas)
        {
            if (!kernel.ModuleArea.Contains(a.Start) || a.End <= a.Start) continue;
            if (!Overlaps(owned, a.Start, a.End)) candidates.Add(a);
        }
        var hidden = new List<HiddenModule>();
        var hiddenMemory = new List<(ulong Start, ulong End)>();
        var searchedEmpty = new List<VmallocArea>();
        bool complete = true;
        int perArea = kernel.Limits.MaxHiddenModuleScanBytes;
        foreach (var a in candidates)
        {
            ulong length = Math.Min(a.End - a.Start, (ulong)perArea);
            if (!mayRead(a.Start, length)) { complete = false; searchedEmpty.Add(a); continue; }
            if (Search(kernel, a.Start, length) is { } h)
            {
                hidden.Add(h);
                hiddenMemory.AddRange(MemoryOf(kernel, h.Address));
            }
            else searchedEmpty.Add(a);
        }
        var unowned = searchedEmpty.Where(a => !Overlaps(hiddenMemory, a.Start, a.End)).ToList();
        return new ModuleAreaView(hidden, unowned, complete);
    }

    private static bool Overlaps(List<(ulong Start, ulong End)> ranges, ulong start, ulong end) =>
        ranges.Any(r => r.Start < end && r.End > start);

    /// <summary>Every memory range a struct module describes: core (and init) layout before 6.4, each mem[] since.</summary>
    public static IEnumerable<(ulong Start, ulong End)> MemoryOf(LinuxKernel kernel, ulong module)
    {
        var r = kernel.Reader;
        foreach (int descriptor in Descriptors(kernel.Offsets.Module))
        {
            ulong at = module + (ulong)descriptor;
            if (!r.TryPointer(at + (ulong)kernel.Offsets.Module.LayoutBase, out ulong b) || !r.TryU32(at + (ulong)kernel.Offsets.Module.LayoutSize, out uint s)) continue;
            if (b == 0 || s == 0 || b + s < b) continue;
            yield return (b, b + s);
        }
    }

    /// <summary>Offsets in struct module of its memory descriptors (struct module_layout or module_memory).</summary>
    private static IEnumerable<int> Descriptors(ModuleOffsets o)
    {
        if (o.CoreLayout is { } core)
        {
            yield return core;
            if (o.InitLayout is { } init) yield return init;
        }
        else if (o.Mem is { } mem)
            for (int i = 0; i < o.MemCount; i++) yield return mem + i * o.MemSize;
    }

    /// <summary>A struct module in [start, start+length) one of whose memory descriptors has its base at <paramref name="start"/>
    /// (core_layout before 6.4: the struct lives in the core; mem[MOD_DATA] since: it lives in the data area).</summary>
    public static HiddenModule? Search(LinuxKernel kernel, ulong start, ulong length)
    {
        var o = kernel.Offsets.Module;
        int word = kernel.Reader.PointerSize;
        int[] baseOffsets = [.. Descriptors(o).Select(d => d + o.LayoutBase)];
        if (baseOffsets.Length == 0) return null;
        int reach = baseOffsets.Max() + word;
        var bytes = new byte[length];
        int n = kernel.KernelSpace.Read(start, bytes);
        for (int off = 0; off + reach <= n; off += word)
        {
            bool points = false;
            foreach (int b in baseOffsets)
            {
                var at = bytes.AsSpan(off + b, word);
                ulong value = word == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(at) : BinaryPrimitives.ReadUInt32LittleEndian(at);
                if (value == start) { points = true; break; }
            }
            if (!points) continue;
            ulong candidate = start + (ulong)off;
            string? name = kernel.Reader.ReadFixedString(candidate + (ulong)o.Name, o.NameSize);
            if (name is not { Length: > 0 } || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')) continue;
            var (text, size, textSize) = CoreOf(kernel, candidate);
            return new HiddenModule(candidate, name, text, size, textSize);
        }
        return null;
    }

    /// <summary>Base, size and text size of a struct module as the module list reports a listed one (6.1 core_layout;
    /// 6.4+ mem[MOD_TEXT]'s base, the sum of every mem[] size, and MOD_TEXT's size).</summary>
    public static (ulong Base, ulong Size, ulong Text) CoreOf(LinuxKernel kernel, ulong module)
    {
        var o = kernel.Offsets.Module;
        var r = kernel.Reader;
        if (o.CoreLayout is { } core)
        {
            r.TryPointer(module + (ulong)core + (ulong)o.LayoutBase, out ulong b);
            r.TryU32(module + (ulong)core + (ulong)o.LayoutSize, out uint size);
            uint text = 0;
            if (o.LayoutTextSize is { } ts) r.TryU32(module + (ulong)core + (ulong)ts, out text);
            return (b, size, text);
        }
        if (o.Mem is { } mem)
        {
            ulong textBase = 0, total = 0, text = 0;
            for (int i = 0; i < o.MemCount; i++)
            {
                ulong m = module + (ulong)mem + (ulong)i * (ulong)o.MemSize;
                r.TryU32(m + (ulong)o.LayoutSize, out uint s);
                total += s;
                if (i == o.MemText) { r.TryPointer(m + (ulong)o.LayoutBase, out textBase); text = s; }
            }
            return (textBase, total, text);
        }
        return (0, 0, 0);
    }
}
