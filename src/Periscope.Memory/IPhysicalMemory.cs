namespace Periscope.Memory;

/// <summary>
/// Read-only access to guest physical memory. There is deliberately no write method:
/// Periscope must never become a way into the guest.
/// </summary>
public interface IPhysicalMemory
{
    /// <summary>Copies guest physical bytes starting at <paramref name="address"/>.
    /// Returns how many bytes were read; reading stops at the first byte no source backs.</summary>
    int Read(ulong address, Span<byte> buffer);

    /// <summary>What lies where in guest physical address space (RAM versus device memory).</summary>
    PhysicalMemoryMap Map { get; }
}

/// <summary>
/// Capability of sources backed by one mapped file: zero-copy access to a run of physical bytes.
/// The span stays valid until the source is disposed.
/// </summary>
public interface IDirectPhysicalMemory : IPhysicalMemory
{
    /// <summary>Returns the bytes [address, address+length) if they are backed contiguously, else an empty span.</summary>
    ReadOnlySpan<byte> GetSpan(ulong address, int length);

    /// <summary>Pointer to the byte at <paramref name="address"/> and how many bytes follow it contiguously,
    /// or null when the address is not backed.</summary>
    unsafe byte* GetPointer(ulong address, out ulong available);
}

/// <summary>Capability of sources that carry vCPU state (ELF core notes, QMP).</summary>
public interface ICpuStateSource
{
    IReadOnlyList<CpuState> Cpus { get; }
}

/// <summary>Capability of file-backed sources that know which RAM the file really stores (sparse files have holes).</summary>
public interface IAllocatedPhysicalMemory : IPhysicalMemory
{
    /// <summary>RAM ranges backed by allocated file data, sorted; bytes outside them read as zeros.</summary>
    IEnumerable<PhysicalRange> AllocatedRam { get; }
}
