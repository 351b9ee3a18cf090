using Periscope.X86;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>
/// The only kernel constants Periscope does not read from the guest: preprocessor macros, which BTF cannot describe
/// (it holds types and enums, not #defines). Each is named after the kernel macro, says where it is defined and why
/// relying on it is safe, and — where the running kernel lets us — is confirmed by <see cref="Confirm"/>, which
/// turns a disagreement into a warning in the discovery log rather than silently trusting the number.
/// Everything else (struct layouts, enum values such as module_state, mod_mem_type, maple_type, pid_type) comes
/// from BTF in <see cref="KernelOffsets"/>.
/// </summary>
public static class KernelMacros
{
    /// <summary>
    /// PF_KTHREAD (include/linux/sched.h): "I am a kernel thread". 0x00200000 since Linux 2.6.27 (unchanged through
    /// 7.x). Safe because it is ABI for tools that read /proc/PID/stat's flags field. Confirmed: kthreadd (pid 2) has
    /// it, and every task without an mm that is not the idle task and not exiting has it.
    /// </summary>
    public const uint PF_KTHREAD = 0x0020_0000;

    /// <summary>PF_EXITING (include/linux/sched.h): set by do_exit before exit_mm clears the mm. 0x4 since 2.6.</summary>
    public const uint PF_EXITING = 0x0000_0004;

    /// <summary>
    /// PF_IDLE (include/linux/sched.h): "I am an IDLE thread", set by init_idle() on every CPU's idle task. 0x2 since
    /// 4.13 (unchanged through 7.x; /proc/PID/stat's flags field is ABI). Confirmed: each rq->idle read must carry it.
    /// </summary>
    public const uint PF_IDLE = 0x0000_0002;

    /// <summary>
    /// PF_WQ_WORKER (include/linux/sched.h): "I'm a workqueue worker", set by worker_thread() and rescuer_thread().
    /// 0x20 since 2.6.36 (unchanged through 7.x). /proc names such tasks with wq_worker_comm(). Confirmed only
    /// indirectly: a task carrying it must also carry PF_KTHREAD, or its name stays its comm (with a diagnostic).
    /// </summary>
    public const uint PF_WQ_WORKER = 0x0000_0020;

    /// <summary>
    /// Linux 6.10 (commit "workqueue: Refactor worker ID formatting and make wq_worker_comm() use full ID string")
    /// changed wq_worker_comm(): before, /proc's name of a worker is its comm plus "+desc"/"-desc"; since, the comm
    /// part is rebuilt by format_worker_id() ("kworker/R-&lt;wq&gt;", "kworker/&lt;cpu&gt;:&lt;id&gt;[H]",
    /// "kworker/u&lt;pool&gt;:&lt;id&gt;", "kworker/dying"), which the 15-character comm may truncate. Nothing in BTF
    /// tells the two apart, so the release decides; the two agree whenever the comm was not truncated.
    /// </summary>
    public static readonly Version WorkerIdFormatSince = new(6, 10);

    /// <summary>
    /// A rescuer's comm: "kworker/R-" and its workqueue's name since the commit "workqueue: Rename rescuer kworker" (6.8),
    /// the bare name before (cut to 15 characters either way). format_worker_id() of 6.10+ builds /proc's name of a
    /// rescuer the same way from workqueue_struct.name. Checked where the rescuer rule meets the data: a rescuer's comm
    /// must be one of the two forms of its workqueue's name, or rescue_wq and the name are not inferred.
    /// </summary>
    public const string RescuerCommPrefix = "kworker/R-";

    /// <summary>
    /// Linux 6.15 (commit "kernfs: Use RCU to access kernfs_node::parent") renamed kernfs_node.parent to __parent: the
    /// same pointer in the same place, now read under RCU. BTF names whichever member the kernel has; without BTF the
    /// inferred member must carry the kernel's own name (so it compares with BTF and `info --offsets` lists what the
    /// source calls it), and only the release can say which that is. Checked: BTF of 6.1 and 6.12 has parent, 7.x __parent
    /// (the guest tests compare the inferred name with BTF's on each).
    /// </summary>
    public static readonly Version KernfsParentRenamedSince = new(6, 15);

    /// <summary>kernfs_node's parent member as the kernel of <paramref name="release"/> names it (<see cref="KernfsParentRenamedSince"/>).</summary>
    public static string KernfsParentMember(Version release) => release >= KernfsParentRenamedSince ? "__parent" : "parent";

    /// <summary>The parent member's name on the other side of <see cref="KernfsParentRenamedSince"/> (a backported rename
    /// shows in BTF under it).</summary>
    public static string OtherKernfsParentMember(string member) => member == "parent" ? "__parent" : "parent";

    /// <summary>
    /// Task state bits (include/linux/sched.h) as task_state_index() reports them: TASK_REPORT covers the low seven
    /// bits, in the order of fs/proc/array.c's task_state_array ("R", "S", "D", "T", "t", "X", "Z", "P"), and
    /// TASK_IDLE (TASK_UNINTERRUPTIBLE | TASK_NOLOAD) reports as "I". Unchanged since 4.14. Confirmed against the
    /// letters of the guest's own task_state_array when kallsyms lists it.
    /// </summary>
    public const uint TASK_REPORT = 0x7f;
    public const uint TASK_UNINTERRUPTIBLE = 0x0002;
    public const uint TASK_NOLOAD = 0x0400;
    public const uint TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD;
    /// <summary>Letters by task_state_index (bit index + 1 of the highest TASK_REPORT bit; 0 is running), then idle.</summary>
    public const string TaskStateLetters = "RSDTtXZPI";

    /// <summary>
    /// MM_CONTEXT_HAS_VSYSCALL (arch/x86/include/asm/mmu.h): bit 1 of mm->context.flags, BIT(1) up to 6.1 and bit
    /// number 1 for test_bit() since; either way the mask is 1 &lt;&lt; 1. /proc shows [vsyscall] only for such mms.
    /// Confirmed indirectly: when vsyscall_mode is not NONE, pid 1 (a 64-bit process) has it.
    /// </summary>
    public const ulong MM_CONTEXT_HAS_VSYSCALL = 1UL << 1;

    /// <summary>
    /// vsyscall_mode's NONE (arch/x86/entry/vsyscall/vsyscall_64.c: an anonymous enum { EMULATE, XONLY, NONE }).
    /// The enum is anonymous and static, so BTF may not carry it under a name we can ask for. Confirmed: the value
    /// read from vsyscall_mode must be one of 0..2.
    /// </summary>
    public const uint VSYSCALL_NONE = 2;

    /// <summary>
    /// PID_MAX_LIMIT (include/linux/threads.h) on 64-bit: 4 * 1024 * 1024. No pid or tgid can exceed it, so a larger
    /// value marks a task_struct as garbage. Confirmed: the kernel's pid_max variable must not exceed it.
    /// </summary>
    public const int PID_MAX_LIMIT = 4 * 1024 * 1024;

    /// <summary>
    /// vm_flags bits (include/linux/mm.h): VM_READ, VM_WRITE, VM_EXEC, VM_MAYSHARE — unchanged since 2.6 and what
    /// /proc/PID/maps's permission column is built from. Confirmed: the x86-64 gate_vma (the vsyscall page) is
    /// VM_READ | VM_EXEC (VM_EXEC alone with vsyscall=xonly).
    /// </summary>
    public const ulong VM_READ = 0x1, VM_WRITE = 0x2, VM_EXEC = 0x4, VM_MAYSHARE = 0x80;

    /// <summary>PAGE_SHIFT on x86 (4 KiB base pages): vm_pgoff counts pages; VMAs start and end on page boundaries.</summary>
    public const int PAGE_SHIFT = 12;
    public const ulong PAGE_MASK_LOW = (1UL << PAGE_SHIFT) - 1;

    /// <summary>
    /// The largest order the buddy allocator hands out on x86 (include/linux/mmzone.h): MAX_ORDER - 1 = 10 before 6.4,
    /// MAX_ORDER (inclusive since "mm: reinterpret MAX_ORDER as inclusive", 6.4) = 10 after, MAX_PAGE_ORDER since 6.8;
    /// x86 has no ARCH_FORCE_MAX_ORDER, so 10 throughout 6.1..7.x. ftrace_allocate_pages() halves a failing order, so a
    /// ftrace_page.order above it is not the kernel's: checked where ftrace pages are walked without symbols
    /// (PatchTableDataSearch.FtracePagesStart), where a real page must fit it.
    /// </summary>
    public const int MAX_PAGE_ORDER = 10;

    /// <summary>MINORBITS (include/linux/kdev_t.h): an in-kernel dev_t is major &lt;&lt; 20 | minor, as maps prints it.</summary>
    public const int MINORBITS = 20;

    /// <summary>MODULE_REF_BASE (kernel/module/main.c): the refcount of a live module starts at 1.</summary>
    public const int MODULE_REF_BASE = 1;

    /// <summary>
    /// The c_true letters of kernel/panic.c's taint_flags[] for TAINT_PROPRIETARY_MODULE (0) .. TAINT_UNSIGNED_MODULE (13),
    /// in TAINT_* order (include/linux/panic.h). These numbers are ABI (the bits of /proc/sys/kernel/tainted,
    /// Documentation/admin-guide/tainted-kernels.rst) and unchanged since 3.15; later TAINT_* numbers (L, K, X, T, N, ...)
    /// are only appended. Entry 0 alone has a c_false ('G'); the others print ' '. Only the table's layout is found from
    /// them (without BTF); the letters printed are always the guest's own. Confirmed by the table: every one of these
    /// entries must carry its letter at one offset of one stride.
    /// </summary>
    public const string TaintFlagLetters = "PFSRMBUDAWCIOE";
    public const char TaintFlagProprietaryFalse = 'G', TaintFlagOtherFalse = ' ';
    /// <summary>Among <see cref="TaintFlagLetters"/>, the entries with module = true (a module can carry them): P, F, C, O, E.</summary>
    public const string TaintFlagModuleLetters = "PFCOE";

    /// <summary>
    /// Maple-tree node pointer encoding (include/linux/maple_tree.h, lib/maple_tree.c): the node type (an enum
    /// maple_type value, from BTF) sits in bits 3..6 (MAPLE_NODE_TYPE_SHIFT, MAPLE_NODE_TYPE_MASK), the node address
    /// is the pointer with the low byte cleared (MAPLE_NODE_MASK), and only the root carries the xarray "internal
    /// node" tag (low bits 10, value above 4096: xa_is_node / mte_is_node). Stable since maple trees arrived in 6.1.
    /// </summary>
    public const int MAPLE_NODE_TYPE_SHIFT = 3;
    public const ulong MAPLE_NODE_TYPE_MASK = 0x0f;
    public const ulong MAPLE_NODE_MASK = 0xff;

    /// <summary>
    /// x86-64 module area (arch/x86/include/asm/pgtable_64_types.h): MODULES_VADDR = __START_KERNEL_map +
    /// KERNEL_IMAGE_SIZE, where KERNEL_IMAGE_SIZE is 1 GiB with CONFIG_RANDOMIZE_BASE and 512 MiB without;
    /// MODULES_END = 0xffffffffff000000 with 4- and 5-level paging alike. Which image size applies is decided by
    /// <see cref="ModuleArea"/> from the running kernel; the kernel image's _end must lie below the start.
    /// </summary>
    public const ulong START_KERNEL_map = 0xffff_ffff_8000_0000;
    public const ulong KERNEL_IMAGE_SIZE_KASLR = 1UL << 30;
    public const ulong KERNEL_IMAGE_SIZE_FIXED = 512UL << 20;
    public const ulong MODULES_END = 0xffff_ffff_ff00_0000;

    /// <summary>
    /// The module area of this kernel. KASLR-capable kernels (CONFIG_RANDOMIZE_BASE: kallsyms lists
    /// kernel_randomize_memory or kaslr_get_random_long, or the image was slid) use the 1 GiB image size.
    /// </summary>
    public static VirtualRange ModuleArea(KernelSymbols symbols, ulong virtualSlide)
    {
        bool kaslr = virtualSlide != 0 || symbols.TryGetAddress("kernel_randomize_memory", out _)
            || symbols.TryGetAddress("kaslr_get_random_long", out _);
        return new VirtualRange(START_KERNEL_map + (kaslr ? KERNEL_IMAGE_SIZE_KASLR : KERNEL_IMAGE_SIZE_FIXED), MODULES_END);
    }

    /// <summary>
    /// i386 module area (arch/x86/include/asm/pgtable_32_areas.h): MODULES_VADDR = VMALLOC_START = high_memory +
    /// VMALLOC_OFFSET (8 MiB), MODULES_END = VMALLOC_END, below the persistent-kmap and fixmap areas at the top of the
    /// 4 GiB. high_memory is the end of lowmem: PAGE_OFFSET plus RAM, at most MAXMEM (896 MiB with the 3G split). The
    /// range starts at lowmem's end (a plausibility bound for module addresses) and ends below the last 8 MiB.
    /// </summary>
    public const ulong I386_VMALLOC_OFFSET = 8UL << 20;
    public const ulong I386_MAX_LOWMEM = 896UL << 20;
    public const ulong I386_MODULES_END = 0xFF80_0000;

    /// <summary>The module area of this kernel: <see cref="ModuleArea(KernelSymbols, ulong)"/> on x86-64, the vmalloc
    /// area above lowmem on i386.</summary>
    public static VirtualRange ModuleArea(KernelSymbols symbols, Discovery.KernelLayout layout, ulong ramEnd)
    {
        if (!layout.Mode.Is32Bit()) return ModuleArea(symbols, layout.VirtualSlide);
        ulong pageOffset = layout.PageOffsetBase ?? X86.PagingModes.DefaultI386PageOffset;
        ulong lowmem = Math.Min(Math.Min(ramEnd, I386_MAX_LOWMEM), 0x1_0000_0000UL - pageOffset);
        return new VirtualRange(pageOffset + lowmem, I386_MODULES_END);
    }

    /// <summary>
    /// Checks the macros above against the running kernel where it can say. Returns one line per disagreement
    /// (empty when everything that could be checked agrees).
    /// </summary>
    public static IReadOnlyList<string> Confirm(KernelSymbols symbols, GuestReader reader, VirtualRange moduleArea, KernelOffsets offsets)
    {
        var problems = new List<string>();
        // gate_vma is VM_READ | VM_EXEC, or VM_EXEC alone with vsyscall=xonly.
        if (symbols.TryGetAddress("gate_vma", out ulong gate) && reader.TryULong(gate + (ulong)offsets.Vma.Flags, out ulong gateFlags)
            && (gateFlags & (VM_READ | VM_WRITE | VM_EXEC | VM_MAYSHARE)) is not (VM_READ | VM_EXEC) and not VM_EXEC)
            problems.Add($"gate_vma.vm_flags = 0x{gateFlags:x}: expected VM_READ | VM_EXEC (0x{VM_READ | VM_EXEC:x}) or VM_EXEC among the permission bits");
        if (symbols.TryGetAddress("_end", out ulong end) && end > moduleArea.Start)
            problems.Add($"kernel image ends at 0x{end:x}, inside the module area assumed to start at 0x{moduleArea.Start:x}");
        if (symbols.TryGetAddress("pid_max", out ulong pidMaxVa) && reader.TryI32(pidMaxVa, out int pidMax) && (pidMax <= 0 || pidMax > PID_MAX_LIMIT))
            problems.Add($"pid_max = {pidMax} is outside 1..PID_MAX_LIMIT = {PID_MAX_LIMIT}");
        if (symbols.TryGetAddress("vsyscall_mode", out ulong modeVa) && reader.TryU32(modeVa, out uint mode) && mode > VSYSCALL_NONE)
            problems.Add($"vsyscall_mode = {mode}: expected EMULATE, XONLY or NONE (0..{VSYSCALL_NONE})");
        if (symbols.TryGetAddress("task_state_array", out ulong states))
        {
            // static const char * const task_state_array[] = { "R (running)", "S (sleeping)", ... "I (idle)" };
            for (int i = 0; i < TaskStateLetters.Length; i++)
            {
                if (!reader.TryPointer(states + (ulong)(i * reader.PointerSize), out ulong text) || reader.ReadCString(text, 1) is not { Length: 1 } s) break;
                if (s[0] != TaskStateLetters[i])
                {
                    problems.Add($"task_state_array[{i}] is \"{s}\", expected \"{TaskStateLetters[i]}\": the task state bits moved");
                    break;
                }
            }
        }
        return problems;
    }

    /// <summary>
    /// The <see cref="KernfsParentRenamedSince"/> check, where the kernel has BTF: its kernfs_node (<paramref name="kernfsNodeHas"/>
    /// answers for its members) must have the parent member the release names. Null when it does, or when BTF has
    /// neither name (no kernfs_node to check).
    /// </summary>
    public static string? ConfirmKernfsParent(Func<string, bool> kernfsNodeHas, Version release)
    {
        string expected = KernfsParentMember(release), other = OtherKernfsParentMember(expected);
        return kernfsNodeHas(expected) || !kernfsNodeHas(other) ? null
            : $"BTF's kernfs_node has {other}, not {expected} as release {release} should (renamed in {KernfsParentRenamedSince}): "
              + $"offsets inferred for this release would be named differently from BTF's";
    }

    /// <summary>
    /// The PF_KTHREAD check over a task list: kthreadd (pid 2) must carry it, and a task without an mm must carry it
    /// unless it is the idle task (pid 0) or exiting (exit_state set: zombies have dropped their mm).
    /// </summary>
    public static IEnumerable<string> ConfirmKthreadFlag(IEnumerable<LinuxTask> tasks, Func<LinuxTask, bool> exiting)
    {
        foreach (var t in tasks)
        {
            if (t.Pid == 2 && (t.Flags & PF_KTHREAD) == 0)
                yield return $"kthreadd (pid 2) lacks PF_KTHREAD (0x{PF_KTHREAD:x}); flags 0x{t.Flags:x}";
            else if (t.Pid != 0 && t.Mm == 0 && (t.Flags & PF_KTHREAD) == 0 && !exiting(t))
                yield return $"pid {t.Pid} has no mm and is not exiting but lacks PF_KTHREAD (0x{PF_KTHREAD:x}); flags 0x{t.Flags:x}";
        }
    }
}

/// <summary>A half-open range of kernel virtual addresses [Start, End).</summary>
public readonly record struct VirtualRange(ulong Start, ulong End)
{
    public ulong Length => End - Start;
    public bool Contains(ulong va) => va >= Start && va < End;
    /// <summary>True when [start, start + length) lies entirely inside (no wrap-around).</summary>
    public bool Contains(ulong start, ulong length) => start >= Start && start <= End && length <= End - start;
}
