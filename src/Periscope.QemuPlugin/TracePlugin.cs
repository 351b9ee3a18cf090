using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Periscope.TraceRing;

namespace Periscope.QemuPlugin;

/// <summary>
/// The QEMU TCG plugin: finds the guest kernel's 64-bit syscall entry (entry_SYSCALL_64) by its code while QEMU
/// translates it, and instruments three instructions there:
/// <list type="bullet">
/// <item>the store of the user RSP to the per-CPU scratch slot (<c>mov %rsp, %gs:SLOT</c>): its address minus SLOT is
/// the vCPU's kernel GS base, from which the consumer finds the per-CPU <c>current_task</c>;</item>
/// <item>the last push of <c>struct pt_regs</c> (<c>push %r15</c>): its address is pt_regs, whose bytes (syscall number,
/// arguments, user IP and SP) are copied from guest RAM into a ring record;</item>
/// <item>the first pt_regs access after <c>call do_syscall_64</c> returns: pt_regs again, now holding the return value.</item>
/// </list>
/// Plugin API v1 cannot read registers, so everything is learned from the addresses of these accesses; memory
/// callbacks run after the access, so the pushed values are in RAM. Guest RAM is read through the RAM file QEMU uses
/// as its memory backend (plugin argument <c>ram=</c>). The vCPU thread does nothing but this copy: no decoding.
/// Plugin arguments: <c>ring=PATH</c> (created), <c>ram=PATH</c>, <c>records=N</c> (per vCPU, a power of two).
/// </summary>
internal static unsafe class TracePlugin
{
    /// <summary>How far past the entry point the pt_regs pushes and the call into C may lie.</summary>
    private const ulong EntryWindow = 0x200;
    /// <summary>How far past the call the exit probe may lie (alternatives may leave NOPs in between).</summary>
    private const ulong ExitWindow = 0x80;
    private const ulong KernelHalf = 0xffff_8000_0000_0000;

    private static ulong s_id;
    private static byte* s_ring;
    private static long s_ringSize;
    private static uint s_vcpus;
    private static ulong s_capacity;
    private static ulong s_mask;
    private static byte* s_ram;
    private static ulong s_ramSize;
    private static ulong s_lowRamLimit;
    private static ulong* s_gsBase;          // per vCPU
    private static ulong* s_cachedRead;      // per vCPU, the producer's copy of the consumer's read index
    private static string? s_ramPath;

    // What was found in the guest's code (written once, read by every translation).
    private static ulong s_entry, s_slotDisplacement, s_entryProbe, s_call, s_exitProbe, s_exitBranch, s_returnPath, s_returnProbe;
    private static long s_exitDisplacement, s_returnDisplacement;

    [UnmanagedCallersOnly(EntryPoint = "qemu_plugin_install")]
    public static int Install(ulong id, QemuInfo* info, int argc, byte** argv)
    {
        try
        {
            return InstallCore(id, info, argc, argv);
        }
        catch (Exception e)
        {
            Print($"periscope-trace: cannot install: {e.Message}");
            return -1;
        }
    }

    private static int InstallCore(ulong id, QemuInfo* info, int argc, byte** argv)
    {
        if (!QemuPluginApi.TryResolve(out string missing))
        {
            Console.Error.WriteLine($"periscope-trace: QEMU does not export {missing} (plugin API v1 expected)");
            return -1;
        }
        s_id = id;
        string target = Marshal.PtrToStringUTF8((nint)info->TargetName) ?? "";
        if (target != "x86_64" || info->SystemEmulation == 0)
        {
            Print($"periscope-trace: needs qemu-system-x86_64 (this is {target}, system emulation {info->SystemEmulation != 0})");
            return -1;
        }
        string? ringPath = null;
        ulong records = 1 << 16;
        for (int i = 0; i < argc; i++)
        {
            string arg = Marshal.PtrToStringUTF8((nint)argv[i]) ?? "";
            int eq = arg.IndexOf('=');
            string key = eq < 0 ? arg : arg[..eq], value = eq < 0 ? "" : arg[(eq + 1)..];
            switch (key)
            {
                case "ring": ringPath = value; break;
                case "ram": s_ramPath = value; break;
                case "records":
                    if (!ulong.TryParse(value, out records) || records == 0 || (records & (records - 1)) != 0 || records > TraceRingLayout.MaxRecordsPerVcpu)
                    {
                        Print($"periscope-trace: records={value}: want a power of two up to {TraceRingLayout.MaxRecordsPerVcpu}");
                        return -1;
                    }
                    break;
                default:
                    Print($"periscope-trace: unknown argument '{arg}' (ring=PATH, ram=PATH, records=N)");
                    return -1;
            }
        }
        if (ringPath is null || s_ramPath is null)
        {
            Print("periscope-trace: needs ring=PATH (the ring file to create) and ram=PATH (the guest's memory-backend-file)");
            return -1;
        }
        int maxVcpus = info->MaxVcpus;
        if (maxVcpus < 1 || maxVcpus > TraceRingLayout.MaxVcpus)
        {
            Print($"periscope-trace: {maxVcpus} vCPUs (at most {TraceRingLayout.MaxVcpus})");
            return -1;
        }
        s_vcpus = (uint)maxVcpus;
        s_capacity = records;
        s_mask = records - 1;
        if (!CreateRing(ringPath)) return -1;
        s_gsBase = (ulong*)NativeMemory.AllocZeroed(s_vcpus, sizeof(ulong));
        s_cachedRead = (ulong*)NativeMemory.AllocZeroed(s_vcpus, sizeof(ulong));
        TryMapRam();

        RegisterCallbacks(id);
        SetState(PluginState.Searching);
        return 0;
    }

    private static void RegisterCallbacks(ulong id)
    {
        QemuPluginApi.RegisterTbTrans(id, &OnTranslate);
        QemuPluginApi.RegisterVcpuInit(id, &OnVcpuInit);
        QemuPluginApi.RegisterAtExit(id, &OnExit, 0);
    }

    /// <summary>After <see cref="RetranslateAll"/>: QEMU dropped every callback and all translated code; register again,
    /// and every block is translated anew, now with the probes known so far.</summary>
    [UnmanagedCallersOnly]
    private static void OnReset(ulong id) => RegisterCallbacks(id);

    /// <summary>
    /// The shared return to user mode is found only when entry_SYSCALL_64 is translated, and QEMU translated it long
    /// before (the first return to user mode, at boot, goes that way): its cached translation would never get the
    /// probe. A reset flushes QEMU's translated code once, so the block is translated again, instrumented. Asynchronous:
    /// QEMU does it with all vCPUs stopped, after this callback returns.
    /// </summary>
    private static void RetranslateAll() => QemuPluginApi.Reset(s_id, &OnReset);

    private static bool CreateRing(string path)
    {
        long size = TraceRingLayout.FileSize(s_vcpus, s_capacity);
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0) { Print($"periscope-trace: cannot create {path}: errno {Marshal.GetLastPInvokeError()}"); return false; }
        try
        {
            if (Libc.FTruncate(fd, size) != 0) { Print($"periscope-trace: cannot size {path} to {size} bytes: errno {Marshal.GetLastPInvokeError()}"); return false; }
            nint p = Libc.MMap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0);
            if (p == -1) { Print($"periscope-trace: cannot map {path}: errno {Marshal.GetLastPInvokeError()}"); return false; }
            s_ring = (byte*)p;
            s_ringSize = size;
        }
        finally
        {
            Libc.Close(fd);
        }
        *(ulong*)(s_ring + TraceRingLayout.MagicOffset) = 0;   // readers check the magic last
        *(uint*)(s_ring + TraceRingLayout.VersionOffset) = TraceRingLayout.Version;
        *(uint*)(s_ring + TraceRingLayout.RecordSizeOffset) = TraceRingLayout.RecordSize;
        *(uint*)(s_ring + TraceRingLayout.VcpuCountOffset) = s_vcpus;
        *(ulong*)(s_ring + TraceRingLayout.CapacityOffset) = s_capacity;
        *(uint*)(s_ring + TraceRingLayout.QemuPidOffset) = (uint)Environment.ProcessId;
        Volatile.Write(ref *(ulong*)(s_ring + TraceRingLayout.MagicOffset), TraceRingLayout.Magic);
        return true;
    }

    /// <summary>The RAM file exists once QEMU has created its memory backend, which may be after install.</summary>
    private static void TryMapRam()
    {
        if (s_ram is not null || s_ramPath is null) return;
        int fd = Libc.Open(s_ramPath, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0) return;
        try
        {
            long size = Libc.LSeek(fd, 0, 2 /* SEEK_END */);
            if (size <= 0) return;
            nint p = Libc.MMap(0, (nuint)size, Libc.PROT_READ, Libc.MAP_SHARED, fd, 0);
            if (p == -1) return;
            s_ramSize = (ulong)size;
            // q35: with more than 2.75 GiB, RAM below 4 GiB ends at 2 GiB and the rest starts at 4 GiB (RawLayout.Q35).
            s_lowRamLimit = s_ramSize > 0xb000_0000UL ? 0x8000_0000UL : s_ramSize;
            s_ram = (byte*)p;
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    [UnmanagedCallersOnly]
    private static void OnVcpuInit(ulong id, uint vcpu) => TryMapRam();

    [UnmanagedCallersOnly]
    private static void OnExit(ulong id, nint userData)
    {
        if (s_ring is not null) SetState(PluginState.Exited);
    }

    [UnmanagedCallersOnly]
    private static void OnUninstalled(ulong id)
    {
        if (s_ring is not null) SetState(PluginState.Uninstalled);
    }

    private static void SetState(PluginState state) => Volatile.Write(ref *(uint*)(s_ring + TraceRingLayout.StateOffset), (uint)state);

    private static void Publish(int offset, ulong value) => Volatile.Write(ref *(ulong*)(s_ring + offset), value);

    /// <summary>Called for every translation block QEMU translates: find the entry, then instrument its probes.</summary>
    [UnmanagedCallersOnly]
    private static void OnTranslate(ulong id, nint tb)
    {
        nuint n = QemuPluginApi.TbInstructionCount(tb);
        for (nuint i = 0; i < n; i++)
        {
            nint insn = QemuPluginApi.TbInstruction(tb, i);
            ulong vaddr = QemuPluginApi.InstructionVaddr(insn);
            if (vaddr < KernelHalf) return;   // user code: nothing of ours in this block
            var code = new ReadOnlySpan<byte>(QemuPluginApi.InstructionData(insn), (int)QemuPluginApi.InstructionSize(insn));
            ulong entry = Volatile.Read(ref s_entry);
            if (entry == 0)
            {
                // entry_SYSCALL_64 begins "swapgs; mov %rsp, %gs:SLOT" — the only kernel code that stores the user
                // stack pointer to a per-CPU slot right after swapgs.
                if (i + 1 < n && EntryCode.IsSwapgs(code))
                {
                    nint next = QemuPluginApi.TbInstruction(tb, i + 1);
                    var nextCode = new ReadOnlySpan<byte>(QemuPluginApi.InstructionData(next), (int)QemuPluginApi.InstructionSize(next));
                    if (EntryCode.TryStoreRspToGsSlot(nextCode, QemuPluginApi.InstructionVaddr(next), out ulong slot))
                    {
                        s_slotDisplacement = slot;
                        Publish(TraceRingLayout.SlotOffsetOffset, slot);
                        Publish(TraceRingLayout.EntryVaddrOffset, vaddr);
                        Volatile.Write(ref s_entry, vaddr);
                        SetState(PluginState.Armed);
                    }
                }
                continue;
            }
            ulong returnPath = Volatile.Read(ref s_returnPath);
            if (returnPath != 0 && vaddr >= returnPath && vaddr < returnPath + ExitWindow)
            {
                InstrumentReturnPath(insn, vaddr, code);
                continue;
            }
            if (vaddr < entry || vaddr >= entry + EntryWindow + ExitWindow) continue;
            Instrument(insn, vaddr, code, entry);
        }
    }

    private static void Instrument(nint insn, ulong vaddr, ReadOnlySpan<byte> code, ulong entry)
    {
        if (vaddr == entry + 3 && EntryCode.TryStoreRspToGsSlot(code, vaddr, out _))
        {
            QemuPluginApi.RegisterMemory(insn, &OnSlotStore, QemuPluginApi.CallbackNoRegisters, QemuPluginApi.MemWrite, 0);
            return;
        }
        // The first push %r15 after the entry completes pt_regs (PUSH_AND_CLEAR_REGS pushes r15 last).
        if (Volatile.Read(ref s_entryProbe) == 0 && vaddr < entry + EntryWindow && code.Length == 2 && code[0] == 0x41 && code[1] == 0x57)
            Volatile.Write(ref s_entryProbe, vaddr);
        ulong entryProbe = Volatile.Read(ref s_entryProbe);
        if (vaddr == entryProbe)
        {
            Publish(TraceRingLayout.EntryProbeOffset, vaddr);
            QemuPluginApi.RegisterMemory(insn, &OnEntry, QemuPluginApi.CallbackNoRegisters, QemuPluginApi.MemWrite, 0);
            return;
        }
        if (entryProbe == 0 || vaddr < entryProbe) return;
        // The first call after pt_regs is complete is the call into C (do_syscall_64).
        if (Volatile.Read(ref s_call) == 0 && vaddr < entry + EntryWindow && code.Length == 5 && code[0] == 0xe8)
            Volatile.Write(ref s_call, vaddr);
        ulong call = Volatile.Read(ref s_call);
        if (call == 0 || vaddr < call + 5 || vaddr >= call + 5 + ExitWindow) return;
        // A conditional branch before the first pt_regs access means the C code chose between two ways back to user
        // mode (6.2+: do_syscall_64 returns whether SYSRET is safe; the IRET way is the kernel's shared return to user
        // mode). The access found below is then on the SYSRET way only, and the branch target needs a probe as well.
        // Up to 6.1 the entry code itself re-reads pt_regs first and decides afterwards: one probe sees every return.
        if (Volatile.Read(ref s_exitProbe) == 0 && Volatile.Read(ref s_exitBranch) == 0 && EntryCode.TryConditionalJump(code, vaddr, out ulong target))
        {
            Volatile.Write(ref s_exitBranch, vaddr);
            Publish(TraceRingLayout.ReturnPathOffset, target);
            Volatile.Write(ref s_returnPath, target);
            RetranslateAll();
            return;
        }
        if (Volatile.Read(ref s_exitProbe) == 0 && EntryCode.TryPtRegsAccess(code, out long displacement))
        {
            s_exitDisplacement = displacement;
            Publish(TraceRingLayout.ExitPtRegsDisplacementOffset, (ulong)displacement);
            Volatile.Write(ref s_exitProbe, vaddr);
        }
        if (vaddr == Volatile.Read(ref s_exitProbe))
        {
            Publish(TraceRingLayout.ExitProbeOffset, vaddr);
            // Not MemRead: QEMU 7.2 filters a read-only memory callback away for loads (and lets a write-only one
            // fire for them), so this asks for both and filters with qemu_plugin_mem_is_store.
            QemuPluginApi.RegisterMemory(insn, &OnExitProbe, QemuPluginApi.CallbackNoRegisters, QemuPluginApi.MemReadWrite, 0);
        }
    }

    /// <summary>The shared return to user mode (the conditional branch's target): its first pt_regs access.</summary>
    private static void InstrumentReturnPath(nint insn, ulong vaddr, ReadOnlySpan<byte> code)
    {
        if (Volatile.Read(ref s_returnProbe) == 0 && EntryCode.TryPtRegsAccess(code, out long displacement))
        {
            s_returnDisplacement = displacement;
            Volatile.Write(ref s_returnProbe, vaddr);
        }
        if (vaddr == Volatile.Read(ref s_returnProbe))
        {
            Publish(TraceRingLayout.ReturnProbeOffset, vaddr);
            QemuPluginApi.RegisterMemory(insn, &OnReturnProbe, QemuPluginApi.CallbackNoRegisters, QemuPluginApi.MemReadWrite, 0);
        }
    }

    [UnmanagedCallersOnly]
    private static void OnSlotStore(uint vcpu, uint info, ulong vaddr, nint userData)
    {
        if (vcpu < s_vcpus) s_gsBase[vcpu] = vaddr - s_slotDisplacement;
    }

    [UnmanagedCallersOnly]
    private static void OnEntry(uint vcpu, uint info, ulong vaddr, nint userData)
    {
        // QEMU 7.2 also calls store-only memory callbacks for loads.
        if (QemuPluginApi.IsStore(info) == 0) return;
        Record(vcpu, info, vaddr, vaddr, RecordKind.SyscallEntry);
    }

    [UnmanagedCallersOnly]
    private static void OnExitProbe(uint vcpu, uint info, ulong vaddr, nint userData)
    {
        if (QemuPluginApi.IsStore(info) != 0) return;
        Record(vcpu, info, vaddr, vaddr - (ulong)s_exitDisplacement, RecordKind.SyscallExit);
    }

    [UnmanagedCallersOnly]
    private static void OnReturnProbe(uint vcpu, uint info, ulong vaddr, nint userData)
    {
        if (QemuPluginApi.IsStore(info) != 0) return;
        Record(vcpu, info, vaddr, vaddr - (ulong)s_returnDisplacement, RecordKind.ReturnToUser);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Record(uint vcpu, uint info, ulong accessVaddr, ulong ptRegs, RecordKind kind)
    {
        if (vcpu >= s_vcpus) return;
        if (Volatile.Read(ref *(uint*)(s_ring + TraceRingLayout.UninstallRequestOffset)) != 0)
        {
            RequestUninstall();
            return;
        }
        byte* header = s_ring + TraceRingLayout.ControlSize + vcpu * TraceRingLayout.VcpuHeaderSize;
        ulong seq = *(ulong*)(header + TraceRingLayout.ProducedOffset) + 1;
        Volatile.Write(ref *(ulong*)(header + TraceRingLayout.ProducedOffset), seq);
        ulong write = *(ulong*)(header + TraceRingLayout.WriteIndexOffset);
        if (write - s_cachedRead[vcpu] >= s_capacity)
        {
            s_cachedRead[vcpu] = Volatile.Read(ref *(ulong*)(header + TraceRingLayout.ReadIndexOffset));
            if (write - s_cachedRead[vcpu] >= s_capacity)
            {
                // Never wait for the consumer: count the loss, the skipped sequence number shows where.
                Volatile.Write(ref *(ulong*)(header + TraceRingLayout.DroppedOffset), *(ulong*)(header + TraceRingLayout.DroppedOffset) + 1);
                return;
            }
        }
        byte* rec = s_ring + TraceRingLayout.RingOffset(s_vcpus, s_capacity, vcpu) + (long)((write & s_mask) * TraceRingLayout.RecordSize);
        *(ulong*)(rec + TraceRingLayout.RecSeq) = seq;
        *(uint*)(rec + TraceRingLayout.RecKind) = (uint)kind;
        *(uint*)(rec + TraceRingLayout.RecVcpu) = vcpu;
        *(long*)(rec + TraceRingLayout.RecTimestamp) = Stopwatch.GetTimestamp();
        *(ulong*)(rec + TraceRingLayout.RecGsBase) = s_gsBase[vcpu];
        *(ulong*)(rec + TraceRingLayout.RecPtRegs) = ptRegs;
        uint copied = 0;
        ulong phys = ulong.MaxValue;
        nint hw = QemuPluginApi.GetHardwareAddress(info, accessVaddr);
        if (hw != 0 && QemuPluginApi.HardwareAddressIsIo(hw) == 0)
        {
            phys = QemuPluginApi.PhysicalAddress(hw) - (accessVaddr - ptRegs);
            // pt_regs sits at the top of the task's (page-aligned) stack, so it never crosses a page; anything else
            // is not copied rather than read across into an unrelated physical page.
            if ((phys & 0xfff) + TraceRingLayout.MaxRegsBytes <= 0x1000 && TryRamOffset(phys, out ulong offset))
            {
                Buffer.MemoryCopy(s_ram + offset, rec + TraceRingLayout.RecRegs, TraceRingLayout.MaxRegsBytes, TraceRingLayout.MaxRegsBytes);
                copied = TraceRingLayout.MaxRegsBytes;
            }
        }
        *(ulong*)(rec + TraceRingLayout.RecPtRegsPhys) = phys;
        ulong current = ReadCurrentTask(s_gsBase[vcpu]);
        *(ulong*)(rec + TraceRingLayout.RecCurrent) = current;
        *(ulong*)(rec + TraceRingLayout.RecPathLength) = 0;
        *(uint*)(rec + TraceRingLayout.RecIdsValid) = current != 0 && CopyIds(rec, current) ? 1u : 0u;
        if (kind == RecordKind.SyscallEntry && copied != 0 && current != 0) CaptureArgument(rec, current);
        *(uint*)(rec + TraceRingLayout.RecRegsLength) = copied;
        Volatile.Write(ref *(ulong*)(header + TraceRingLayout.WriteIndexOffset), write + 1);
    }

    /// <summary>The vCPU's `current` (per-CPU current_task at its GS base), read through the direct map; 0 until the
    /// consumer has told where those are, or when the address is not RAM.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadCurrentTask(ulong gsBase)
    {
        ulong perCpu = *(ulong*)(s_ring + TraceRingLayout.CurrentTaskPerCpuOffset);
        ulong directMap = *(ulong*)(s_ring + TraceRingLayout.DirectMapBaseOffset);
        if (perCpu == 0 || directMap == 0 || gsBase == 0) return 0;
        ulong va = gsBase + perCpu;
        if (va < directMap || (va & 7) != 0 || !TryRamOffset(va - directMap, out ulong offset)) return 0;
        return *(ulong*)(s_ram + offset);
    }

    /// <summary>
    /// Copies the argument of a call the consumer asked for (its table in the control page) from the caller's memory,
    /// now, while it still holds what the call was given: a path up to its NUL, or a sockaddr of the length the next
    /// argument gives (connect, bind, sendto). current->mm->pgd, then a page walk in guest RAM; the vCPU never waits.
    /// </summary>
    private static void CaptureArgument(byte* rec, ulong task)
    {
        uint mmOffset = *(uint*)(s_ring + TraceRingLayout.TaskMmOffset);
        if (mmOffset == 0) return;
        byte* regs = rec + TraceRingLayout.RecRegs;
        uint nrOffset = *(uint*)(s_ring + TraceRingLayout.PtRegsOrigAxOffset);
        if (nrOffset > TraceRingLayout.MaxRegsBytes - 8) return;
        ulong nr = *(ulong*)(regs + nrOffset);
        if (nr >= TraceRingLayout.CaptureTableEntries) return;
        byte capture = s_ring[TraceRingLayout.CaptureTable + (int)nr];
        int which = (capture & TraceRingLayout.CaptureArgumentMask) - 1;
        bool sockAddr = (capture & TraceRingLayout.CaptureSockAddr) != 0;
        if (which is < 0 or > 5 || (sockAddr && which == 5)) return;
        if (!TryArgument(regs, which, out ulong userAddress) || userAddress == 0 || userAddress >= KernelHalf) return;
        uint want = TraceRingLayout.MaxPathBytes;
        ulong asked = 0;
        if (sockAddr)
        {
            // The length argument is the caller's word: capped by the record, and 0 copies nothing.
            if (!TryArgument(regs, which + 1, out asked) || asked == 0) return;
            want = (uint)Math.Min(asked, TraceRingLayout.MaxPathBytes);
        }
        if (!TryReadKernel(task + mmOffset, out ulong mm) || mm == 0) return;
        if (!TryReadKernel(mm + *(uint*)(s_ring + TraceRingLayout.MmPgdOffset), out ulong pgd)) return;
        ulong directMap = *(ulong*)(s_ring + TraceRingLayout.DirectMapBaseOffset);
        if (pgd < directMap) return;
        int levels = *(int*)(s_ring + TraceRingLayout.PagingLevelsOffset);
        if (levels is not (4 or 5)) return;
        byte* dest = rec + TraceRingLayout.RecPath;
        uint copied = 0;
        ulong va = userAddress;
        while (copied < want)
        {
            if (!TryTranslateUser(pgd - directMap, levels, va, out ulong pa) || !TryRamOffset(pa, out ulong offset)) break;
            uint inPage = (uint)(0x1000 - (va & 0xfff));
            byte* src = s_ram + offset;
            for (uint i = 0; i < inPage && copied < want; i++)
            {
                byte b = src[i];
                if (b == 0 && !sockAddr) { *(uint*)(rec + TraceRingLayout.RecPathLength) = copied; *(uint*)(rec + TraceRingLayout.RecPathFlags) = 0; return; }
                dest[copied++] = b;
            }
            va += inPage;
        }
        // A path with no NUL within the copy, or a sockaddr cut by an unmapped page or the record's size: say so
        // rather than pass a cut argument off as whole.
        *(uint*)(rec + TraceRingLayout.RecPathLength) = copied;
        *(uint*)(rec + TraceRingLayout.RecPathFlags) = sockAddr && copied == asked ? 0u : 1u;
    }

    /// <summary>Argument register <paramref name="which"/> (0-5) of the captured pt_regs, at the offset the consumer gave (BTF).</summary>
    private static bool TryArgument(byte* regs, int which, out ulong value)
    {
        value = 0;
        uint argOffset = *(uint*)(s_ring + TraceRingLayout.PtRegsArgOffsets + which * 4);
        if (argOffset > TraceRingLayout.MaxRegsBytes - 8) return false;
        value = *(ulong*)(regs + argOffset);
        return true;
    }

    /// <summary>current->pid, tgid and comm now, at the event (offsets from the consumer, through BTF).</summary>
    private static bool CopyIds(byte* rec, ulong task)
    {
        uint commOffset = Volatile.Read(ref *(uint*)(s_ring + TraceRingLayout.TaskCommOffset));
        if (commOffset == 0) return false;
        ulong directMap = *(ulong*)(s_ring + TraceRingLayout.DirectMapBaseOffset);
        ulong pidVa = task + *(uint*)(s_ring + TraceRingLayout.TaskPidOffset);
        ulong tgidVa = task + *(uint*)(s_ring + TraceRingLayout.TaskTgidOffset);
        ulong commVa = task + commOffset;
        // task_struct lives in the direct map (slab); TryRamOffset keeps MaxRegsBytes in bounds, more than each read.
        if (pidVa < directMap || tgidVa < directMap || commVa < directMap
            || !TryRamOffset(pidVa - directMap, out ulong pid) || !TryRamOffset(tgidVa - directMap, out ulong tgid)
            || !TryRamOffset(commVa - directMap, out ulong comm)) return false;
        *(uint*)(rec + TraceRingLayout.RecPid) = *(uint*)(s_ram + pid);
        *(uint*)(rec + TraceRingLayout.RecTgid) = *(uint*)(s_ram + tgid);
        Buffer.MemoryCopy(s_ram + comm, rec + TraceRingLayout.RecComm, TraceRingLayout.CommBytes, TraceRingLayout.CommBytes);
        return true;
    }

    private static bool TryReadKernel(ulong va, out ulong value)
    {
        value = 0;
        ulong directMap = *(ulong*)(s_ring + TraceRingLayout.DirectMapBaseOffset);
        if (va < directMap || (va & 7) != 0 || !TryRamOffset(va - directMap, out ulong offset)) return false;
        value = *(ulong*)(s_ram + offset);
        return true;
    }

    /// <summary>x86-64 4- or 5-level walk of a user address through tables in guest RAM (present bits, 1G/2M pages).</summary>
    private static bool TryTranslateUser(ulong root, int levels, ulong va, out ulong pa)
    {
        const ulong AddressMask = 0x000f_ffff_ffff_f000;
        pa = 0;
        ulong table = root & AddressMask;
        for (int level = levels; level >= 1; level--)
        {
            int shift = 12 + 9 * (level - 1);
            if (!TryRamOffset(table + ((va >> shift) & 511) * 8, out ulong offset)) return false;
            ulong entry = *(ulong*)(s_ram + offset);
            if ((entry & 1) == 0) return false;
            if (level is 2 or 3 && (entry & 0x80) != 0)
            {
                ulong size = 1UL << shift;
                pa = (entry & AddressMask & ~(size - 1)) + (va & (size - 1));
                return true;
            }
            table = entry & AddressMask;
        }
        pa = table + (va & 0xfff);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryRamOffset(ulong phys, out ulong offset)
    {
        offset = 0;
        if (s_ram is null) return false;
        if (phys + TraceRingLayout.MaxRegsBytes <= s_lowRamLimit) { offset = phys; return true; }
        const ulong FourGiB = 1UL << 32;
        if (phys >= FourGiB && phys - FourGiB + s_lowRamLimit + TraceRingLayout.MaxRegsBytes <= s_ramSize)
        {
            offset = phys - FourGiB + s_lowRamLimit;
            return true;
        }
        return false;
    }

    private static int s_uninstalling;

    /// <summary>The consumer asked the plugin to go: QEMU removes its callbacks and unloads it once the vCPUs are quiet.</summary>
    private static void RequestUninstall()
    {
        if (Interlocked.Exchange(ref s_uninstalling, 1) != 0) return;
        QemuPluginApi.Uninstall(s_id, &OnUninstalled);
    }

    private static void Print(string message)
    {
        if (QemuPluginApi.Output is null) { Console.Error.WriteLine(message); return; }
        byte[] bytes = Encoding.UTF8.GetBytes(message + "\n\0");
        fixed (byte* p = bytes) QemuPluginApi.Output(p);
    }
}

internal static unsafe partial class Libc
{
    public const int O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0x40, O_TRUNC = 0x200, O_CLOEXEC = 0x80000;
    public const int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags, int mode);
    [LibraryImport("libc", EntryPoint = "close")]
    public static partial int Close(int fd);
    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int FTruncate(int fd, long length);
    [LibraryImport("libc", EntryPoint = "lseek")]
    public static partial long LSeek(int fd, long offset, int whence);
    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint MMap(nint addr, nuint length, int prot, int flags, int fd, long offset);
}
