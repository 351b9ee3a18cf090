using System.Runtime.InteropServices;

namespace Periscope.QemuPlugin;

/// <summary>
/// The part of QEMU's TCG plugin API, version 1 (QEMU 7.2), that the trace plugin uses, declared from its public
/// documentation. QEMU exports these functions from its own binary, so they are resolved once, at install, from the
/// main program. Calls made on the vCPU thread in a callback never re-enter managed code, so they skip the GC
/// transition.
/// </summary>
internal static unsafe class QemuPluginApi
{
    /// <summary>QEMU_PLUGIN_CB_NO_REGS: our callbacks read no guest registers (v1 cannot anyway).</summary>
    public const int CallbackNoRegisters = 0;
    /// <summary>enum qemu_plugin_mem_rw.</summary>
    public const int MemRead = 1, MemWrite = 2, MemReadWrite = 3;

    // void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *))
    public static delegate* unmanaged<ulong, delegate* unmanaged<ulong, nint, void>, void> RegisterTbTrans;
    // void qemu_plugin_register_vcpu_init_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, unsigned int vcpu_index))
    public static delegate* unmanaged<ulong, delegate* unmanaged<ulong, uint, void>, void> RegisterVcpuInit;
    // void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *userdata), void *userdata)
    public static delegate* unmanaged<ulong, delegate* unmanaged<ulong, nint, void>, nint, void> RegisterAtExit;
    // void qemu_plugin_uninstall(qemu_plugin_id_t, void (*)(qemu_plugin_id_t))
    public static delegate* unmanaged<ulong, delegate* unmanaged<ulong, void>, void> Uninstall;
    // void qemu_plugin_reset(qemu_plugin_id_t, void (*)(qemu_plugin_id_t)): unregisters every callback, flushes the
    // translated code, then calls the callback (which registers again)
    public static delegate* unmanaged<ulong, delegate* unmanaged<ulong, void>, void> Reset;
    // size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *)
    public static delegate* unmanaged[SuppressGCTransition]<nint, nuint> TbInstructionCount;
    // struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t idx)
    public static delegate* unmanaged[SuppressGCTransition]<nint, nuint, nint> TbInstruction;
    // const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *)
    public static delegate* unmanaged[SuppressGCTransition]<nint, byte*> InstructionData;
    // size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *)
    public static delegate* unmanaged[SuppressGCTransition]<nint, nuint> InstructionSize;
    // uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *)
    public static delegate* unmanaged[SuppressGCTransition]<nint, ulong> InstructionVaddr;
    // void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *, void (*)(unsigned int vcpu_index,
    //     qemu_plugin_meminfo_t info, uint64_t vaddr, void *userdata), enum qemu_plugin_cb_flags, enum qemu_plugin_mem_rw, void *userdata)
    public static delegate* unmanaged[SuppressGCTransition]<nint, delegate* unmanaged<uint, uint, ulong, nint, void>, int, int, nint, void> RegisterMemory;
    // struct qemu_plugin_hwaddr *qemu_plugin_get_hwaddr(qemu_plugin_meminfo_t, uint64_t vaddr)
    public static delegate* unmanaged[SuppressGCTransition]<uint, ulong, nint> GetHardwareAddress;
    // bool qemu_plugin_hwaddr_is_io(const struct qemu_plugin_hwaddr *)
    public static delegate* unmanaged[SuppressGCTransition]<nint, byte> HardwareAddressIsIo;
    // uint64_t qemu_plugin_hwaddr_phys_addr(const struct qemu_plugin_hwaddr *)
    public static delegate* unmanaged[SuppressGCTransition]<nint, ulong> PhysicalAddress;
    // bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t)
    public static delegate* unmanaged[SuppressGCTransition]<uint, byte> IsStore;
    // void qemu_plugin_outs(const char *)
    public static delegate* unmanaged<byte*, void> Output;

    /// <summary>Resolves every function from the QEMU binary; false (and the missing name) when one is absent.</summary>
    public static bool TryResolve(out string missing)
    {
        nint main = NativeLibrary.GetMainProgramHandle();
        missing = "";
        bool ok = true;
        nint Get(string name, ref string missing)
        {
            if (NativeLibrary.TryGetExport(main, name, out nint p)) return p;
            ok = false;
            missing = name;
            return 0;
        }
        RegisterTbTrans = (delegate* unmanaged<ulong, delegate* unmanaged<ulong, nint, void>, void>)Get("qemu_plugin_register_vcpu_tb_trans_cb", ref missing);
        RegisterVcpuInit = (delegate* unmanaged<ulong, delegate* unmanaged<ulong, uint, void>, void>)Get("qemu_plugin_register_vcpu_init_cb", ref missing);
        RegisterAtExit = (delegate* unmanaged<ulong, delegate* unmanaged<ulong, nint, void>, nint, void>)Get("qemu_plugin_register_atexit_cb", ref missing);
        Uninstall = (delegate* unmanaged<ulong, delegate* unmanaged<ulong, void>, void>)Get("qemu_plugin_uninstall", ref missing);
        Reset = (delegate* unmanaged<ulong, delegate* unmanaged<ulong, void>, void>)Get("qemu_plugin_reset", ref missing);
        TbInstructionCount = (delegate* unmanaged[SuppressGCTransition]<nint, nuint>)Get("qemu_plugin_tb_n_insns", ref missing);
        TbInstruction = (delegate* unmanaged[SuppressGCTransition]<nint, nuint, nint>)Get("qemu_plugin_tb_get_insn", ref missing);
        InstructionData = (delegate* unmanaged[SuppressGCTransition]<nint, byte*>)Get("qemu_plugin_insn_data", ref missing);
        InstructionSize = (delegate* unmanaged[SuppressGCTransition]<nint, nuint>)Get("qemu_plugin_insn_size", ref missing);
        InstructionVaddr = (delegate* unmanaged[SuppressGCTransition]<nint, ulong>)Get("qemu_plugin_insn_vaddr", ref missing);
        RegisterMemory = (delegate* unmanaged[SuppressGCTransition]<nint, delegate* unmanaged<uint, uint, ulong, nint, void>, int, int, nint, void>)Get("qemu_plugin_register_vcpu_mem_cb", ref missing);
        GetHardwareAddress = (delegate* unmanaged[SuppressGCTransition]<uint, ulong, nint>)Get("qemu_plugin_get_hwaddr", ref missing);
        HardwareAddressIsIo = (delegate* unmanaged[SuppressGCTransition]<nint, byte>)Get("qemu_plugin_hwaddr_is_io", ref missing);
        PhysicalAddress = (delegate* unmanaged[SuppressGCTransition]<nint, ulong>)Get("qemu_plugin_hwaddr_phys_addr", ref missing);
        IsStore = (delegate* unmanaged[SuppressGCTransition]<uint, byte>)Get("qemu_plugin_mem_is_store", ref missing);
        Output = (delegate* unmanaged<byte*, void>)Get("qemu_plugin_outs", ref missing);
        return ok;
    }
}

/// <summary>qemu_info_t as QEMU 7.2 passes it to qemu_plugin_install.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct QemuInfo
{
    public byte* TargetName;
    public int VersionMin;
    public int VersionCurrent;
    public byte SystemEmulation;     // C bool
    public int SmpVcpus;             // union { struct { int smp_vcpus; int max_vcpus; } system; }
    public int MaxVcpus;
}
