using Periscope.Memory;

namespace Periscope.Watch;

public sealed record WatchOptions
{
    /// <summary>Trusted-state database (`baseline create`).</summary>
    public required string BaselineDb { get; init; }
    /// <summary>Time between verification sweeps of one guest.</summary>
    public TimeSpan Every { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Time between checks of the guest's state and QMP events (panic, reset, QEMU gone).</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Time between periodic signed heads (with a key); a clean stop always signs.</summary>
    public TimeSpan SignEvery { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>On a new boot of a guest (new KASLR), take a new trusted baseline. Off unless the operator opts in.</summary>
    public bool RebaselineOnBoot { get; init; }
    public IntrospectionLimits Limits { get; init; } = IntrospectionLimits.Default;
    /// <summary>Kernel objects to arm write watchpoints on through each guest's GDB stub (--protect); empty: none.</summary>
    public IReadOnlyList<ProtectedObjectKind> Protect { get; init; } = [];
    /// <summary>Live event sources (--trace); null: periodic verification only.</summary>
    public GuestEventSourceFactory? EventSources { get; init; }
}
