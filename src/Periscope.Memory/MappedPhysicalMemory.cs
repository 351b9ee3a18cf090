using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;

namespace Periscope.Memory;

/// <summary>
/// Guest physical memory backed by one file mapped read-only (dump or live QEMU RAM file), described by a list of
/// segments produced by a format parser. The mapping is never writable.
/// </summary>
public sealed unsafe partial class MappedPhysicalMemory : IDirectPhysicalMemory, IAllocatedPhysicalMemory, IPrefetchableMemory, IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly ulong _fileLength;
    private readonly FileSegment[] _segments;
    private readonly IReadOnlyList<(ulong Start, ulong Length)> _dataExtents;
    // Most reads hit the same segment as the previous one; remember it (benign race: any index is valid).
    private int _lastSegment;
    private int _disposed;

    /// <summary>Maps <paramref name="path"/>, opened here with <see cref="Files.DumpFile.OpenRegular"/>.</summary>
    public MappedPhysicalMemory(string path, IReadOnlyList<FileSegment> segments, IntrospectionLimits? limits = null)
        : this(path, Files.DumpFile.OpenRegular(path, out var info), info, segments, limits ?? IntrospectionLimits.Default)
    {
    }

    /// <summary>Maps an already opened regular file; takes ownership of <paramref name="handle"/>.</summary>
    public MappedPhysicalMemory(string path, SafeFileHandle handle, Files.DumpFileInfo info, IReadOnlyList<FileSegment> segments, IntrospectionLimits limits)
    {
        Path = path;
        try
        {
            _fileLength = (ulong)RandomAccess.GetLength(handle);
            if (_fileLength == 0) ThrowHelper.Format(path, "file is empty");
            _segments = segments.OrderBy(s => s.PhysicalStart).ToArray();
            for (int i = 0; i < _segments.Length; i++)
            {
                var s = _segments[i];
                if (s.FileOffset > _fileLength || s.Length > _fileLength - s.FileOffset)
                    ThrowHelper.Format(path, s.FileOffset, $"segment for physical 0x{s.PhysicalStart:x} needs 0x{s.Length:x} bytes but the file is 0x{_fileLength:x} bytes long (truncated?)");
                if (i > 0 && s.PhysicalStart < _segments[i - 1].PhysicalEnd)
                    ThrowHelper.Format(path, s.FileOffset, $"segment at physical 0x{s.PhysicalStart:x} overlaps the previous one ending at 0x{_segments[i - 1].PhysicalEnd:x}");
            }
            // Holes are looked at before anything is mapped or scanned: a sparse 10 GiB file must cost what it holds.
            _dataExtents = Files.FileExtents.Data(path, handle, _fileLength, info, limits);
            _file = MemoryMappedFile.CreateFromFile(handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        // No read-around on a page fault: a command reads scattered structures out of a dump of many GiB, and each miss
        // read the device's whole read-ahead window around it (8 MiB on this machine's disk: a cold `ps` of a 4 GiB dump
        // read 377 MB of it for 48 misses). What is read in bulk (the kernel image) is asked for with Prefetch instead.
        // Advice only: an error leaves the default behaviour.
        _ = Madvise(p, (nuint)(_view.PointerOffset + (long)_fileLength), MadviseRandom);
        Map = new PhysicalMemoryMap(_segments.Select(s => new PhysicalRange(s.PhysicalStart, s.Length, s.Kind)));
    }

    /// <summary>RAM ranges whose bytes the file actually holds (holes of a sparse file left out; they read as zeros).
    /// Whole-RAM scans use this so their cost is what the file stores, not what it declares.</summary>
    public IEnumerable<PhysicalRange> AllocatedRam
    {
        get
        {
            foreach (var s in _segments)
            {
                if (s.Kind != PhysicalRangeKind.Ram) continue;
                foreach (var (start, length) in _dataExtents)
                {
                    ulong lo = Math.Max(start, s.FileOffset), hi = Math.Min(start + length, s.FileOffset + s.Length);
                    if (lo < hi) yield return new PhysicalRange(s.PhysicalStart + (lo - s.FileOffset), hi - lo, PhysicalRangeKind.Ram);
                }
            }
        }
    }

    public string Path { get; }
    public PhysicalMemoryMap Map { get; }
    public IReadOnlyList<FileSegment> Segments => _segments;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int FindSegment(ulong address)
    {
        int last = _lastSegment;
        var segs = _segments;
        if ((uint)last < (uint)segs.Length && address - segs[last].PhysicalStart < segs[last].Length)
            return last;
        return FindSegmentSlow(address);
    }

    private int FindSegmentSlow(ulong address)
    {
        int lo = 0, hi = _segments.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var s = _segments[mid];
            if (address < s.PhysicalStart) hi = mid - 1;
            else if (address - s.PhysicalStart >= s.Length) lo = mid + 1;
            else { _lastSegment = mid; return mid; }
        }
        return -1;
    }

    public byte* GetPointer(ulong address, out ulong available)
    {
        int i = FindSegment(address);
        if (i < 0) { available = 0; return null; }
        var s = _segments[i];
        ulong within = address - s.PhysicalStart;
        available = s.Length - within;
        return _base + s.FileOffset + within;
    }

    public ReadOnlySpan<byte> GetSpan(ulong address, int length)
    {
        byte* p = GetPointer(address, out ulong available);
        if (p == null || length < 0 || (ulong)length > available) return default;
        return new ReadOnlySpan<byte>(p, length);
    }

    /// <summary>Fast path for page-table walks and pointer chasing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadUInt64(ulong address, out ulong value)
    {
        byte* p = GetPointer(address, out ulong available);
        if (p == null || available < 8) { value = 0; return false; }
        value = Unsafe.ReadUnaligned<ulong>(p);
        if (!BitConverter.IsLittleEndian) value = BinaryPrimitives.ReverseEndianness(value);
        return true;
    }

    public int Read(ulong address, Span<byte> buffer) => this.ReadThroughPointers(address, buffer);

    private const int MadviseRandom = 1, MadviseWillNeed = 3, PageBytes = 4096;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);

    /// <summary>One MADV_WILLNEED request at most this long. Linux reads no more per request than the file's read-ahead
    /// window (force_page_cache_ra caps it at max(io_pages, ra_pages): 8 MiB on this machine's disk, 128 KiB by default),
    /// and silently drops the rest: a single 32 MiB request read only the first 8 MiB of the kernel image, and kallsyms
    /// and BTF (19-22 MiB in on Debian 6.1) were then read page by page. 128 KiB is the smallest window Linux uses.</summary>
    private const ulong WillNeedChunkBytes = 128 << 10;

    /// <summary>Starts reading [address, address + length) of guest physical memory from the file in large requests
    /// (MADV_WILLNEED, one per <see cref="WillNeedChunkBytes"/>), clipped to the segment holding <paramref name="address"/>.</summary>
    public void Prefetch(ulong address, ulong length)
    {
        byte* p = GetPointer(address, out ulong available);
        if (p == null || length == 0 || Volatile.Read(ref _disposed) != 0) return;
        ulong from = (ulong)p & ~(ulong)(PageBytes - 1);
        ulong to = (ulong)p + Math.Min(length, available);
        for (ulong at = from; at < to; at += WillNeedChunkBytes)
            _ = Madvise((void*)at, (nuint)Math.Min(WillNeedChunkBytes, to - at), MadviseWillNeed);
    }

    public int PrefetchPages(ReadOnlySpan<ulong> addresses)
    {
        if (addresses.IsEmpty || Volatile.Read(ref _disposed) != 0) return 0;
        // Sorted so that neighbouring pages go to the disk in file order; each distinct page asked for once.
        var pages = new ulong[addresses.Length];
        for (int i = 0; i < pages.Length; i++) pages[i] = addresses[i] & ~(ulong)(PageBytes - 1);
        Array.Sort(pages);
        int asked = 0;
        byte* resident = stackalloc byte[2];
        for (int i = 0; i < pages.Length; i++)
        {
            if (i > 0 && pages[i] == pages[i - 1]) continue;
            byte* p = GetPointer(pages[i], out ulong available);
            if (p == null || available == 0) continue;
            // A guest page need not start a file page (an ELF core's segments are not page-aligned): it spans one or two.
            byte* from = (byte*)((ulong)p & ~(ulong)(PageBytes - 1));
            nuint length = (nuint)((ulong)p + Math.Min(available, (ulong)PageBytes) - (ulong)from);
            int filePages = (int)((length + PageBytes - 1) / PageBytes);
            // mincore first: a page already in the page cache costs no request (a warm run asks for nothing).
            if (Mincore(from, length, resident) == 0 && (resident[0] & 1) != 0 && (filePages == 1 || (resident[1] & 1) != 0)) continue;
            _ = Madvise(from, length, MadviseWillNeed);
            asked++;
        }
        return asked;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "mincore")]
    private static partial int Mincore(void* address, nuint length, byte* vector);

    public void Dispose()
    {
        // Dispose may be called more than once (a using block and an owner's cleanup); releasing the pointer twice threw.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
