using System.Runtime.InteropServices;
using Periscope.Memory;

namespace Periscope.Fuzz.Engine;

/// <summary>Guest physical memory in a pinned array at physical 0: page tables and synthetic guests without file I/O.</summary>
public sealed unsafe class ArrayPhysicalMemory : IDirectPhysicalMemory
{
    private readonly byte[] _bytes;
    private readonly byte* _base;

    public ArrayPhysicalMemory(int length)
    {
        _bytes = GC.AllocateArray<byte>(length, pinned: true);
        _base = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_bytes, 0);
        Map = new PhysicalMemoryMap([new PhysicalRange(0, (ulong)length, PhysicalRangeKind.Ram)]);
    }

    public byte[] Bytes => _bytes;
    public PhysicalMemoryMap Map { get; }

    public int Read(ulong address, Span<byte> buffer)
    {
        if (address >= (ulong)_bytes.Length) return 0;
        int n = (int)Math.Min((ulong)buffer.Length, (ulong)_bytes.Length - address);
        _bytes.AsSpan((int)address, n).CopyTo(buffer);
        return n;
    }

    public ReadOnlySpan<byte> GetSpan(ulong address, int length) =>
        length >= 0 && address <= (ulong)_bytes.Length && (ulong)length <= (ulong)_bytes.Length - address
            ? _bytes.AsSpan((int)address, length) : default;

    public byte* GetPointer(ulong address, out ulong available)
    {
        if (address >= (ulong)_bytes.Length) { available = 0; return null; }
        available = (ulong)_bytes.Length - address;
        return _base + address;
    }
}

/// <summary>
/// A read-only source with 8-byte writes laid over it: the real dump stays mapped and untouched, patched pages are
/// served from private copies. Spans never cross a page while patches exist, so no read can miss one.
/// </summary>
public sealed unsafe class PatchedPhysicalMemory(IDirectPhysicalMemory inner) : IDirectPhysicalMemory, IAllocatedPhysicalMemory
{
    private readonly Dictionary<ulong, byte[]> _pages = [];

    public PhysicalMemoryMap Map => inner.Map;
    public IEnumerable<PhysicalRange> AllocatedRam => inner is IAllocatedPhysicalMemory a ? a.AllocatedRam : inner.Map.Ram;

    public void Clear() => _pages.Clear();

    public bool WriteUInt64(ulong pa, ulong value)
    {
        if ((pa & 0xfff) > 0xff8) return false;
        ulong page = pa & ~0xfffUL;
        if (!_pages.TryGetValue(page, out var copy))
        {
            copy = GC.AllocateArray<byte>(4096, pinned: true);
            if (inner.Read(page, copy) != 4096) return false;
            _pages[page] = copy;
        }
        BitConverter.TryWriteBytes(copy.AsSpan((int)(pa & 0xfff)), value);
        return true;
    }

    public byte* GetPointer(ulong address, out ulong available)
    {
        if (_pages.Count == 0) return inner.GetPointer(address, out available);
        ulong within = address & 0xfff;
        if (_pages.TryGetValue(address & ~0xfffUL, out var copy))
        {
            available = 4096 - within;
            return (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(copy, (int)within);
        }
        byte* p = inner.GetPointer(address, out available);
        available = Math.Min(available, 4096 - within);
        return p;
    }

    public ReadOnlySpan<byte> GetSpan(ulong address, int length)
    {
        byte* p = GetPointer(address, out ulong available);
        return p == null || length < 0 || (ulong)length > available ? default : new ReadOnlySpan<byte>(p, length);
    }

    public int Read(ulong address, Span<byte> buffer) => this.ReadThroughPointers(address, buffer);
}

/// <summary>One scratch file per target and process, in /dev/shm when it exists (file-format targets open by path).</summary>
public sealed class ScratchFile : IDisposable
{
    public ScratchFile(string target)
    {
        string dir = Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath();
        Path = System.IO.Path.Combine(dir, $"periscope-fuzz-{Environment.ProcessId}-{target}-{Guid.NewGuid():n}");
    }

    public string Path { get; }

    public string Write(byte[] input)
    {
        using var fs = new FileStream(Path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        fs.Write(input);
        return Path;
    }

    public void Dispose()
    {
        foreach (var f in new[] { Path, Path + "-wal", Path + "-shm", Path + "-journal" })
            try { File.Delete(f); } catch (IOException) { }
    }
}
