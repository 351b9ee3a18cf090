using System.Buffers.Binary;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Integrity.Checks;

public sealed record CheckFinding(string Check, Severity Severity, string Subject, ulong Address, string Detail);

/// <summary>
/// Checks that need no history: syscall and interrupt handlers must live in kernel text; module-area memory must
/// belong to a listed module; every task the pid namespace knows must be on the task list. Each cross-view compares
/// what the kernel's lists say with another structure a rootkit would also have to falsify.
/// </summary>
public sealed class InvariantChecks(LinuxKernel kernel)
{
    private const ulong ModuleAreaStart = 0xffffffffc0000000UL, ModuleAreaEnd = 0xffffffffff000000UL;
    private const int MaxVmapAreas = 1 << 20;
    private readonly CodeContext _context = new(kernel);
    private readonly GuestReader _r = kernel.Reader;

    public IReadOnlyList<CheckFinding> Run()
    {
        var findings = new List<CheckFinding>();
        findings.AddRange(SyscallTable());
        findings.AddRange(InterruptTable());
        findings.AddRange(ModuleArea());
        findings.AddRange(PidNamespace());
        findings.AddRange(ChildrenLists());
        findings.AddRange(TaskFlags());
        foreach (var d in kernel.Diagnostics.Items.Where(d => d.Area is "module list" or "task list"))
            findings.Add(new CheckFinding(d.Area, Severity.Warning, "list integrity", d.Address ?? 0, d.Message));
        return findings;
    }

    private bool InKernelText(ulong va) => _context.InKernelText(va);

    /// <summary>Every task_struct the task list and the thread lists lead to: the view the cross-checks compare with.</summary>
    private HashSet<ulong> ListedTasks => _listed ??= kernel.Tasks.SelectMany(t => t.Threads.Select(th => th.Address).Append(t.Address)).ToHashSet();
    private HashSet<ulong>? _listed;

    private string Comm(ulong task) => _r.ReadFixedString(task + (ulong)kernel.Offsets.Task.Comm, kernel.Offsets.Task.CommSize) ?? "?";

    private string Where(ulong va) => _context.ModuleAt(va) is { } m ? $"module {m.Name}" : InKernelText(va) ? "kernel text" : "outside kernel text and modules";

    public IEnumerable<CheckFinding> SyscallTable()
    {
        if (RegionCatalog.SymbolExtent(kernel, "sys_call_table") is not { } table) yield break;
        var bytes = new byte[table.Length];
        if (kernel.KernelSpace.Read(table.Start, bytes) != bytes.Length) yield break;
        // The table's extent runs to the next symbol; trailing zero qwords are alignment padding, not entries.
        int length = bytes.Length;
        while (length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(length - 8)) == 0) length -= 8;
        for (int i = 0; i + 8 <= length; i += 8)
        {
            ulong target = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i));
            if (InKernelText(target)) continue;
            yield return new CheckFinding("syscall table", Severity.Critical, $"sys_call_table[{i / 8}]", table.Start + (ulong)i,
                $"handler 0x{target:x} ({_context.Describe(target)}) is in {Where(target)}");
        }
    }

    public IEnumerable<CheckFinding> InterruptTable()
    {
        if (!kernel.Symbols.TryGetAddress("idt_table", out ulong idt)) yield break;
        var bytes = new byte[256 * 16];
        if (kernel.KernelSpace.Read(idt, bytes) != bytes.Length) yield break;
        for (int v = 0; v < 256; v++)
        {
            var gate = bytes.AsSpan(v * 16, 16);
            if ((gate[5] & 0x80) == 0) continue; // not present
            ulong handler = Verifier.GateHandler(gate);
            if (InKernelText(handler)) continue;
            if (v < 32 && kernel.Symbols.TryFindContaining(handler, out var sym, out _) && sym.Name == "early_idt_handler_array")
            {
                // Linux leaves the reserved exception vectors on their early boot stubs (in freed init text).
                yield return new CheckFinding("interrupt table", Severity.Info, $"IDT vector 0x{v:x2}", idt + (ulong)(v * 16),
                    $"reserved exception vector still on its early boot handler {_context.Describe(handler)}");
                continue;
            }
            yield return new CheckFinding("interrupt table", Severity.Critical, $"IDT vector 0x{v:x2}", idt + (ulong)(v * 16),
                $"handler 0x{handler:x} ({_context.Describe(handler)}) is in {Where(handler)}");
        }
    }

    /// <summary>
    /// Every vmalloc area in the module range must belong to a listed module. An unowned area holding a struct module
    /// (its core base pointing back at the area) is a module unlinked from the list: hidden.
    /// </summary>
    public IEnumerable<CheckFinding> ModuleArea()
    {
        var area = kernel.Btf.FindStruct("vmap_area");
        if (area is null || !kernel.Symbols.TryGetAddress("vmap_area_list", out ulong head)) yield break;
        int list = (int)area.Offset("list"), start = (int)area.Offset("va_start"), end = (int)area.Offset("va_end");
        var modules = kernel.Modules;
        foreach (ulong va in kernel.Lists.Walk(head, list, MaxVmapAreas, "vmap area list", includeHead: false))
        {
            if (!_r.TryU64(va + (ulong)start, out ulong s) || !_r.TryU64(va + (ulong)end, out ulong e) || s < ModuleAreaStart || s >= ModuleAreaEnd || e <= s) continue;
            if (modules.Any(m => m.Base != 0 && m.Base < e && m.Base + Math.Max(m.Size, 1) > s)) continue;
            if (FindStructModule(s, e) is { } hidden)
                yield return new CheckFinding("hidden module", Severity.Critical, hidden.Name, hidden.Address,
                    $"module '{hidden.Name}' (struct module at 0x{hidden.Address:x}, core 0x{s:x}-0x{e:x}) is not on the modules list");
            else
                yield return new CheckFinding("module area", Severity.Info, $"0x{s:x}-0x{e:x}", s,
                    "module-area memory owned by no listed module and holding no struct module (ftrace trampoline, BPF JIT or kprobe slots)");
        }
    }

    private (string Name, ulong Address)? FindStructModule(ulong start, ulong end)
    {
        var o = kernel.Offsets.Module;
        int baseOffset = o.CoreLayout is { } core ? core + o.LayoutBase : o.Mem is { } mem ? mem + o.LayoutBase : -1;
        if (baseOffset < 0) return null;
        ulong size = Math.Min(end - start, 4UL << 20);
        var bytes = new byte[size];
        int n = kernel.KernelSpace.Read(start, bytes);
        for (int off = 0; off + baseOffset + 8 <= n; off += 8)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(off + baseOffset)) != start) continue;
            ulong candidate = start + (ulong)off;
            string? name = _r.ReadFixedString(candidate + (ulong)o.Name, o.NameSize);
            if (name is { Length: > 0 } && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_' || c == '-')) return (name, candidate);
        }
        return null;
    }

    /// <summary>Every task reachable from the pid namespace's IDR (pid → tasks[PIDTYPE_PID]) must be on the task list.</summary>
    public IEnumerable<CheckFinding> PidNamespace()
    {
        var btf = kernel.Btf;
        var pidNs = btf.FindStruct("pid_namespace");
        var pid = btf.FindStruct("pid");
        var task = btf.FindStruct("task_struct");
        var node = btf.FindStruct("xa_node");
        if (pidNs is null || pid is null || task is null || node is null || !kernel.Symbols.TryGetAddress("init_pid_ns", out ulong ns)) yield break;
        ulong xaHead = ns + (ulong)pidNs.Offset("idr.idr_rt.xa_head");
        int slotsOff = (int)node.Offset("slots");
        int slots = node.MemberSize("slots") / 8;
        int tasksOff = (int)pid.Offset("tasks"), nrOff = (int)pid.Offset("numbers") + (int)(btf.FindStruct("upid")?.Offset("nr") ?? 0);
        int linksOff = (int)task.Offset("pid_links");

        var pids = new List<ulong>();
        if (!_r.TryPointer(xaHead, out ulong root)) yield break;
        var seen = new HashSet<ulong>();
        CollectXarray(root, slotsOff, slots, pids, seen, 0);
        foreach (ulong p in pids)
        {
            if (!_r.TryPointer(p + (ulong)tasksOff, out ulong first) || first == 0 || !_r.IsKernelPointer(first)) continue;
            ulong t = first - (ulong)linksOff;
            if (ListedTasks.Contains(t)) continue;
            _r.TryI32(p + (ulong)nrOff, out int nr);
            _r.TryU32(t + (ulong)kernel.Offsets.Task.ExitState, out uint exitState);
            if (exitState != 0) continue; // exiting tasks leave the list before their pid is freed
            yield return new CheckFinding("hidden task", Severity.Critical, $"pid {nr} ({Comm(t)})", t,
                $"task_struct 0x{t:x} is in the pid namespace but on neither the task list nor a thread list");
        }
    }

    /// <summary>Second cross-view: every child on a parent's children list (linked through sibling) must be on the task list.</summary>
    public IEnumerable<CheckFinding> ChildrenLists()
    {
        var task = kernel.Btf.FindStruct("task_struct");
        if (task is null || !task.HasMember("children") || !task.HasMember("sibling")) yield break;
        int children = (int)task.Offset("children"), sibling = (int)task.Offset("sibling");
        var reported = new HashSet<ulong>();
        foreach (var parent in kernel.Tasks)
        {
            foreach (ulong child in kernel.Lists.Walk(parent.Address + (ulong)children, sibling, kernel.Limits.MaxTasks, $"children of pid {parent.Pid}", includeHead: false))
            {
                if (ListedTasks.Contains(child) || !reported.Add(child)) continue;
                _r.TryI32(child + (ulong)kernel.Offsets.Task.Pid, out int pid);
                yield return new CheckFinding("hidden task", Severity.Critical, $"pid {pid} ({Comm(child)})", child,
                    $"task_struct 0x{child:x} is a child of pid {parent.Pid} but not on the task list");
            }
        }
    }

    /// <summary>Flag combinations the kernel never produces: a kernel thread with a user address space, or a user
    /// process claiming to be a kernel thread (hiding from tools that skip kthreads).</summary>
    public IEnumerable<CheckFinding> TaskFlags()
    {
        foreach (var t in kernel.Tasks)
        {
            if (t.Pid == 0) continue;
            if (t.IsKernelThread && t.Mm != 0)
                yield return new CheckFinding("task flags", Severity.Critical, $"pid {t.Pid} ({t.Comm})", t.Address,
                    $"PF_KTHREAD set but the task has a user address space (mm 0x{t.Mm:x})");
            if (t.IsKernelThread && t.ParentPid is not (0 or 2))
                yield return new CheckFinding("task flags", Severity.Warning, $"pid {t.Pid} ({t.Comm})", t.Address,
                    $"kernel thread whose parent is pid {t.ParentPid}, not kthreadd");
        }
    }

    private void CollectXarray(ulong entry, int slotsOff, int slots, List<ulong> result, HashSet<ulong> seen, int depth)
    {
        if (entry == 0 || depth > 8 || result.Count > kernel.Limits.MaxTasks * 4) return;
        bool internalNode = (entry & 3) == 2 && entry > 4096;
        if (!internalNode)
        {
            if ((entry & 3) == 0 && _r.IsKernelPointer(entry)) result.Add(entry);
            return;
        }
        ulong nodeAddr = entry - 2;
        if (!_r.IsKernelPointer(nodeAddr) || !seen.Add(nodeAddr)) return;
        for (int i = 0; i < slots; i++)
            if (_r.TryPointer(nodeAddr + (ulong)slotsOff + (ulong)i * 8, out ulong child) && child != 0)
                CollectXarray(child, slotsOff, slots, result, seen, depth + 1);
    }
}
