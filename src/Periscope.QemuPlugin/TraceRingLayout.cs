namespace Periscope.TraceRing;

/// <summary>
/// The shared-memory ring between the QEMU trace plugin (producer, inside QEMU) and Periscope.Events (consumer): one
/// file under /dev/shm, a control page, then one header and one ring of fixed-size records per vCPU. Each vCPU thread
/// is the only writer of its ring, so a record costs no atomic instruction and the producer never waits: when a ring
/// is full the event is counted as dropped and its sequence number is skipped, which the consumer sees as a gap.
/// This file is compiled into both sides (the plugin links nothing else of Periscope), so the layout lives in one place.
/// </summary>
public static class TraceRingLayout
{
    /// <summary>"PSCRING1", little-endian.</summary>
    public const ulong Magic = 0x31474E4952435350;
    public const uint Version = 3;
    public const int ControlSize = 4096;
    public const int RecordSize = 512;
    public const int VcpuHeaderSize = 256;
    /// <summary>Bounds the ring file whatever the plugin arguments say (records per vCPU, and vCPUs).</summary>
    public const ulong MaxRecordsPerVcpu = 1UL << 22;
    public const uint MaxVcpus = 64;

    // Control page (offsets). Written by the plugin except UninstallRequest, which the consumer sets.
    public const int MagicOffset = 0;
    public const int VersionOffset = 8;          // u32
    public const int RecordSizeOffset = 12;      // u32
    public const int VcpuCountOffset = 16;       // u32
    public const int StateOffset = 20;           // u32, PluginState
    public const int CapacityOffset = 24;        // u64, records per vCPU ring (a power of two)
    public const int EntryVaddrOffset = 32;      // u64, entry_SYSCALL_64 as found by its code
    public const int EntryProbeOffset = 40;      // u64, the instruction whose store completes pt_regs (push %r15)
    public const int ExitProbeOffset = 48;       // u64, the first pt_regs access after do_syscall_64 returns
    public const int SlotOffsetOffset = 56;      // u64, per-CPU offset of the user-RSP scratch slot (cpu_tss_rw.sp2)
    public const int QemuPidOffset = 64;         // u32
    public const int UninstallRequestOffset = 68; // u32, consumer -> plugin: 1 = uninstall yourself
    public const int ExitPtRegsDisplacementOffset = 72; // u64, pt_regs offset of the exit probe's access
    // Consumer -> plugin, from the kernel's symbols and page tables: with both set, the plugin reads the per-CPU
    // `current` task pointer at GS base + CurrentTaskPerCpu (through the direct map) when the syscall enters.
    public const int CurrentTaskPerCpuOffset = 80;  // u64, per-CPU offset of current_task (0: not told)
    public const int DirectMapBaseOffset = 88;      // u64, page_offset_base (0: not told)
    // Consumer -> plugin, so that path arguments are copied when the call enters (a buffer the caller reuses right
    // after the call would otherwise show its later content by the time the consumer reads it).
    public const int TaskMmOffset = 96;             // u32, task_struct.mm (BTF); 0: do not capture paths
    public const int MmPgdOffset = 100;             // u32, mm_struct.pgd (BTF)
    public const int PagingLevelsOffset = 104;      // u32, 4 or 5
    public const int PtRegsOrigAxOffset = 108;      // u32, pt_regs.orig_ax (BTF)
    public const int PtRegsArgOffsets = 112;        // 6 x u32, pt_regs.di, si, dx, r10, r8, r9 (BTF)
    // Consumer -> plugin: where the caller's ids and name sit in task_struct (BTF), so that each record carries them
    // as they were at the event (a task that exits or execs right after its call is still named correctly).
    public const int TaskPidOffset = 136;           // u32, task_struct.pid
    public const int TaskTgidOffset = 140;          // u32, task_struct.tgid
    public const int TaskCommOffset = 144;          // u32, task_struct.comm; 0: do not copy ids (set last)
    // Plugin -> consumer: the second return path found after the call into C (see TracePlugin.Instrument).
    public const int ReturnPathOffset = 152;        // u64, the conditional branch's target (0: one return path only)
    public const int ReturnProbeOffset = 160;       // u64, the first pt_regs access on that path
    /// <summary>One byte per syscall number: which argument the plugin copies from the caller's memory at entry.
    /// 0: none; else the low bits (<see cref="CaptureArgumentMask"/>) are 1 + the argument's index, a path copied up to
    /// its NUL, or with <see cref="CaptureSockAddr"/> a sockaddr of the length the next argument gives.</summary>
    public const int CaptureTable = 2048;
    public const int CaptureTableEntries = 1024;
    public const byte CaptureArgumentMask = 0x07;
    public const byte CaptureSockAddr = 0x10;

    // Per-vCPU header at ControlSize + vcpu * VcpuHeaderSize. Producer fields share one cache line, the consumer's
    // read index sits on its own so that polling it does not bounce the producer's line.
    public const int WriteIndexOffset = 0;       // u64, records written
    public const int ProducedOffset = 8;         // u64, events seen (written + dropped) = last sequence number
    public const int DroppedOffset = 16;         // u64
    public const int ReadIndexOffset = 128;      // u64, consumer

    // Record fields. The plugin copies the guest's pt_regs as they are, without knowing their layout: the consumer
    // decodes them through the kernel's BTF (struct pt_regs), like every other kernel structure.
    public const int RecSeq = 0;                 // u64, per-vCPU sequence number, from 1
    public const int RecKind = 8;                // u32, RecordKind
    public const int RecVcpu = 12;               // u32
    public const int RecTimestamp = 16;          // u64, host CLOCK_MONOTONIC ticks (Stopwatch)
    public const int RecGsBase = 24;             // u64, kernel GS base of the vCPU (per-CPU area), from the entry store
    public const int RecPtRegs = 32;             // u64, guest virtual address of pt_regs
    public const int RecPtRegsPhys = 40;         // u64, guest physical address of pt_regs
    public const int RecRegsLength = 48;         // u32, bytes of pt_regs captured (0: not readable)
    public const int RecRegs = 56;               // the captured pt_regs bytes
    /// <summary>x86-64 struct pt_regs is 21 qwords; the consumer checks this against BTF before decoding.</summary>
    public const int MaxRegsBytes = 168;
    public const int RecCurrent = 224;           // u64, per-CPU current task at the event (0: not known)
    public const int RecPathLength = 232;        // u32, bytes of the argument copied at entry (CaptureTable); 0: none
    public const int RecPathFlags = 236;         // u32, 1 = the argument was longer than the copy (or partly unmapped)
    public const int RecPid = 240;               // u32, current->pid at the event (valid when RecIdsValid is 1)
    public const int RecTgid = 244;              // u32, current->tgid at the event
    public const int RecIdsValid = 248;          // u32, 1 = pid, tgid and comm were copied at the event
    public const int RecPath = 256;              // the argument's first bytes (a path without its NUL, or a sockaddr)
    public const int MaxPathBytes = 240;
    public const int RecComm = 496;              // current->comm at the event (TASK_COMM_LEN bytes)
    public const int CommBytes = 16;

    public static long RecordsOffset(uint vcpus) => ControlSize + AlignPage((long)vcpus * VcpuHeaderSize);
    public static long RingOffset(uint vcpus, ulong capacity, uint vcpu) => RecordsOffset(vcpus) + (long)(vcpu * capacity * RecordSize);
    public static long FileSize(uint vcpus, ulong capacity) => RecordsOffset(vcpus) + (long)(vcpus * capacity * RecordSize);
    private static long AlignPage(long n) => (n + 4095) & ~4095L;
}

public enum RecordKind : uint
{
    SyscallEntry = 1,
    SyscallExit = 2,
    /// <summary>The kernel's shared return to user mode (the IRET path of kernels whose C code picks SYSRET or IRET):
    /// a syscall's return when an entry is in flight for the same pt_regs, otherwise an interrupt's or exception's.</summary>
    ReturnToUser = 3,
}

public enum PluginState : uint
{
    None = 0,
    /// <summary>Loaded, waiting for the guest kernel's syscall entry to be translated.</summary>
    Searching = 1,
    /// <summary>entry_SYSCALL_64 found and instrumented.</summary>
    Armed = 2,
    /// <summary>Uninstalled at the consumer's request; QEMU runs on without the plugin.</summary>
    Uninstalled = 3,
    /// <summary>QEMU is exiting (atexit callback ran).</summary>
    Exited = 4,
}
