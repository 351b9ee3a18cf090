using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// Where the printk ring buffer's fields are (kernel/printk/printk_ringbuffer.h, include/linux/dev_printk.h): from BTF,
/// or, on a kernel without BTF (or with --no-btf), from the OFFSET/SIZE lines the kernel itself publishes in VMCOREINFO
/// for crash tools (log_buf_vmcoreinfo_setup(), every kernel since 5.10). Every member is checked to lie inside its
/// struct before it is used.
/// </summary>
public sealed record PrintkLayout
{
    public int DescRing { get; init; }
    public int TextDataRing { get; init; }
    public int CountBits { get; init; }
    public int Descs { get; init; }
    public int Infos { get; init; }
    public int HeadId { get; init; }
    public int TailId { get; init; }
    public int SizeBits { get; init; }
    public int Data { get; init; }
    public int DescSize { get; init; }
    public int StateVar { get; init; }
    public int Begin { get; init; }
    public int Next { get; init; }
    public int InfoSize { get; init; }
    public int Seq { get; init; }
    public int TsNsec { get; init; }
    public int TextLen { get; init; }
    public int Facility { get; init; }
    public int LevelBitOffset { get; init; }
    public int LevelBits { get; init; }
    public int? CallerId { get; init; }
    public string Source { get; init; } = "";

    // struct printk_info { u64 seq; u64 ts_nsec; u16 text_len; u8 facility; u8 flags:5; u8 level:3; u32 caller_id; ... }
    // since 5.10. VMCOREINFO states text_len but not the byte after it: facility is the next byte, and level the top
    // three bits of the one after (x86 allocates bitfields from the low bit: flags:5 first). Checked against
    // caller_id, which VMCOREINFO does state: it must follow those two bytes.
    private const int FacilityAfterTextLen = 2, FlagsLevelAfterTextLen = 3, LevelShiftInByte = 5, LevelWidth = 3;

    /// <exception cref="KernelModelException">Neither BTF nor VMCOREINFO describes the ring, or a member lies outside its struct.</exception>
    public static PrintkLayout Of(LinuxKernel kernel)
    {
        if (kernel.Btf is { } btf) return FromBtf(btf, kernel.Reader.PointerSize);
        if (kernel.VmcoreInfo is { } info) return FromVmcoreInfo(info, kernel.Reader.PointerSize);
        throw new KernelModelException("the printk ring's layout needs BTF or the kernel's VMCOREINFO, and neither was found");
    }

    public static PrintkLayout FromBtf(BtfTypes btf, int word)
    {
        try
        {
            StructLayout S(string name) => btf.FindStruct(name) ?? throw new KernelModelException($"BTF has no struct {name}");
            var rb = S("printk_ringbuffer");
            var desc = S("prb_desc_ring");
            var text = S("prb_data_ring");
            var d = S("prb_desc");
            var i = S("printk_info");
            var level = i.GetMember("level");
            return new PrintkLayout
            {
                DescRing = (int)rb.Offset("desc_ring"), TextDataRing = (int)rb.Offset("text_data_ring"),
                CountBits = (int)desc.Offset("count_bits"), Descs = (int)desc.Offset("descs"), Infos = (int)desc.Offset("infos"),
                HeadId = (int)desc.Offset("head_id"), TailId = (int)desc.Offset("tail_id"),
                SizeBits = (int)text.Offset("size_bits"), Data = (int)text.Offset("data"),
                DescSize = d.Size, StateVar = (int)d.Offset("state_var"), Begin = (int)d.Offset("text_blk_lpos.begin"), Next = (int)d.Offset("text_blk_lpos.next"),
                InfoSize = i.Size, Seq = (int)i.Offset("seq"), TsNsec = (int)i.Offset("ts_nsec"), TextLen = (int)i.Offset("text_len"),
                Facility = (int)i.Offset("facility"), LevelBitOffset = (int)level.BitOffset, LevelBits = level.BitfieldSize,
                CallerId = i.HasMember("caller_id") ? (int)i.Offset("caller_id") : null,
                Source = "BTF",
            }.Checked(word, rb.Size, desc.Size, text.Size);
        }
        catch (Exception e) when (e is KeyNotFoundException or ArgumentException or BtfFormatException or OverflowException)
        {
            throw new KernelModelException($"BTF: printk ring: {e.Message}");
        }
    }

    public static PrintkLayout FromVmcoreInfo(KernelVmcoreInfo info, int word)
    {
        int O(string s, string m) => info.TryGetOffset(s, m, out int v) ? v : throw new KernelModelException($"VMCOREINFO has no OFFSET({s}.{m}) ({info.Source})");
        int Z(string s) => info.TryGetSize(s, out int v) ? v : throw new KernelModelException($"VMCOREINFO has no SIZE({s}) ({info.Source})");
        int textLen = O("printk_info", "text_len");
        int? caller = info.TryGetOffset("printk_info", "caller_id", out int c) ? c : null;
        if (caller is { } at && at < textLen + FlagsLevelAfterTextLen + 1)
            throw new KernelModelException($"VMCOREINFO: printk_info.caller_id at {at} leaves no room for facility and level after text_len at {textLen}");
        int lpos = O("prb_desc", "text_blk_lpos");
        return new PrintkLayout
        {
            DescRing = O("printk_ringbuffer", "desc_ring"), TextDataRing = O("printk_ringbuffer", "text_data_ring"),
            CountBits = O("prb_desc_ring", "count_bits"), Descs = O("prb_desc_ring", "descs"), Infos = O("prb_desc_ring", "infos"),
            HeadId = O("prb_desc_ring", "head_id"), TailId = O("prb_desc_ring", "tail_id"),
            SizeBits = O("prb_data_ring", "size_bits"), Data = O("prb_data_ring", "data"),
            DescSize = Z("prb_desc"), StateVar = O("prb_desc", "state_var"),
            Begin = lpos + O("prb_data_blk_lpos", "begin"), Next = lpos + O("prb_data_blk_lpos", "next"),
            InfoSize = Z("printk_info"), Seq = O("printk_info", "seq"), TsNsec = O("printk_info", "ts_nsec"), TextLen = textLen,
            Facility = textLen + FacilityAfterTextLen, LevelBitOffset = (textLen + FlagsLevelAfterTextLen) * 8 + LevelShiftInByte, LevelBits = LevelWidth,
            CallerId = caller,
            Source = info.Source,
        }.Checked(word, Z("printk_ringbuffer"), Z("prb_desc_ring"), Z("prb_data_ring"));
    }

    /// <summary>Every member read must end inside its struct (guest data: BTF and VMCOREINFO alike).</summary>
    private PrintkLayout Checked(int word, int ringSize, int descRingSize, int dataRingSize)
    {
        void Inside(string what, int size, params (string Member, int Offset, int Width)[] members)
        {
            foreach (var (m, off, width) in members)
                if (off < 0 || width <= 0 || off + width > size)
                    throw new KernelModelException($"{Source}: {what}.{m} at {off} ({width} bytes) lies outside its {size} bytes");
        }
        Inside("printk_ringbuffer", ringSize, ("desc_ring", DescRing, 1), ("text_data_ring", TextDataRing, 1));
        Inside("printk_ringbuffer.desc_ring", Math.Max(ringSize - DescRing, 0), ("count_bits", CountBits, 4), ("descs", Descs, word), ("infos", Infos, word),
            ("head_id", HeadId, word), ("tail_id", TailId, word));
        Inside("prb_desc_ring", descRingSize, ("tail_id", TailId, word));
        Inside("prb_data_ring", dataRingSize, ("size_bits", SizeBits, 4), ("data", Data, word));
        Inside("printk_ringbuffer.text_data_ring", Math.Max(ringSize - TextDataRing, 0), ("data", Data, word));
        Inside("prb_desc", DescSize, ("state_var", StateVar, word), ("text_blk_lpos.begin", Begin, word), ("text_blk_lpos.next", Next, word));
        Inside("printk_info", InfoSize, ("seq", Seq, 8), ("ts_nsec", TsNsec, 8), ("text_len", TextLen, 2), ("facility", Facility, 1),
            ("level", LevelBitOffset / 8, (LevelBitOffset % 8 + LevelBits + 7) / 8), ("caller_id", CallerId ?? 0, 4));
        if (LevelBits is < 1 or > 8) throw new KernelModelException($"{Source}: printk_info.level is {LevelBits} bits wide");
        return this;
    }
}
