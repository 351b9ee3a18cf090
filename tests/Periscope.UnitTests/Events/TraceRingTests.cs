using System.Buffers.Binary;
using Periscope.Events;
using Periscope.Events.Ring;
using Periscope.Events.Syscalls;
using Periscope.TraceRing;

namespace Periscope.UnitTests.Events;

/// <summary>The consumer side of the trace ring on synthetic ring files: records, sequence gaps, and malformed headers
/// (a ring file is input like any other: one line naming the file and offset).</summary>
public sealed class TraceRingTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"trace-ring-{Guid.NewGuid():n}");

    public void Dispose() => File.Delete(_path);

    private byte[] Ring(uint vcpus = 1, ulong capacity = 8)
    {
        var bytes = new byte[TraceRingLayout.FileSize(vcpus, capacity)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(TraceRingLayout.MagicOffset), TraceRingLayout.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(TraceRingLayout.VersionOffset), TraceRingLayout.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(TraceRingLayout.RecordSizeOffset), TraceRingLayout.RecordSize);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(TraceRingLayout.VcpuCountOffset), vcpus);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(TraceRingLayout.CapacityOffset), capacity);
        return bytes;
    }

    /// <summary>Writes records with the given sequence numbers into vCPU 0's ring, as the plugin would.</summary>
    private static void Produce(byte[] ring, ulong capacity, params ulong[] seqs)
    {
        long header = TraceRingLayout.ControlSize;
        ulong write = BinaryPrimitives.ReadUInt64LittleEndian(ring.AsSpan((int)header + TraceRingLayout.WriteIndexOffset));
        foreach (ulong seq in seqs)
        {
            int rec = (int)(TraceRingLayout.RingOffset(1, capacity, 0) + (long)((write % capacity) * TraceRingLayout.RecordSize));
            BinaryPrimitives.WriteUInt64LittleEndian(ring.AsSpan(rec + TraceRingLayout.RecSeq), seq);
            BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(rec + TraceRingLayout.RecKind), (uint)RecordKind.SyscallEntry);
            BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(rec + TraceRingLayout.RecRegsLength), TraceRingLayout.MaxRegsBytes);
            BinaryPrimitives.WriteUInt64LittleEndian(ring.AsSpan(rec + TraceRingLayout.RecRegs + 120), seq * 10);   // orig_ax
            write++;
        }
        BinaryPrimitives.WriteUInt64LittleEndian(ring.AsSpan((int)header + TraceRingLayout.WriteIndexOffset), write);
        BinaryPrimitives.WriteUInt64LittleEndian(ring.AsSpan((int)header + TraceRingLayout.ProducedOffset), seqs[^1]);
    }

    [Fact]
    public void Records_are_delivered_in_order_and_skipped_sequence_numbers_count_as_gaps()
    {
        var ring = Ring();
        Produce(ring, 8, 1, 2, 5, 6);
        BinaryPrimitives.WriteUInt64LittleEndian(ring.AsSpan(TraceRingLayout.ControlSize + TraceRingLayout.DroppedOffset), 2);
        File.WriteAllBytes(_path, ring);
        using var reader = TraceRingReader.Open(_path);
        var seen = new List<(ulong Seq, ulong Nr)>();
        Assert.Equal(4, reader.Drain((in RawTraceRecord r) => seen.Add((r.Seq, BinaryPrimitives.ReadUInt64LittleEndian(r.Regs[120..])))));
        Assert.Equal([(1UL, 10UL), (2, 20), (5, 50), (6, 60)], seen);
        Assert.Equal(new RingTotals(6, 4, 2, 2), reader.Totals);
        Assert.Equal(0, reader.Drain((in RawTraceRecord _) => { }));
    }

    [Theory]
    [InlineData(TraceRingLayout.MagicOffset, 0UL, "no trace ring magic")]
    [InlineData(TraceRingLayout.VcpuCountOffset, 0UL, "0 vCPUs")]
    [InlineData(TraceRingLayout.VcpuCountOffset, 1000UL, "1000 vCPUs")]
    [InlineData(TraceRingLayout.CapacityOffset, 6UL, "6 records per vCPU")]
    [InlineData(TraceRingLayout.CapacityOffset, 1UL << 40, "records per vCPU")]
    [InlineData(TraceRingLayout.RecordSizeOffset, 64UL, "record size 64")]
    public void Malformed_header_is_one_message_naming_file_and_offset(int offset, ulong value, string expected)
    {
        var ring = Ring();
        if (offset is TraceRingLayout.VcpuCountOffset or TraceRingLayout.RecordSizeOffset)
            BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(offset), (uint)value);
        else
            BinaryPrimitives.WriteUInt64LittleEndian(ring.AsSpan(offset), value);
        File.WriteAllBytes(_path, ring);
        var e = Assert.Throws<TraceRingFormatException>(() => TraceRingReader.Open(_path));
        Assert.StartsWith($"{_path}: offset {offset}: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_ring_shorter_than_its_header_says_is_rejected()
    {
        var ring = Ring(capacity: 1024);
        File.WriteAllBytes(_path, ring.AsSpan(0, 8192).ToArray());
        var e = Assert.Throws<TraceRingFormatException>(() => TraceRingReader.Open(_path));
        Assert.Contains("8192 bytes, the header says", e.Message);
    }

    [Theory]
    [InlineData("__x64_sys_openat", "openat")]
    [InlineData("__do_sys_getuid", "getuid")]
    [InlineData("__x64_sys_ni_syscall", null)]
    [InlineData("evil_hook", "evil_hook")]
    public void Syscall_names_come_from_the_dispatch_targets_symbol(string symbol, string? name) =>
        Assert.Equal(name, SyscallTable.SyscallName(symbol));

    [Theory]
    [InlineData("openat", -2L, "-1 ENOENT")]
    [InlineData("read", 16L, "16")]
    [InlineData("mmap", 0x7f0000001000L, "0x7f0000001000")]
    [InlineData("close", -4095L, "-1 errno 4095")]
    public void Return_values_read_like_strace(string name, long value, string text) =>
        Assert.Equal(text, SyscallFormatter.ReturnText(name, value));

    [Fact]
    public void Path_argument_positions_follow_the_call()
    {
        Assert.Equal(1, SyscallFormatter.PathArgument("openat"));
        Assert.Equal(0, SyscallFormatter.PathArgument("execve"));
        Assert.Equal(-1, SyscallFormatter.PathArgument("read"));
        Assert.Equal(-1, SyscallFormatter.PathArgument(null));
    }

    [Theory]
    [InlineData("openat", 2)]                                      // the path, argument 1
    [InlineData("execve", 1)]
    [InlineData("connect", 2 | TraceRingLayout.CaptureSockAddr)]  // the sockaddr, argument 1, its length argument 2
    [InlineData("bind", 2 | TraceRingLayout.CaptureSockAddr)]
    [InlineData("sendto", 5 | TraceRingLayout.CaptureSockAddr)]   // dest_addr is argument 4, addrlen 5
    [InlineData("getppid", 0)]
    [InlineData("read", 0)]
    [InlineData(null, 0)]
    public void The_plugin_is_told_to_copy_paths_and_sockaddrs_when_the_call_enters(string? name, int code) =>
        Assert.Equal((byte)code, SyscallFormatter.CaptureCode(name));

    public static TheoryData<byte[], string> SockAddrs => new()
    {
        { [1, 0, .. "/tmp/s.sock"u8, 0, 0xff], "{sa_family=AF_UNIX, sun_path=\"/tmp/s.sock\"}" },
        { [1, 0, 0, .. "abstract"u8], "{sa_family=AF_UNIX, sun_path=@\"abstract\"}" },
        { [2, 0, 0x10, 0x92, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "{sa_family=AF_INET, sin_port=htons(4242), sin_addr=inet_addr(\"127.0.0.1\")}" },
        { [10, 0, 0, 80, 0, 0, 0, 0, .. new byte[15], 1, 0, 0, 0, 0], "{sa_family=AF_INET6, sin6_port=htons(80), sin6_addr=\"::1\"}" },
        { [2, 0, 0x10], "{sa_family=2}" },                         // too short for an address: the family number only
        { [0x2a, 0], "{sa_family=42}" },
        { [1], "{}" },
    };

    [Theory]
    [MemberData(nameof(SockAddrs))]
    public void Captured_sockaddr_bytes_read_like_strace(byte[] bytes, string text) => Assert.Equal(text, SyscallFormatter.SockAddrText(bytes));

    [Fact]
    public void A_captured_argument_is_bounded_by_the_record_and_says_when_it_was_cut()
    {
        var ring = Ring();
        Produce(ring, 8, 1, 2, 3);
        int Rec(int i) => (int)TraceRingLayout.RingOffset(1, 8, 0) + i * TraceRingLayout.RecordSize;
        BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(Rec(0) + TraceRingLayout.RecPathLength), 5);
        "hello"u8.CopyTo(ring.AsSpan(Rec(0) + TraceRingLayout.RecPath));
        BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(Rec(1) + TraceRingLayout.RecPathLength), TraceRingLayout.MaxPathBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(Rec(1) + TraceRingLayout.RecPathFlags), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(ring.AsSpan(Rec(2) + TraceRingLayout.RecPathLength), TraceRingLayout.MaxPathBytes + 1);   // hostile: past the record's slot
        File.WriteAllBytes(_path, ring);
        using var reader = TraceRingReader.Open(_path);
        var seen = new List<(string Bytes, int Length, bool Cut)>();
        reader.Drain((in RawTraceRecord r) => seen.Add((System.Text.Encoding.ASCII.GetString(r.CapturedArgument), r.CapturedArgument.Length, r.CapturedTruncated)));
        Assert.Equal(("hello", 5, false), seen[0]);
        Assert.Equal((TraceRingLayout.MaxPathBytes, true), (seen[1].Length, seen[1].Cut));
        Assert.Equal(0, seen[2].Length);
    }
}
