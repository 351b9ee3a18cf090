namespace Periscope.Linux.Model;

/// <summary>One memory mapping of a process: what /proc/PID/maps shows, plus the raw kernel fields.</summary>
public sealed record Vma
{
    public required ulong Address { get; init; }
    public required ulong Start { get; init; }
    public required ulong End { get; init; }
    public required ulong Flags { get; init; }
    /// <summary>File offset in bytes (vm_pgoff × page size) for file mappings, 0 for anonymous ones.</summary>
    public required ulong Offset { get; init; }
    public required ulong File { get; init; }
    public uint DeviceMajor { get; init; }
    public uint DeviceMinor { get; init; }
    public ulong Inode { get; init; }
    /// <summary>File path, or a pseudo name such as [heap], [stack], [vdso]; empty for anonymous memory.</summary>
    public required string Path { get; init; }

    public const ulong VmRead = KernelMacros.VM_READ, VmWrite = KernelMacros.VM_WRITE, VmExec = KernelMacros.VM_EXEC, VmMayShare = KernelMacros.VM_MAYSHARE;

    public bool IsExecutable => (Flags & VmExec) != 0;

    public string Permissions => string.Create(4, Flags, static (s, f) =>
    {
        s[0] = (f & VmRead) != 0 ? 'r' : '-';
        s[1] = (f & VmWrite) != 0 ? 'w' : '-';
        s[2] = (f & VmExec) != 0 ? 'x' : '-';
        s[3] = (f & VmMayShare) != 0 ? 's' : 'p';
    });

    /// <summary>The line as /proc/PID/maps prints it.</summary>
    public string ToMapsLine()
    {
        string head = $"{Start:x8}-{End:x8} {Permissions} {Offset:x8} {DeviceMajor:x2}:{DeviceMinor:x2} {Inode} ";
        return Path.Length == 0 ? head.TrimEnd() + " " : head.PadRight(73) + Path;
    }
}
