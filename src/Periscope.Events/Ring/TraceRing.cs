using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO.MemoryMappedFiles;
using Periscope.TraceRing;

namespace Periscope.Events.Ring;

/// <summary>A ring file that is not what the trace plugin writes: names the file and the offset of the bad field.</summary>
public sealed class TraceRingFormatException(string message) : Exception(message);

/// <summary>One record as the plugin wrote it: the header fields and the raw pt_regs bytes (decoded by the caller).</summary>
public readonly ref struct RawTraceRecord(ReadOnlySpan<byte> bytes)
{
    private readonly ReadOnlySpan<byte> _bytes = bytes;
    public ulong Seq => BinaryPrimitives.ReadUInt64LittleEndian(_bytes[TraceRingLayout.RecSeq..]);
    public RecordKind Kind => (RecordKind)BinaryPrimitives.ReadUInt32LittleEndian(_bytes[TraceRingLayout.RecKind..]);
    public uint Vcpu => BinaryPrimitives.ReadUInt32LittleEndian(_bytes[TraceRingLayout.RecVcpu..]);
    public long Timestamp => BinaryPrimitives.ReadInt64LittleEndian(_bytes[TraceRingLayout.RecTimestamp..]);
    public ulong GsBase => BinaryPrimitives.ReadUInt64LittleEndian(_bytes[TraceRingLayout.RecGsBase..]);
    public ulong PtRegs => BinaryPrimitives.ReadUInt64LittleEndian(_bytes[TraceRingLayout.RecPtRegs..]);
    public ulong PtRegsPhysical => BinaryPrimitives.ReadUInt64LittleEndian(_bytes[TraceRingLayout.RecPtRegsPhys..]);
    public ulong Current => BinaryPrimitives.ReadUInt64LittleEndian(_bytes[TraceRingLayout.RecCurrent..]);
    /// <summary>The plugin copied current->pid, tgid and comm at the event (<see cref="Pid"/>, <see cref="Tgid"/>, <see cref="Comm"/>).</summary>
    public bool HasIds => BinaryPrimitives.ReadUInt32LittleEndian(_bytes[TraceRingLayout.RecIdsValid..]) == 1;
    public int Pid => BinaryPrimitives.ReadInt32LittleEndian(_bytes[TraceRingLayout.RecPid..]);
    public int Tgid => BinaryPrimitives.ReadInt32LittleEndian(_bytes[TraceRingLayout.RecTgid..]);
    public ReadOnlySpan<byte> Comm => _bytes.Slice(TraceRingLayout.RecComm, TraceRingLayout.CommBytes);
    /// <summary>The argument the plugin copied from the caller's memory when the call entered (a path without its NUL,
    /// or a sockaddr: <see cref="TraceRingLayout.CaptureTable"/>); empty when it did not.</summary>
    public ReadOnlySpan<byte> CapturedArgument
    {
        get
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(_bytes[TraceRingLayout.RecPathLength..]);
            return length == 0 || length > TraceRingLayout.MaxPathBytes ? default : _bytes.Slice(TraceRingLayout.RecPath, (int)length);
        }
    }

    /// <summary>The captured argument is only its first bytes (longer than the record holds, or partly unmapped).</summary>
    public bool CapturedTruncated => BinaryPrimitives.ReadUInt32LittleEndian(_bytes[TraceRingLayout.RecPathFlags..]) != 0;

    /// <summary>The captured pt_regs bytes; empty when the plugin could not read them.</summary>
    public ReadOnlySpan<byte> Regs
    {
        get
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(_bytes[TraceRingLayout.RecRegsLength..]);
            return length == TraceRingLayout.MaxRegsBytes ? _bytes.Slice(TraceRingLayout.RecRegs, TraceRingLayout.MaxRegsBytes) : default;
        }
    }
}

/// <summary>Event counts of a trace: what the plugin saw, what reached us, and what was lost on the way.</summary>
/// <param name="Produced">Events the plugin saw (its sequence numbers, all vCPUs).</param>
/// <param name="Delivered">Records this reader consumed.</param>
/// <param name="Dropped">Events the plugin could not store because the ring was full (its own count).</param>
/// <param name="Gaps">Sequence numbers missing between consumed records (what this reader can prove was lost).</param>
public readonly record struct RingTotals(ulong Produced, ulong Delivered, ulong Dropped, ulong Gaps);

/// <summary>
/// The consumer's side of the trace plugin's shared-memory ring (<see cref="TraceRingLayout"/>): validates the header
/// once, then hands out records vCPU by vCPU without copying them, publishing its read index after each batch so the
/// plugin can reuse the space. The plugin never waits for us; a reader that falls behind sees gaps.
/// </summary>
public sealed unsafe class TraceRingReader : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _length;
    private readonly ulong[] _nextSeq;
    private ulong _delivered, _gaps;

    public string Path { get; }
    public uint VcpuCount { get; }
    public ulong Capacity { get; }

    private TraceRingReader(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, byte* basePointer, long length)
    {
        Path = path;
        _file = file;
        _view = view;
        _base = basePointer;
        _length = length;
        try
        {
            if (length < TraceRingLayout.ControlSize) Throw.Bad(path, 0, $"{length} bytes, shorter than the {TraceRingLayout.ControlSize}-byte control page");
            if (U64(TraceRingLayout.MagicOffset) != TraceRingLayout.Magic) Throw.Bad(path, TraceRingLayout.MagicOffset, "no trace ring magic (is the plugin loaded with ring= this file?)");
            if (U32(TraceRingLayout.VersionOffset) != TraceRingLayout.Version) Throw.Bad(path, TraceRingLayout.VersionOffset, $"ring version {U32(TraceRingLayout.VersionOffset)}, this reader knows {TraceRingLayout.Version}");
            if (U32(TraceRingLayout.RecordSizeOffset) != TraceRingLayout.RecordSize) Throw.Bad(path, TraceRingLayout.RecordSizeOffset, $"record size {U32(TraceRingLayout.RecordSizeOffset)}, expected {TraceRingLayout.RecordSize}");
            uint vcpus = U32(TraceRingLayout.VcpuCountOffset);
            if (vcpus == 0 || vcpus > TraceRingLayout.MaxVcpus) Throw.Bad(path, TraceRingLayout.VcpuCountOffset, $"{vcpus} vCPUs (1 to {TraceRingLayout.MaxVcpus})");
            ulong capacity = U64(TraceRingLayout.CapacityOffset);
            if (capacity == 0 || (capacity & (capacity - 1)) != 0 || capacity > TraceRingLayout.MaxRecordsPerVcpu)
                Throw.Bad(path, TraceRingLayout.CapacityOffset, $"{capacity} records per vCPU (a power of two up to {TraceRingLayout.MaxRecordsPerVcpu})");
            long need = TraceRingLayout.FileSize(vcpus, capacity);
            if (length < need) Throw.Bad(path, 0, $"{length} bytes, the header says {need}");
            VcpuCount = vcpus;
            Capacity = capacity;
            _nextSeq = new ulong[vcpus];
            // Start at the records still in the ring: what was overwritten before we came is not a gap of ours.
            for (uint v = 0; v < vcpus; v++)
            {
                ulong write = Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.WriteIndexOffset));
                ulong read = Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.ReadIndexOffset));
                if (write - read > capacity) Volatile.Write(ref *(ulong*)Header(v, TraceRingLayout.ReadIndexOffset), write - capacity);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static TraceRingReader Open(string path)
    {
        FileStream stream;
        try { stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite); }
        catch (FileNotFoundException) { throw new TraceRingFormatException($"{path}: no such ring (start QEMU with -plugin libperiscope-trace.so,ring={path},ram=RAMFILE)"); }
        long length = stream.Length;
        if (length == 0) { stream.Dispose(); throw new TraceRingFormatException($"{path}: empty file, not a trace ring"); }
        var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        var view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        return new TraceRingReader(path, file, view, p + view.PointerOffset, length);
    }

    public PluginState State => (PluginState)Volatile.Read(ref *(uint*)(_base + TraceRingLayout.StateOffset));
    public ulong EntryAddress => U64(TraceRingLayout.EntryVaddrOffset);
    public ulong EntryProbe => U64(TraceRingLayout.EntryProbeOffset);
    public ulong ExitProbe => U64(TraceRingLayout.ExitProbeOffset);
    public int QemuProcessId => (int)U32(TraceRingLayout.QemuPidOffset);

    /// <summary>Tells the plugin where `current` lives, so that each record carries the task at the event itself.</summary>
    /// <summary>Tells the plugin where task_struct keeps pid, tgid and comm (BTF), so that each record carries them as
    /// they were at the event. Takes effect with <see cref="TellCurrentTask"/>.</summary>
    public void TellTaskIds(int pid, int tgid, int comm)
    {
        *(uint*)(_base + TraceRingLayout.TaskPidOffset) = (uint)pid;
        *(uint*)(_base + TraceRingLayout.TaskTgidOffset) = (uint)tgid;
        Volatile.Write(ref *(uint*)(_base + TraceRingLayout.TaskCommOffset), (uint)comm);   // last: switches copying on
    }

    public ulong ReturnPath => U64(TraceRingLayout.ReturnPathOffset);
    public ulong ReturnProbe => U64(TraceRingLayout.ReturnProbeOffset);

    public void TellCurrentTask(ulong perCpuOffset, ulong directMapBase)
    {
        Volatile.Write(ref *(ulong*)(_base + TraceRingLayout.DirectMapBaseOffset), directMapBase);
        Volatile.Write(ref *(ulong*)(_base + TraceRingLayout.CurrentTaskPerCpuOffset), perCpuOffset);
    }

    /// <summary>
    /// Tells the plugin how to copy arguments from the caller's memory at entry: task_struct.mm, mm_struct.pgd, paging
    /// levels, where orig_ax and the argument registers sit in pt_regs, and per syscall number which argument to copy
    /// and as what (<see cref="TraceRingLayout.CaptureTable"/>; 0: none).
    /// </summary>
    public void TellArgumentCapture(int taskMm, int mmPgd, int pagingLevels, int origAx, ReadOnlySpan<int> argumentOffsets, ReadOnlySpan<byte> captureByNumber)
    {
        int n = Math.Min(captureByNumber.Length, TraceRingLayout.CaptureTableEntries);
        captureByNumber[..n].CopyTo(new Span<byte>(_base + TraceRingLayout.CaptureTable, n));
        *(uint*)(_base + TraceRingLayout.MmPgdOffset) = (uint)mmPgd;
        *(uint*)(_base + TraceRingLayout.PagingLevelsOffset) = (uint)pagingLevels;
        *(uint*)(_base + TraceRingLayout.PtRegsOrigAxOffset) = (uint)origAx;
        for (int i = 0; i < 6 && i < argumentOffsets.Length; i++) *(uint*)(_base + TraceRingLayout.PtRegsArgOffsets + i * 4) = (uint)argumentOffsets[i];
        Volatile.Write(ref *(uint*)(_base + TraceRingLayout.TaskMmOffset), (uint)taskMm);   // last: switches capture on
    }

    /// <summary>Asks the plugin to uninstall itself at its next event; QEMU then runs on without it.</summary>
    public void RequestUninstall() => Volatile.Write(ref *(uint*)(_base + TraceRingLayout.UninstallRequestOffset), 1);

    public RingTotals Totals
    {
        get
        {
            ulong produced = 0, dropped = 0;
            for (uint v = 0; v < VcpuCount; v++)
            {
                produced += Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.ProducedOffset));
                dropped += Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.DroppedOffset));
            }
            return new RingTotals(produced, _delivered, dropped, _gaps);
        }
    }

    /// <summary>Records waiting, all vCPUs.</summary>
    public ulong Pending
    {
        get
        {
            ulong n = 0;
            for (uint v = 0; v < VcpuCount; v++)
                n += Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.WriteIndexOffset)) - Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.ReadIndexOffset));
            return n;
        }
    }

    /// <summary>Each vCPU's write index now: with <see cref="HasRead"/>, "every record written so far has been read".</summary>
    public ulong[] WriteIndices()
    {
        var marks = new ulong[VcpuCount];
        for (uint v = 0; v < VcpuCount; v++) marks[v] = Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.WriteIndexOffset));
        return marks;
    }

    /// <summary>True when the reader has handed out every record before <paramref name="writeIndices"/> (<see cref="WriteIndices"/>).</summary>
    public bool HasRead(ReadOnlySpan<ulong> writeIndices)
    {
        for (uint v = 0; v < VcpuCount && v < writeIndices.Length; v++)
            if (Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.ReadIndexOffset)) < writeIndices[(int)v]) return false;
        return true;
    }

    /// <summary>Drops what is waiting: the next records read are the ones produced from now on.</summary>
    public void SkipWaiting()
    {
        for (uint v = 0; v < VcpuCount; v++)
        {
            Volatile.Write(ref *(ulong*)Header(v, TraceRingLayout.ReadIndexOffset), Volatile.Read(ref *(ulong*)Header(v, TraceRingLayout.WriteIndexOffset)));
            _nextSeq[v] = 0;   // the first record read sets it; losses before it show in the plugin's dropped count
        }
    }

    public delegate void RecordHandler(in RawTraceRecord record);

    /// <summary>Hands every waiting record (at most <paramref name="max"/>) to <paramref name="handler"/>; returns how many.</summary>
    public int Drain(RecordHandler handler, int max = int.MaxValue)
    {
        int total = 0;
        for (uint v = 0; v < VcpuCount && total < max; v++)
        {
            ulong* writeIndex = (ulong*)Header(v, TraceRingLayout.WriteIndexOffset);
            ulong* readIndex = (ulong*)Header(v, TraceRingLayout.ReadIndexOffset);
            ulong write = Volatile.Read(ref *writeIndex), read = *readIndex;
            if (write - read > Capacity) read = write - Capacity;   // not a well-behaved producer: skip what it overwrote
            byte* ring = _base + TraceRingLayout.RingOffset(VcpuCount, Capacity, v);
            for (; read != write && total < max; read++, total++)
            {
                var bytes = new ReadOnlySpan<byte>(ring + (long)((read & (Capacity - 1)) * TraceRingLayout.RecordSize), TraceRingLayout.RecordSize);
                var record = new RawTraceRecord(bytes);
                ulong seq = record.Seq;
                if (seq > _nextSeq[v] && _nextSeq[v] != 0) _gaps += seq - _nextSeq[v];
                _nextSeq[v] = seq + 1;
                _delivered++;
                handler(record);
            }
            Volatile.Write(ref *readIndex, read);
        }
        return total;
    }

    private byte* Header(uint vcpu, int field) => _base + TraceRingLayout.ControlSize + vcpu * TraceRingLayout.VcpuHeaderSize + field;
    private ulong U64(int offset) => Volatile.Read(ref *(ulong*)(_base + offset));
    private uint U32(int offset) => Volatile.Read(ref *(uint*)(_base + offset));

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    private static class Throw
    {
        [DoesNotReturn]
        public static void Bad(string path, long offset, string what) => throw new TraceRingFormatException($"{path}: offset {offset}: {what}");
    }
}
