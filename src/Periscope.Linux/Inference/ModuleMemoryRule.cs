using System.Buffers.Binary;
using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>One way to read struct module's mem[] array (6.4+): where it starts, where each entry's size sits, the stride.</summary>
public readonly record struct ModuleMemoryLayout(int Offset, int SizeOffset, int Stride, bool TreeNode);

/// <summary>
/// The 6.4+ module layout without BTF: struct module_memory mem[MOD_MEM_NUM_TYPES] = { void *base; [bool is_rox;]
/// unsigned int size; [struct mod_tree_node mtn = { struct module *mod; ... }] }. Every (offset, size offset, stride)
/// of the window is tested against every module: each entry's base is NULL exactly when its size is 0 and otherwise lies
/// in the module area; MOD_TEXT is non-empty; MOD_DATA holds the struct module itself; a live module's init entries
/// are empty (freed after init). With CONFIG_MODULES_TREE_LOOKUP (every distribution kernel) each entry's mtn.mod points
/// back to its module, which is asked for first; the stride-16 layout without the tree node is taken only when no
/// layout with it fits. The caller reports several survivors as an ambiguity.
/// </summary>
public static class ModuleMemoryRule
{
    /// <summary>Stride limits: module_memory is at least { base, size } and well under 128 bytes in every kernel since 6.4.</summary>
    public const int MinStride = 16, MaxStride = 128;

    /// <summary>The entry holding size: right after base (6.4..6.12), or after a 4-byte-padded bool is_rox (6.13+).</summary>
    private static readonly int[] SizeOffsets = [8, 12];

    public static List<ModuleMemoryLayout> Candidates(IReadOnlyList<(ulong Address, byte[] Window, bool Live)> modules, VirtualRange area, int from, Action<long> step)
    {
        var found = new List<ModuleMemoryLayout>();
        if (modules.Count == 0) return found;
        int window = modules.Min(m => m.Window.Length);
        foreach (bool treeNode in new[] { true, false })
        {
            for (int stride = treeNode ? ModMemTreeNodeMod + 8 : MinStride; stride <= MaxStride; stride += 8)
            {
                if (!treeNode && stride != MinStride) break; // without the tree node nothing else follows size
                for (int o = from; o + ModMemTypes * stride <= window; o += 8)
                {
                    foreach (int sizeOffset in SizeOffsets)
                    {
                        step(modules.Count);
                        var layout = new ModuleMemoryLayout(o, sizeOffset, stride, treeNode);
                        if (modules.All(m => Fits(m.Address, m.Window, m.Live, layout, area))) found.Add(layout);
                    }
                }
            }
            if (found.Count > 0) break;
        }
        return found;
    }

    private static bool Fits(ulong module, byte[] w, bool live, ModuleMemoryLayout l, VirtualRange area)
    {
        for (int i = 0; i < ModMemTypes; i++)
        {
            int e = l.Offset + i * l.Stride;
            ulong b = BinaryPrimitives.ReadUInt64LittleEndian(w.AsSpan(e, 8));
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(e + l.SizeOffset, 4));
            if ((b == 0) != (size == 0)) return false;
            if (b != 0 && !area.Contains(b, size)) return false;
            // is_rox is a bool: 0 or 1, and the padding up to size is zero.
            if (l.SizeOffset == 12 && (w[e + 8] > 1 || w[e + 9] != 0 || w[e + 10] != 0 || w[e + 11] != 0)) return false;
            if (l.TreeNode && BinaryPrimitives.ReadUInt64LittleEndian(w.AsSpan(e + ModMemTreeNodeMod, 8)) is var owner && owner != module && (size != 0 || owner != 0)) return false;
            if (i == ModMemText && size == 0) return false;
            if (i == ModMemData && !(module >= b && module - b < size)) return false;
            if (live && i >= ModMemFirstInit && size != 0) return false;
        }
        return true;
    }
}
