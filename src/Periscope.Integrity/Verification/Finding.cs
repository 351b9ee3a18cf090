using Periscope.Integrity.Regions;

namespace Periscope.Integrity.Verification;

public enum Severity { Info, Warning, Critical }

/// <summary>One difference between the trusted state and now, with enough evidence to act on it.</summary>
public sealed record Finding
{
    public required string Region { get; init; }
    public required RegionKind Kind { get; init; }
    public required ulong VirtualAddress { get; init; }
    public ulong? PhysicalAddress { get; init; }
    /// <summary>Kernel symbol+offset, or module name+offset.</summary>
    public required string Location { get; init; }
    public required byte[] Expected { get; init; }
    public required byte[] Found { get; init; }
    public string? ExpectedDisassembly { get; init; }
    public string? FoundDisassembly { get; init; }
    /// <summary>"code modified", "static key flipped", "function traced", "syscall hooked", ...</summary>
    public required string Classification { get; init; }
    public required Severity Severity { get; init; }
    public string Detail { get; init; } = "";
}

public static class Classifications
{
    public const string CodeModified = "code modified";
    public const string DataModified = "data modified";
    public const string StaticKeyFlipped = "static key flipped";
    public const string FunctionTraced = "function traced";
    public const string FunctionHooked = "function hooked (unknown/hidden owner)";
    public const string FtraceDispatcher = "ftrace dispatcher updated";
    public const string StaticCallUpdated = "static call updated";
    public const string StaticCallHijacked = "static call hijacked";
    public const string SyscallHooked = "syscall hooked";
    public const string InterruptGateChanged = "interrupt gate changed";
    public const string PageMissing = "page no longer mapped";
    public const string RegionGone = "region gone";
    public const string RegionMoved = "region moved";
    public const string ProcessCodeModified = "process code modified";
    public const string AnonymousCode = "anonymous executable memory";
}
