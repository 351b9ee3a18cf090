namespace Periscope.Memory;

/// <summary>
/// A memory source that can be told which bytes will be read soon, so that a source backed by a file reads them from
/// disk in large requests ahead of use (a capability of file-mapped sources; others have nothing to prefetch).
/// </summary>
public interface IPrefetchableMemory
{
    /// <summary>Asks for [address, address + length) to be read ahead; returns at once, never fails (advice only).</summary>
    void Prefetch(ulong address, ulong length);
}
