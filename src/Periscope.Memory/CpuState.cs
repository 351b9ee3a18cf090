namespace Periscope.Memory;

/// <summary>One segment register as QEMU reports it.</summary>
public readonly record struct SegmentState(uint Selector, uint Limit, uint Flags, ulong Base);

/// <summary>
/// vCPU state at the moment memory was captured. Fields the source does not provide are null.
/// </summary>
public sealed record CpuState
{
    public int Index { get; init; }
    public ulong Rax { get; init; }
    public ulong Rbx { get; init; }
    public ulong Rcx { get; init; }
    public ulong Rdx { get; init; }
    public ulong Rsi { get; init; }
    public ulong Rdi { get; init; }
    public ulong Rsp { get; init; }
    public ulong Rbp { get; init; }
    public ulong R8 { get; init; }
    public ulong R9 { get; init; }
    public ulong R10 { get; init; }
    public ulong R11 { get; init; }
    public ulong R12 { get; init; }
    public ulong R13 { get; init; }
    public ulong R14 { get; init; }
    public ulong R15 { get; init; }
    public ulong Rip { get; init; }
    public ulong Rflags { get; init; }
    public SegmentState? Cs { get; init; }
    public SegmentState? Fs { get; init; }
    public SegmentState? Gs { get; init; }
    public SegmentState? Gdt { get; init; }
    public SegmentState? Idt { get; init; }
    public ulong? Cr0 { get; init; }
    public ulong? Cr2 { get; init; }
    public ulong? Cr3 { get; init; }
    public ulong? Cr4 { get; init; }
    /// <summary>IA32_KERNEL_GS_BASE: holds the per-CPU base while the CPU runs user code.</summary>
    public ulong? KernelGsBase { get; init; }
    /// <summary>Where this state came from, e.g. "ELF QEMU note" or "QMP info registers".</summary>
    public string Source { get; init; } = "";
}
