namespace Periscope.Watch;

/// <summary>One event a live event source saw in the guest (a syscall, a process start, ...).</summary>
/// <param name="Kind">What happened, e.g. "syscall" or "exec" (the source defines its kinds).</param>
/// <param name="Detail">The event as a small UTF-8 JSON object, written into the journal record as is.</param>
public sealed record GuestEvent(DateTimeOffset Time, string Kind, byte[] Detail);

/// <summary>
/// The seam for live guest events (the syscall stream of `watch --trace`, built elsewhere): the watch loop drains a
/// source on every poll and journals what it gets. Watch does not depend on any source existing.
/// </summary>
public interface IGuestEventSource : IDisposable
{
    /// <summary>Moves up to <paramref name="max"/> pending events into <paramref name="sink"/>; returns how many.
    /// Must not block.</summary>
    int Drain(ICollection<GuestEvent> sink, int max);

    /// <summary>Events the source lost so far (ring full, reader too slow).</summary>
    long Dropped { get; }
}

/// <summary>Makes the event source for one target once watch has attached to it (null: none for this target).</summary>
public delegate IGuestEventSource? GuestEventSourceFactory(WatchTarget target);
