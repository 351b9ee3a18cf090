using Microsoft.Win32.SafeHandles;
using Periscope.Memory.Files;

namespace Periscope.Memory.Formats;

public enum MemoryImageFormat { ElfCore, Lime, Raw }

/// <summary>An opened memory image: its physical memory, CPU state if it carries any, and how it was recognised.</summary>
public sealed class MemoryImage : IDirectPhysicalMemory, IAllocatedPhysicalMemory, IPrefetchableMemory, ICpuStateSource, IDisposable
{
    private readonly MappedPhysicalMemory _memory;

    private MemoryImage(MappedPhysicalMemory memory, MemoryImageFormat format, IReadOnlyList<CpuState> cpus, string? vmcoreInfo)
    {
        _memory = memory;
        Format = format;
        Cpus = cpus;
        VmcoreInfo = vmcoreInfo;
    }

    public MemoryImageFormat Format { get; }
    public IReadOnlyList<CpuState> Cpus { get; }
    /// <summary>VMCOREINFO text from the dump's note, if the guest published one: a hint that discovery verifies before use, never a requirement.</summary>
    public string? VmcoreInfo { get; }
    public string Path => _memory.Path;
    public MappedPhysicalMemory Memory => _memory;
    public PhysicalMemoryMap Map => _memory.Map;

    /// <summary>Opens a dump, detecting the format from its content (never from the file name). Only regular files are
    /// opened, without blocking (see <see cref="DumpFile"/>).</summary>
    public static MemoryImage Open(string path, IntrospectionLimits? limits = null, RawLayout rawLayout = RawLayout.Flat)
    {
        limits ??= IntrospectionLimits.Default;
        MemoryImageFormat format;
        IReadOnlyList<FileSegment> segments;
        IReadOnlyList<CpuState> cpus = [];
        string? vmcoreinfo = null;
        SafeFileHandle h = DumpFile.OpenRegular(path, out var info);
        try
        {
            Span<byte> head = stackalloc byte[16];
            int n = RandomAccess.Read(h, head, 0);
            head = head[..n];
            if (n == 0) ThrowHelper.Format(path, "file is empty");
            if (info.Length > limits.MaxDumpFileBytes)
                ThrowHelper.Format(path, $"file is 0x{info.Length:x} bytes, more than the limit of 0x{limits.MaxDumpFileBytes:x} bytes (MaxDumpFileBytes)");
            if (ElfCoreReader.IsElf(head))
            {
                var elf = ElfCoreReader.Read(path, h, limits);
                (format, segments, cpus, vmcoreinfo) = (MemoryImageFormat.ElfCore, elf.Segments, elf.Cpus, elf.VmcoreInfo);
            }
            else if (LimeReader.IsLime(head))
            {
                (format, segments) = (MemoryImageFormat.Lime, LimeReader.Read(path, h, limits));
            }
            else
            {
                if (head.Length >= 8 && head[..8].SequenceEqual("KDUMP   "u8))
                    ThrowHelper.Format(path, 0, "compressed kdump (makedumpfile) format is not supported; convert it to ELF with 'makedumpfile -E'");
                (format, segments) = (MemoryImageFormat.Raw, RawImage.Segments((ulong)RandomAccess.GetLength(h), rawLayout));
            }
            if (segments.Count == 0) ThrowHelper.Format(path, $"{format} image holds no memory");
        }
        catch
        {
            h.Dispose();
            throw;
        }
        return new MemoryImage(new MappedPhysicalMemory(path, h, info, segments, limits), format, cpus, vmcoreinfo);
    }

    /// <summary>Opens a live QEMU RAM file (memory-backend-file, share=on) read-only. Sparse (untouched guest RAM) is
    /// normal here: only allocated pages are scanned.</summary>
    public static MemoryImage OpenLiveRam(string path, RawLayout layout = RawLayout.Q35, IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        SafeFileHandle h = DumpFile.OpenRegular(path, out var info);
        IReadOnlyList<FileSegment> segments;
        try
        {
            if (info.Length == 0) ThrowHelper.Format(path, "file is empty");
            segments = RawImage.Segments(info.Length, layout);
        }
        catch
        {
            h.Dispose();
            throw;
        }
        return new MemoryImage(new MappedPhysicalMemory(path, h, info, segments, limits), MemoryImageFormat.Raw, [], null);
    }

    public IEnumerable<PhysicalRange> AllocatedRam => _memory.AllocatedRam;
    public void Prefetch(ulong address, ulong length) => _memory.Prefetch(address, length);
    public int PrefetchPages(ReadOnlySpan<ulong> addresses) => _memory.PrefetchPages(addresses);
    public int Read(ulong address, Span<byte> buffer) => _memory.Read(address, buffer);
    public ReadOnlySpan<byte> GetSpan(ulong address, int length) => _memory.GetSpan(address, length);
    public unsafe byte* GetPointer(ulong address, out ulong available) => _memory.GetPointer(address, out available);
    public void Dispose() => _memory.Dispose();
}
