using System.Buffers.Binary;
using System.Text;

namespace Periscope.Linux.Model;

/// <summary>Log levels as printk numbers them (include/linux/kern_levels.h), and syslog's names for them.</summary>
public enum LogLevel
{
    Emerg = 0, Alert = 1, Crit = 2, Err = 3, Warn = 4, Notice = 5, Info = 6, Debug = 7,
}

/// <summary>One record of the kernel log, as the printk ring buffer holds it.</summary>
/// <param name="Sequence">printk_info.seq: the record's number since boot (gaps mean records were overwritten).</param>
/// <param name="TimestampNs">printk_info.ts_nsec: local_clock() when the message was stored (ns since boot).</param>
/// <param name="Facility">syslog facility (0 = kernel, 1 = user for /dev/kmsg writes).</param>
/// <param name="CallerId">printk_info.caller_id: a task id, or 0x80000000 | CPU for a message from interrupt context.</param>
/// <param name="Text">The message without its trailing newline; it may hold several lines.</param>
/// <param name="Truncated">The data block was shorter than text_len says (the record was being overwritten).</param>
public sealed record LogRecord(ulong Sequence, ulong TimestampNs, LogLevel Level, int Facility, uint CallerId, string Text, bool Truncated = false)
{
    /// <summary><c>[    1.234567]</c>: the time prefix printk prints (seconds padded to 5, microseconds).</summary>
    public string TimePrefix => $"[{TimestampNs / 1_000_000_000,5}.{TimestampNs % 1_000_000_000 / 1000:D6}]";

    /// <summary>The lines as the syslog interface (busybox <c>dmesg -r</c>) prints them: <c>&lt;6&gt;[    0.000000] text</c>,
    /// each line of a multi-line message with the same prefix.</summary>
    public IEnumerable<string> SyslogLines()
    {
        string prefix = $"<{(Facility << 3) | (int)Level}>{TimePrefix} ";
        foreach (var line in Text.Split('\n')) yield return prefix + line;
    }
}

/// <summary>
/// The kernel log read from the lockless printk ring buffer of Linux 5.10 and later (kernel/printk/printk_ringbuffer.h):
/// <c>prb</c> points to a <c>printk_ringbuffer</c> whose descriptor ring (<c>descs</c>, <c>infos</c>, 2^count_bits of
/// each) names, per record, a block of the text data ring (2^size_bits bytes). Every layout comes from BTF through the
/// typed object API; the rings' sizes are capped (MaxPrintkRecords, MaxPrintkTextBytes) before anything is allocated,
/// and each array is read in one piece. Records are listed from tail_id to head_id; a descriptor whose id or state does
/// not match (being written, already reused) is skipped, as the kernel's own readers do.
/// </summary>
public sealed class PrintkLog(LinuxKernel kernel)
{
    // Descriptor state in the top two bits of state_var (DESC_SV_BITS = BITS_PER_LONG, DESC_FLAGS_SHIFT = BITS_PER_LONG - 2):
    // enum desc_state { desc_miss = -1, desc_reserved = 0, desc_committed = 1, desc_finalized = 2, desc_reusable = 3 }.
    // These are macros and a function-local enum that BTF does not carry; they are the same from 5.10 to 7.x. Ids, lpos
    // and each data block's leading owner id are unsigned longs: the guest's word.
    private const int DescCommitted = 1, DescFinalized = 2;

    /// <summary>The records, oldest first. Problems (a ring too large, unreadable memory) are reported to the kernel's
    /// Diagnostics and leave the list incomplete; a kernel without the lockless ring buffer raises KernelModelException.</summary>
    public IReadOnlyList<LogRecord> Read()
    {
        var limits = kernel.Limits;
        if (!kernel.DataAddresses.TryGetAddress("prb", out ulong prbVar))
            throw new KernelModelException("neither kallsyms nor VMCOREINFO names 'prb': not a kernel with the lockless printk ring buffer (5.10 or later)");
        var l = PrintkLayout.Of(kernel);
        int word = kernel.Reader.PointerSize;
        int flagsShift = word * 8 - 2;
        ulong idMask = (1UL << flagsShift) - 1;
        ulong rb = ReadPointer(prbVar, "prb");
        ulong descRing = rb + (ulong)l.DescRing, textRing = rb + (ulong)l.TextDataRing;
        int countBits = (int)ReadU32(descRing + (ulong)l.CountBits, "desc_ring.count_bits");
        int sizeBits = (int)ReadU32(textRing + (ulong)l.SizeBits, "text_data_ring.size_bits");
        if (countBits is < 0 or > 30 || (1L << countBits) > limits.MaxPrintkRecords)
            throw new KernelModelException($"printk ring: count_bits = {countBits} asks for more than MaxPrintkRecords = {limits.MaxPrintkRecords} descriptors");
        if (sizeBits is < 0 or > 30 || (1L << sizeBits) > limits.MaxPrintkTextBytes)
            throw new KernelModelException($"printk ring: size_bits = {sizeBits} asks for more than MaxPrintkTextBytes = {limits.MaxPrintkTextBytes} bytes");
        long count = 1L << countBits, size = 1L << sizeBits;
        int descSize = l.DescSize, infoSize = l.InfoSize;
        if (count * Math.Max(descSize, infoSize) > limits.MaxGuestAllocation * 64L)
            throw new KernelModelException($"printk ring: {count} descriptors of {descSize} and {infoSize} bytes are more than this reader allocates");

        var descs = ReadArray(ReadPointer(descRing + (ulong)l.Descs, "desc_ring.descs"), count * descSize, "descriptor ring");
        var infos = ReadArray(ReadPointer(descRing + (ulong)l.Infos, "desc_ring.infos"), count * infoSize, "info ring");
        var data = ReadArray(ReadPointer(textRing + (ulong)l.Data, "text_data_ring.data"), size, "text data ring");
        ulong tail = ReadWord(descRing + (ulong)l.TailId, "desc_ring.tail_id") & idMask;
        ulong head = ReadWord(descRing + (ulong)l.HeadId, "desc_ring.head_id") & idMask;

        var records = new List<LogRecord>();
        // At most `count` ids lie between tail and head; a hostile pair of ids cannot make the loop longer.
        ulong span = (head - tail) & idMask;
        if (span >= (ulong)count)
        {
            kernel.Diagnostics.ReportIncomplete("printk", $"tail_id 0x{tail:x} and head_id 0x{head:x} are {span} apart, more than the {count} descriptors: reading the last {count}");
            tail = (head - (ulong)count + 1) & idMask;
        }
        for (ulong id = tail; ; id = (id + 1) & idMask)
        {
            long index = (long)(id & (ulong)(count - 1));
            var d = descs.AsSpan((int)(index * descSize), descSize);
            ulong sv = Word(d[l.StateVar..], word);
            int state = (int)(sv >> flagsShift);
            if ((sv & idMask) == id && state is DescCommitted or DescFinalized)
            {
                var info = infos.AsSpan((int)(index * infoSize), infoSize);
                ulong begin = Word(d[l.Begin..], word);
                ulong next = Word(d[l.Next..], word);
                int textLen = BinaryPrimitives.ReadUInt16LittleEndian(info[l.TextLen..]);
                var (message, truncated) = Text(data, sizeBits, begin, next, textLen, word);
                int levelByte = l.LevelBitOffset / 8, levelShift = l.LevelBitOffset % 8;
                ulong levelBits = (ulong)(info[levelByte] | (levelShift + l.LevelBits > 8 && levelByte + 1 < info.Length ? info[levelByte + 1] << 8 : 0)) >> levelShift;
                records.Add(new LogRecord(
                    BinaryPrimitives.ReadUInt64LittleEndian(info[l.Seq..]),
                    BinaryPrimitives.ReadUInt64LittleEndian(info[l.TsNsec..]),
                    (LogLevel)(levelBits & ((1UL << Math.Clamp(l.LevelBits, 1, 8)) - 1) & 7),
                    info[l.Facility],
                    l.CallerId is { } c ? BinaryPrimitives.ReadUInt32LittleEndian(info[c..]) : 0,
                    message, truncated));
            }
            if (id == head) break;
        }
        return records;
    }

    private static ulong Word(ReadOnlySpan<byte> bytes, int word) =>
        word == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes);

    /// <summary>get_data(): a block that does not wrap lies at DATA_INDEX(begin); one that wraps starts again at the ring's
    /// first byte. Data-less records (lpos with bit 0 set) have empty text.</summary>
    private static (string Text, bool Truncated) Text(byte[] data, int sizeBits, ulong begin, ulong next, int textLen, int dataBlockIdSize)
    {
        if ((begin & 1) != 0 || (next & 1) != 0 || textLen == 0) return ("", textLen != 0);
        ulong mask = (1UL << sizeBits) - 1;
        ulong beginWraps = begin >> sizeBits, nextWraps = next >> sizeBits;
        long start, length;
        if (beginWraps == nextWraps && next > begin) { start = (long)(begin & mask); length = (long)(next - begin); }
        else if (beginWraps + 1 == nextWraps) { start = 0; length = (long)(next & mask); }
        else return ("", true);
        if (start + length > data.Length || length < dataBlockIdSize) return ("", true);
        int available = (int)length - dataBlockIdSize;
        int n = Math.Min(textLen, available);
        string s = Encoding.UTF8.GetString(data, (int)start + dataBlockIdSize, n);
        if (s.EndsWith('\n')) s = s[..^1];
        return (s, n < textLen);
    }

    private ulong ReadPointer(ulong va, string what) =>
        kernel.Reader.TryPointer(va, out ulong p) && p != 0 ? p : throw new KernelModelException($"printk ring: cannot read the pointer {what} at 0x{va:x}");

    /// <summary>An unsigned long or atomic_long_t (ids, lpos): the guest's word.</summary>
    private ulong ReadWord(ulong va, string what) =>
        kernel.Reader.TryPointer(va, out ulong v) ? v : throw new KernelModelException($"printk ring: cannot read {what} at 0x{va:x}");

    private uint ReadU32(ulong va, string what) =>
        kernel.Reader.TryU32(va, out uint v) ? v : throw new KernelModelException($"printk ring: cannot read {what} at 0x{va:x}");

    private byte[] ReadArray(ulong va, long length, string what)
    {
        var buffer = new byte[length];
        int got = kernel.Reader.Read(va, buffer);
        if (got != length)
            kernel.Diagnostics.ReportIncomplete("printk", $"{what}: read {got} of {length} bytes at 0x{va:x}");
        return buffer;
    }
}
