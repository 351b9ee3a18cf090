using System.Buffers.Binary;
using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>What an xarray slot holds.</summary>
public enum XArrayEntryKind
{
    /// <summary>A pointer to an object (a bpf_prog in an IDR, a folio in a page cache).</summary>
    Pointer,
    /// <summary>A value entry (low bit set): in a page cache, the shadow of an evicted page.</summary>
    Value,
}

public readonly record struct XArrayEntry(ulong Index, ulong Entry, XArrayEntryKind Kind);

/// <summary>
/// Reads an xarray (the kernel's radix tree: IDRs, page caches) from its head pointer: internal entries (low bits 10,
/// above 4096) are xa_node pointers whose slots hold the next level, at index base + slot &lt;&lt; node.shift. Layout of
/// xa_node comes from BTF. Every node is cycle-checked, the depth is bounded by what 64-bit indices allow, and entries
/// and nodes (a tree of empty nodes costs reads too) each by the caller's cap (<see cref="Memory.IntrospectionLimits.MaxXarrayEntries"/>);
/// a bad node is a gap, never an exception.
/// </summary>
public sealed class XArrayReader
{
    /// <summary>XA_CHUNK_SIZE: slots per node (64; 16 with CONFIG_BASE_SMALL); a larger BTF array is refused.</summary>
    private const int MaxSlots = 64;
    /// <summary>64-bit indices in nodes of at least 16 slots are at most 16 levels deep.</summary>
    private const int MaxDepth = 16;
    /// <summary>xa_is_internal() entries below this are markers (retry, zero, sibling), not nodes.</summary>
    private const ulong InternalNodeMin = 4096;

    private readonly GuestReader _r;
    private readonly ulong _slotsOffset, _shiftOffset;
    private readonly int _slots, _chunkShift, _word;

    private XArrayReader(GuestReader reader, ulong slotsOffset, ulong shiftOffset, int slots)
    {
        _r = reader;
        _word = reader.PointerSize;
        _slotsOffset = slotsOffset;
        _shiftOffset = shiftOffset;
        _slots = slots;
        _chunkShift = System.Numerics.BitOperations.Log2((uint)slots);
    }

    /// <summary>A reader for this kernel's xa_node, or null (with the reason) when BTF lacks it or it is implausible.</summary>
    public static XArrayReader? Create(GuestReader reader, BtfTypes btf, out string? unavailable)
    {
        unavailable = null;
        var node = btf.FindStruct("xa_node");
        if (node is null || !node.HasMember("slots") || !node.HasMember("shift"))
        {
            unavailable = "BTF lacks struct xa_node (slots, shift)";
            return null;
        }
        int size = node.MemberSize("slots");
        int slots = size / reader.PointerSize;
        if (slots is < 2 or > MaxSlots || (slots & (slots - 1)) != 0)
        {
            unavailable = $"BTF says xa_node.slots has {slots} entries; a power of two up to {MaxSlots} expected";
            return null;
        }
        return new XArrayReader(reader, (ulong)node.Offset("slots"), (ulong)node.Offset("shift"), slots);
    }

    /// <summary>A reader from the kernel's fixed xa_node layout (<see cref="PidAbi"/>), for kernels without BTF.</summary>
    public static XArrayReader FromAbi(GuestReader reader)
    {
        var abi = PidAbi.For(reader.PointerSize);
        return new XArrayReader(reader, (ulong)abi.XaNodeSlots, (ulong)abi.XaNodeShift, PidAbi.XaChunkSize);
    }

    /// <summary>
    /// Every present entry of the xarray whose xa_head is <paramref name="head"/>, in index order, at most
    /// <paramref name="maxEntries"/>. Problems go to <paramref name="gaps"/>, prefixed with <paramref name="what"/>.
    /// </summary>
    public List<XArrayEntry> Read(ulong head, int maxEntries, string what, List<string> gaps)
    {
        var result = new List<XArrayEntry>();
        var seen = new HashSet<ulong>();
        Visit(head, 0, 0, result, seen, maxEntries, what, gaps, isRoot: true);
        return result;
    }

    private bool Visit(ulong entry, ulong index, int depth, List<XArrayEntry> result, HashSet<ulong> seen, int max, string what, List<string> gaps, bool isRoot)
    {
        if (entry == 0) return true;
        if ((entry & 3) == 2)
        {
            if (entry < InternalNodeMin) return true; // retry, zero or sibling marker: no object of its own
            return VisitNode(entry - 2, index, depth, result, seen, max, what, gaps);
        }
        if (!isRoot || index == 0)
        {
            if (result.Count >= max)
            {
                gaps.Add($"{what}: stopped at {max} entries (MaxXarrayEntries)");
                return false;
            }
            result.Add(new XArrayEntry(index, entry, (entry & 1) != 0 ? XArrayEntryKind.Value : XArrayEntryKind.Pointer));
        }
        return true;
    }

    private bool VisitNode(ulong node, ulong baseIndex, int depth, List<XArrayEntry> result, HashSet<ulong> seen, int max, string what, List<string> gaps)
    {
        if (depth > MaxDepth) { gaps.Add($"{what}: node 0x{node:x} is deeper than an xarray can be"); return true; }
        if (!_r.IsKernelPointer(node)) { gaps.Add($"{what}: node link 0x{node + 2:x} is not a kernel pointer"); return true; }
        if (!seen.Add(node)) { gaps.Add($"{what}: node 0x{node:x} reached twice (a cycle)"); return true; }
        if (seen.Count > max)
        {
            gaps.Add($"{what}: stopped at {max} nodes (MaxXarrayEntries)");
            return false;
        }
        if (!_r.TryU8(node + _shiftOffset, out byte shift) || shift >= 64 || shift % _chunkShift != 0)
        {
            gaps.Add($"{what}: node 0x{node:x} is unreadable or has an impossible shift");
            return true;
        }
        Span<byte> buffer = stackalloc byte[MaxSlots * 8];
        var bytes = buffer[..(_slots * _word)];
        if (_r.Read(node + _slotsOffset, bytes) != bytes.Length) { gaps.Add($"{what}: node 0x{node:x} is unreadable"); return true; }
        var children = new ulong[_slots];
        for (int i = 0; i < _slots; i++) children[i] = _word == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * 8)..]) : BinaryPrimitives.ReadUInt32LittleEndian(bytes[(i * 4)..]);
        for (int i = 0; i < _slots; i++)
        {
            ulong index = baseIndex + ((ulong)i << shift);
            if (!Visit(children[i], index, depth + 1, result, seen, max, what, gaps, isRoot: false)) return false;
        }
        return true;
    }
}
