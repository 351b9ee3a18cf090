namespace Periscope.Journal;

/// <summary>What a journal record says happened. Stored as its number (part of the hashed encoding): never renumber,
/// only append.</summary>
public enum JournalRecordKind : uint
{
    /// <summary>An operator's note (`periscope journal append`).</summary>
    Note = 1,
    WatchStarted = 2,
    WatchStopped = 3,
    /// <summary>A verification finding, confirmed with the guest paused, raised the first time it is seen.</summary>
    Finding = 4,
    /// <summary>A finding raised earlier is no longer present.</summary>
    FindingCleared = 5,
    /// <summary>Watch attached to a guest (first time, or again after QEMU came back).</summary>
    Attached = 6,
    /// <summary>The guest went away (QEMU exited, its RAM file or QMP socket vanished).</summary>
    Detached = 7,
    /// <summary>A new boot of the guest (kernel build or KASLR base changed).</summary>
    GuestRebooted = 8,
    /// <summary>A new trusted baseline was taken (only with --rebaseline-on-boot).</summary>
    Rebaselined = 9,
    /// <summary>QMP GUEST_PANICKED, with the verification of the paused guest that followed.</summary>
    GuestPanicked = 10,
    /// <summary>A sweep that could not check everything (the reasons are in the payload).</summary>
    SweepIncomplete = 11,
    /// <summary>A watchpoint on a protected kernel object caught a write.</summary>
    ProtectedWrite = 12,
    /// <summary>An event from a live event source (the syscall stream of --trace).</summary>
    GuestEvent = 13,
    /// <summary>A sweep failed (guest not readable, no matching baseline): the error line.</summary>
    SweepFailed = 14,
    /// <summary>Write watchpoints armed on protected kernel objects (--protect): which, where.</summary>
    WatchpointsArmed = 15,
    /// <summary>--protect could not arm its watchpoints (no GDB stub, objects not found): the error line.</summary>
    WatchpointsFailed = 16,
}

/// <summary>One journal record as stored: its place in the chain, what it says and the two hashes linking it.</summary>
/// <param name="Sequence">1, 2, 3, ... without gaps.</param>
/// <param name="TimeMicros">Microseconds since the Unix epoch (UTC), as the writer's clock said.</param>
/// <param name="Payload">UTF-8 JSON written by the recorder; opaque to the chain.</param>
/// <param name="Previous">SHA-256 of the previous record (the genesis hash for record 1).</param>
/// <param name="Hash">SHA-256 of this record's canonical encoding (<see cref="JournalEncoding"/>).</param>
public sealed record JournalRecord(long Sequence, long TimeMicros, JournalRecordKind Kind, byte[] Payload, byte[] Previous, byte[] Hash)
{
    public DateTimeOffset Time => DateTimeOffset.UnixEpoch.AddTicks(TimeMicros * 10);
    public string PayloadText => System.Text.Encoding.UTF8.GetString(Payload);
}

/// <summary>A chain head signed with the operator's key: "the journal's record <paramref name="Sequence"/> had hash
/// <paramref name="Hash"/> at <paramref name="TimeMicros"/>".</summary>
public sealed record SignedHead(long Sequence, long TimeMicros, byte[] Hash, byte[] KeyId, byte[] Signature);
