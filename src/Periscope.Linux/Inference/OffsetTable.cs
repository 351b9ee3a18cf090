using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>One offset the model uses, named as the kernel names it (struct, member path).</summary>
public readonly record struct OffsetEntry(string Struct, string Member, int Offset)
{
    public string Name => $"{Struct}.{Member}";
}

/// <summary>
/// Every offset in a <see cref="KernelOffsets"/>, named by struct and member path as in the kernel's source and BTF (so
/// inferred and BTF offsets compare by name, and `info --offsets` and `profile export` list the same names).
/// </summary>
public static class OffsetTable
{
    public static IReadOnlyList<OffsetEntry> Of(KernelOffsets o)
    {
        var list = new List<OffsetEntry>();
        void Add(string s, string m, int? v) { if (v is { } x) list.Add(new OffsetEntry(s, m, x)); }
        var t = o.Task;
        Add("task_struct", "tasks", t.Tasks); Add("task_struct", "pid", t.Pid); Add("task_struct", "tgid", t.Tgid);
        Add("task_struct", "comm", t.Comm); Add("task_struct", "mm", t.Mm); Add("task_struct", "real_parent", t.RealParent);
        Add("task_struct", "parent", t.Parent); Add("task_struct", "group_leader", t.GroupLeader); Add("task_struct", "thread_group", t.ThreadGroup);
        Add("task_struct", "thread_node", t.ThreadNode); Add("task_struct", "signal", t.Signal); Add("task_struct", "flags", t.Flags);
        Add("task_struct", "__state", t.State); Add("task_struct", "exit_state", t.ExitState); Add("task_struct", "real_cred", t.RealCred);
        Add("task_struct", "cred", t.Cred);
        Add("signal_struct", "thread_head", t.SignalThreadHead); Add("signal_struct", "nr_threads", t.SignalNrThreads);
        var m = o.Mm;
        Add("mm_struct", "pgd", m.Pgd); Add("mm_struct", "map_count", m.MapCount); Add("mm_struct", "mmap", m.Mmap);
        Add("mm_struct", "start_code", m.StartCode); Add("mm_struct", "end_code", m.EndCode); Add("mm_struct", "start_brk", m.StartBrk);
        Add("mm_struct", "brk", m.Brk); Add("mm_struct", "start_stack", m.StartStack); Add("mm_struct", "exe_file", m.ExeFile);
        Add("mm_struct", "context.flags", m.ContextFlags);
        if (o.Maple is { } mt) Add("mm_struct", "mm_mt.ma_root", mt.Root);
        var v = o.Vma;
        Add("vm_area_struct", "vm_start", v.Start); Add("vm_area_struct", "vm_end", v.End); Add("vm_area_struct", "vm_mm", v.Mm);
        Add("vm_area_struct", "vm_flags", v.Flags); Add("vm_area_struct", "vm_pgoff", v.PgOff); Add("vm_area_struct", "vm_file", v.File);
        Add("vm_area_struct", "vm_next", v.Next); Add("vm_area_struct", "vm_ops", v.Ops); Add("vm_area_struct", "vm_private_data", v.PrivateData);
        Add("vm_special_mapping", "name", o.SpecialMappingName);
        var d = o.Module;
        Add("module", "state", d.State); Add("module", "list", d.List); Add("module", "name", d.Name);
        Add("module", "core_layout", d.CoreLayout); Add("module", "init_layout", d.InitLayout); Add("module", "mem", d.Mem); Add("module", "refcnt", d.RefCount);
        if (d.Mem is not null) { Add("module_memory", "size", d.LayoutSize); Add("module_memory", InferenceReport.SizeOfMember, d.MemSize); }
        if (o.ModuleUse is { } u)
        {
            Add("module", "source_list", u.SourceList); Add("module_use", "source_list", u.UseSourceList); Add("module_use", "source", u.UseSource);
            Add("module", "init", u.Init); Add("module", "exit", u.Exit);
        }
        if (o.ModuleSymbols is { } ms)
        {
            Add("module", "kallsyms", ms.Kallsyms); Add("mod_kallsyms", "symtab", ms.Symtab); Add("mod_kallsyms", "num_symtab", ms.NumSymtab);
            Add("mod_kallsyms", "strtab", ms.Strtab); Add("mod_kallsyms", "typetab", ms.Typetab);
            Add("elf64_sym", "st_name", ms.SymName); Add("elf64_sym", "st_value", ms.SymValue); Add("elf64_sym", InferenceReport.SizeOfMember, ms.SymSize);
            Add("module", "syms", ms.Syms); Add("module", "num_syms", ms.NumSyms);
            if (ms.Syms is not null)
            {
                Add("kernel_symbol", ms.KernelSymbolRelative ? "value_offset" : "value", ms.KernelSymbolValue);
                Add("kernel_symbol", ms.KernelSymbolRelative ? "name_offset" : "name", ms.KernelSymbolName);
                Add("kernel_symbol", InferenceReport.SizeOfMember, ms.KernelSymbolSize);
            }
        }
        if (o.ModuleTaint is { } mt2)
        {
            Add("module", "taints", mt2.Taints); Add("taint_flag", InferenceReport.SizeOfMember, mt2.FlagSize);
            Add("taint_flag", "c_true", mt2.FlagLetter); Add("taint_flag", "module", mt2.FlagModule);
        }
        if (o.PatchTables is { } pt)
        {
            Add("module", "jump_entries", pt.ModuleJumpEntries); Add("module", "num_jump_entries", pt.ModuleNumJumpEntries);
            Add("module", "static_call_sites", pt.ModuleStaticCallSites); Add("module", "num_static_call_sites", pt.ModuleNumStaticCallSites);
            Add("ftrace_ops", "func", pt.FtraceOpsFunc); Add("ftrace_ops", "next", pt.FtraceOpsNext);
            Add("ftrace_ops", "trampoline", pt.FtraceOpsTrampoline); Add("ftrace_ops", "trampoline_size", pt.FtraceOpsTrampolineSize);
        }
        var p = o.Path;
        Add("file", "f_path", p.FilePath); Add("file", "f_path.dentry", p.FilePath + p.PathDentry); Add("file", "f_inode", p.FileInode);
        Add("dentry", "d_parent", p.DentryParent); Add("dentry", "d_name", p.DentryName - StructuralFacts.QstrName);
        Add("mount", "mnt", p.MountMnt); Add("mount", "mnt_parent", p.MountParent); Add("mount", "mnt_mountpoint", p.MountMountpoint);
        Add("vfsmount", "mnt_root", p.VfsMountRoot); Add("inode", "i_ino", p.InodeIno); Add("inode", "i_sb", p.InodeSb);
        Add("super_block", "s_dev", p.SuperBlockDev);
        Add("cred", "uid", o.CredUid); Add("cred", "gid", o.CredGid); Add("cred", "euid", o.CredEuid);
        Add("list_head", "prev", o.ListHeadPrev);
        if (o.Vmalloc is { } va)
        {
            Add("vmap_area", "va_start", va.VaStart); Add("vmap_area", "va_end", va.VaEnd); Add("vmap_area", "list", va.List); Add("vmap_area", "rb_node", va.RbNode);
            Add("vmap_node", "busy.head", va.NodeBusyHead); Add("vmap_node", InferenceReport.SizeOfMember, va.NodeSize);
        }
        if (o.Pid is { } pid) PidRules(pid, Add);
        if (o.RunQueue is { } rq) { Add("rq", "cpu", rq.Cpu); Add("rq", "curr", rq.Curr); Add("rq", "idle", rq.Idle); }
        o.Scheduler?.List(Add);
        o.OpenFiles?.List(Add); o.SocketFiles?.List(Add);
        o.SocketTables?.List(Add);
        o.Namespaces?.List(Add);
        o.ProcessDetails?.List(Add);
        o.Bpf?.List(Add);
        if (o.Kthread is { } k) { Add("task_struct", "worker_private", k.TaskKthread); Add("kthread", "data", k.Data); Add("kthread", "full_name", k.FullName); }
        if (o.Workqueue is { } w)
        {
            Add("worker", "desc", w.WorkerDesc); Add("worker", "current_work", w.WorkerCurrentWork); Add("worker", "pool", w.WorkerPool);
            Add("worker", "task", w.WorkerTask); Add("worker", "rescue_wq", w.WorkerRescueWq); Add("workqueue_struct", "name", w.WqName);
        }
        o.Mounts?.List(Add);
        return list;
    }

    /// <summary>struct pid, upid, the pid namespace's IDR and the task links the pid cross-views read.</summary>
    private static void PidRules(PidOffsets p, Action<string, string, int?> add)
    {
        add("task_struct", "thread_pid", p.ThreadPid); add("pid", "numbers", p.Numbers); add("upid", "nr", p.UpidNr);
        add("upid", "ns", p.UpidNs); add("pid", "tasks", p.Tasks - p.PidTypePid * 8); add("task_struct", "pid_links", p.TaskPidLinks);
        add("task_struct", "children", p.Children); add("task_struct", "sibling", p.Sibling);
        add("pid_namespace", "idr.idr_rt.xa_head", p.NamespaceXaHead); add("xa_node", "slots", p.XaNodeSlots);
    }
}
