namespace Periscope.Memory;

/// <summary>
/// A memory source that can be told which bytes will be read soon, so that a source backed by a file reads them from
/// disk in large requests ahead of use (a capability of file-mapped sources; others have nothing to prefetch).
/// </summary>
public interface IPrefetchableMemory
{
    /// <summary>Asks for [address, address + length) to be read ahead; returns at once, never fails (advice only).</summary>
    void Prefetch(ulong address, ulong length);

    /// <summary>
    /// Asks for the page holding each physical address in <paramref name="addresses"/> to be read ahead, one request per
    /// distinct page that is not resident yet, so that scattered reads a caller is about to make overlap on the disk
    /// instead of each waiting for the one before. Returns at once with the number of pages asked for (0: all were
    /// resident already, nothing to wait for). Advice only: never fails, never changes what is read.
    /// </summary>
    int PrefetchPages(ReadOnlySpan<ulong> addresses);
}
