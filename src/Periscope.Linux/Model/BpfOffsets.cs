using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// What `bpf` reads of the kernel's eBPF objects (include/linux/bpf.h, filter.h, idr.h): the IDRs' xarray head, struct
/// bpf_prog and its bpf_prog_aux, struct bpf_map and struct bpf_link. From BTF, or inferred from the data without it
/// (<see cref="Inference.OffsetInference"/>, BpfRules); one member list for both. Each part is null when one of its
/// members is unknown, and the view then reports that part as a gap.
/// </summary>
public sealed record BpfOffsets
{
    /// <summary>idr.idr_rt.xa_head: prog_idr, map_idr and link_idr are struct idr.</summary>
    public int IdrXaHead { get; init; }
    public BpfProgOffsets? Prog { get; init; }
    public BpfMapOffsets? Map { get; init; }
    public BpfLinkOffsets? Link { get; init; }

    /// <summary>From BTF; null when BTF has no struct idr (or no bpf_prog: a kernel without CONFIG_BPF_SYSCALL).</summary>
    public static BpfOffsets? FromBtf(BtfTypes btf) => From((structName, path) => btf.FindStruct(structName)?.OffsetInside(path));

    /// <summary>From the inference report's known members (inferred now, or loaded from the offsets cache).</summary>
    public static BpfOffsets? FromReport(Inference.InferenceReport report) => From((structName, path) => report.Find(structName, path)?.Offset);

    /// <summary>From a source of member offsets by the kernel's names.</summary>
    private static BpfOffsets? From(Func<string, string, int?> O)
    {
        if (O("idr", "idr_rt.xa_head") is not { } head) return null;
        BpfProgOffsets? prog = null;
        if (O("bpf_prog", "type") is { } type && O("bpf_prog", "len") is { } len && O("bpf_prog", "jited_len") is { } jitedLen
            && O("bpf_prog", "tag") is { } tag && O("bpf_prog", "bpf_func") is { } func && O("bpf_prog", "aux") is { } aux
            && O("bpf_prog_aux", "name") is { } name)
            prog = new BpfProgOffsets
            {
                Type = type, Len = len, JitedLen = jitedLen, Tag = tag, BpfFunc = func, Aux = aux, AuxName = name,
                Insnsi = O("bpf_prog", "insnsi"), AuxId = O("bpf_prog_aux", "id"), AuxLoadTime = O("bpf_prog_aux", "load_time"),
                AuxUsedMaps = O("bpf_prog_aux", "used_maps"), AuxUsedMapCount = O("bpf_prog_aux", "used_map_cnt"),
            };
        BpfMapOffsets? map = null;
        if (O("bpf_map", "map_type") is { } mapType && O("bpf_map", "key_size") is { } keySize && O("bpf_map", "value_size") is { } valueSize
            && O("bpf_map", "max_entries") is { } maxEntries && O("bpf_map", "name") is { } mapName)
            map = new BpfMapOffsets { MapType = mapType, KeySize = keySize, ValueSize = valueSize, MaxEntries = maxEntries, Name = mapName, Id = O("bpf_map", "id") };
        BpfLinkOffsets? link = null;
        if (O("bpf_link", "type") is { } linkType && O("bpf_link", "prog") is { } linkProg)
            link = new BpfLinkOffsets { Type = linkType, Prog = linkProg, Id = O("bpf_link", "id") };
        return new BpfOffsets { IdrXaHead = head, Prog = prog, Map = map, Link = link };
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="Inference.OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        add("idr", "idr_rt.xa_head", IdrXaHead);
        if (Prog is { } p)
        {
            add("bpf_prog", "type", p.Type); add("bpf_prog", "len", p.Len); add("bpf_prog", "jited_len", p.JitedLen); add("bpf_prog", "tag", p.Tag);
            add("bpf_prog", "bpf_func", p.BpfFunc); add("bpf_prog", "aux", p.Aux); add("bpf_prog", "insnsi", p.Insnsi);
            add("bpf_prog_aux", "id", p.AuxId); add("bpf_prog_aux", "name", p.AuxName); add("bpf_prog_aux", "load_time", p.AuxLoadTime);
            add("bpf_prog_aux", "used_maps", p.AuxUsedMaps); add("bpf_prog_aux", "used_map_cnt", p.AuxUsedMapCount);
        }
        if (Map is { } m)
        {
            add("bpf_map", "map_type", m.MapType); add("bpf_map", "key_size", m.KeySize); add("bpf_map", "value_size", m.ValueSize);
            add("bpf_map", "max_entries", m.MaxEntries); add("bpf_map", "id", m.Id); add("bpf_map", "name", m.Name);
        }
        if (Link is { } l) { add("bpf_link", "id", l.Id); add("bpf_link", "type", l.Type); add("bpf_link", "prog", l.Prog); }
    }
}

/// <summary>struct bpf_prog and bpf_prog_aux. Optional members (null) leave a column empty with a gap: the instructions
/// (no helper scan), the id (the IDR index is the id by construction: bpf_prog_alloc_id), the load time and the maps.</summary>
public sealed record BpfProgOffsets
{
    public int Type { get; init; }
    public int Len { get; init; }
    public int JitedLen { get; init; }
    public int Tag { get; init; }
    public int BpfFunc { get; init; }
    public int Aux { get; init; }
    public int? Insnsi { get; init; }
    public int? AuxId { get; init; }
    public int AuxName { get; init; }
    public int? AuxLoadTime { get; init; }
    public int? AuxUsedMaps { get; init; }
    public int? AuxUsedMapCount { get; init; }
}

/// <summary>struct bpf_map; the id is optional (the IDR index is the id by construction: bpf_map_alloc_id).</summary>
public sealed record BpfMapOffsets
{
    public int MapType { get; init; }
    public int KeySize { get; init; }
    public int ValueSize { get; init; }
    public int MaxEntries { get; init; }
    public int? Id { get; init; }
    public int Name { get; init; }
}

/// <summary>struct bpf_link; the id is optional (the IDR index is the id by construction: bpf_link_prime).</summary>
public sealed record BpfLinkOffsets
{
    public int? Id { get; init; }
    public int Type { get; init; }
    public int Prog { get; init; }
}
