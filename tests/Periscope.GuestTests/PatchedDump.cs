using System.Buffers.Binary;
using Periscope.Linux;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.Targets;

namespace Periscope.GuestTests;

/// <summary>A private copy of the dump with some kernel virtual addresses overwritten.</summary>
public sealed class PatchedDump : IDisposable
{
    private readonly FileStream _file;
    private readonly MemoryImage _original;
    private readonly LinuxKernel _kernel;

    public PatchedDump(string dump, MemoryImage original, LinuxKernel kernel)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(dump)!, $"patched-{Guid.NewGuid():n}.core");
        File.Copy(dump, Path);
        _file = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite);
        _original = original;
        _kernel = kernel;
    }

    public string Path { get; }

    public void WriteU64(ulong va, ulong value)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Write(va, b);
    }

    public void Write(ulong va, byte[] bytes)
    {
        Assert.True(_kernel.KernelSpace.TryTranslate(va, out ulong pa), $"0x{va:x} is not mapped");
        WritePhysical(pa, bytes);
    }

    public void WritePhysical(ulong pa, byte[] bytes)
    {
        var seg = _original.Memory.Segments.Single(s => pa >= s.PhysicalStart && pa < s.PhysicalEnd);
        _file.Position = (long)(seg.FileOffset + (pa - seg.PhysicalStart));
        _file.Write(bytes);
        _file.Flush();
    }

    public Target Open(IntrospectionLimits? limits = null)
    {
        _file.Flush();
        return Target.OpenDump(Path, new TargetOptions { Limits = limits ?? IntrospectionLimits.Default });
    }

    /// <summary>Closes the writer but keeps the file, for tools that open it by path.</summary>
    public void CloseWriter() => _file.Dispose();

    public void Dispose()
    {
        _file.Dispose();
        File.Delete(Path);
    }
}