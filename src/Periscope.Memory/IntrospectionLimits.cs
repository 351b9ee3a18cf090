namespace Periscope.Memory;

/// <summary>
/// Caps for every count, size and walk length that comes from untrusted input (a dump file or guest memory).
/// One object flows through all layers so an operator can tighten or relax them in one place.
/// Messages that hit a cap state the number found and the limit.
/// </summary>
public sealed record IntrospectionLimits
{
    public static IntrospectionLimits Default { get; } = new();

    // Dump files
    public int MaxElfProgramHeaders { get; init; } = 65_536;
    public int MaxElfNotes { get; init; } = 4_096;
    public int MaxLimeRanges { get; init; } = 65_536;

    // Kernel discovery
    public int MaxKallsymsSymbols { get; init; } = 1_000_000;
    public int MaxBtfTypes { get; init; } = 1_000_000;
    public int MaxBtfBytes { get; init; } = 64 << 20;
    public int MaxBtfMembers { get; init; } = 65_535;
    public int MaxTypeChainDepth { get; init; } = 32;

    // Kernel model walks
    public int MaxTasks { get; init; } = 65_536;
    public int MaxThreadsPerProcess { get; init; } = 65_536;
    public int MaxModules { get; init; } = 4_096;
    public int MaxVmasPerProcess { get; init; } = 262_144;
    public int MaxMapleTreeDepth { get; init; } = 16;
    public int MaxPathComponents { get; init; } = 256;
    public int MaxStringLength { get; init; } = 4_096;

    // Kernel model work budgets (model robustness): totals per command/target, shared by every walk of one family,
    // so that many small lists cannot multiply into unbounded work. Consumed through one WorkBudget per kernel.
    /// <summary>task_structs visited over all task-list walks of one command (one list is also capped by MaxTasks).</summary>
    public int MaxTaskNodesTotal { get; init; } = 262_144;
    /// <summary>Threads visited over all thread lists of all processes together.</summary>
    public int MaxThreadsTotal { get; init; } = 262_144;
    /// <summary>struct modules visited over all module-list walks.</summary>
    public int MaxModuleNodesTotal { get; init; } = 16_384;
    /// <summary>Bytes of module core images accepted in total; no more than fits in the x86-64 module area (~1 GiB).</summary>
    public long MaxModuleBytesTotal { get; init; } = 1L << 30;
    /// <summary>VMAs visited over all processes together (one process is also capped by MaxVmasPerProcess).</summary>
    public int MaxVmasTotal { get; init; } = 4_194_304;
    /// <summary>Maple-tree nodes visited over all trees together.</summary>
    public int MaxMapleNodesTotal { get; init; } = 1_048_576;
    /// <summary>Dentry/mount steps over all path resolutions together (one path is also capped by MaxPathComponents).</summary>
    public int MaxPathComponentsTotal { get; init; } = 4_194_304;
    /// <summary>Bytes read from guest memory through the kernel model's reader per command.</summary>
    public long MaxModelBytesRead { get; init; } = 4L << 30;
    /// <summary>Page touches (a read spanning two pages counts two) through the kernel model's reader per command.</summary>
    public long MaxModelPagesRead { get; init; } = 64L << 20;
    /// <summary>Largest single buffer allocated from a size the guest or its BTF supplies (strings, arrays, notes).</summary>
    public int MaxGuestAllocation { get; init; } = 1 << 20;
    /// <summary>Largest kernel image span (from _text) searched for kallsyms and BTF.</summary>
    public int MaxKernelImageBytes { get; init; } = 128 << 20;
    /// <summary>Largest .notes section (between __start_notes and __stop_notes) read for the build id.</summary>
    public int MaxKernelNotesBytes { get; init; } = 64 << 10;

    // Baseline-free checks (`periscope check`, Integrity/Checks): total work of each cross-view, whatever the guest's
    // lists, trees and counts claim. A check that reaches a budget stops and reports itself incomplete.
    /// <summary>List, tree and xarray nodes one check may visit in all (children lists of every parent, every CPU's run queues, ...).</summary>
    public int MaxCheckWalkNodes { get; init; } = 1 << 20;
    /// <summary>CPUs whose run queues are read (nr_cpu_ids is guest data).</summary>
    public int MaxCheckCpus { get; init; } = 8_192;

    // Integrity evidence and regions (judge): what baseline create and verify will read from one guest
    /// <summary>Largest kernel region (text, rodata) measured; Debian's 6.x text is ~16 MiB.</summary>
    public ulong MaxKernelRegionBytes { get; init; } = 128UL << 20;
    /// <summary>Largest module region measured; the biggest Debian modules have a few MiB of text.</summary>
    public ulong MaxModuleRegionBytes { get; init; } = 32UL << 20;
    /// <summary>Entries read from one allow-list table (jump labels, static-call sites, ftrace records) in total.</summary>
    public int MaxEvidenceEntries { get; init; } = 1 << 20;
    /// <summary>ftrace_pages blocks and ftrace_ops list nodes walked.</summary>
    public int MaxFtraceNodes { get; init; } = 65_536;
    /// <summary>Symbols read from one module's own symbol table (mod_kallsyms).</summary>
    public int MaxModuleSymbols { get; init; } = 200_000;
    /// <summary>vmalloc areas walked when scanning the module area for hidden modules.</summary>
    public int MaxVmapAreas { get; init; } = 1 << 20;
    /// <summary>Bytes of one unowned module-area allocation searched for a struct module.</summary>
    public int MaxHiddenModuleScanBytes { get; init; } = 4 << 20;
    /// <summary>Bytes of unowned module-area allocations searched in total (hostile vmap lists can be long).</summary>
    public long MaxHiddenModuleScanTotalBytes { get; init; } = 256L << 20;
    /// <summary>Decompressed size of one baseline's stored evidence (a Debian 6.1 guest needs ~4 MiB).</summary>
    public int MaxEvidenceBytes { get; init; } = 64 << 20;

    // Trusted-state database (baseline store) and process code (sweep, import-files)
    /// <summary>Largest baseline database file opened (quick_check reads all of it).</summary>
    public long MaxBaselineDatabaseBytes { get; init; } = 8L << 30;
    /// <summary>Longest single text or blob read from a baseline database (also SQLite's length limit on that connection);
    /// the largest legitimate value is a baseline's compressed evidence (~0.6 MiB for Debian 6.1, bounded by MaxEvidenceBytes).</summary>
    public int MaxBaselineValueBytes { get; init; } = 64 << 20;
    /// <summary>SQLite virtual-machine instructions one store connection may execute in all, so no query on a hostile file runs unbounded.</summary>
    public long MaxBaselineQuerySteps { get; init; } = 4_000_000_000;
    /// <summary>Most page rows loaded from one baseline (16 GiB of measured memory).</summary>
    public int MaxBaselinePages { get; init; } = 4_194_304;
    /// <summary>Largest executable VMA the process-code sweep measures; a larger one is measured up to this size and the sweep marked incomplete.</summary>
    public ulong MaxProcessCodeVmaBytes { get; init; } = 1UL << 30;
    /// <summary>Most page-table leaves the process-code sweep visits in one pass, over all processes.</summary>
    public long MaxProcessCodePagesPerPass { get; init; } = 4_194_304;
    /// <summary>Largest file `baseline import-files` reads.</summary>
    public long MaxImportFileBytes { get; init; } = 512L << 20;

    // Dump files: opening and sparseness (fuzzing / lower-layer hardening)
    /// <summary>Largest dump or RAM file accepted, in bytes (its declared length, holes included).</summary>
    public ulong MaxDumpFileBytes { get; init; } = 1UL << 40;
    /// <summary>Data extents of a sparse file tracked before the rest is treated as data.</summary>
    public int MaxFileDataExtents { get; init; } = 65_536;
    /// <summary>Largest ELF PT_NOTE segment read into memory.</summary>
    public int MaxElfNoteSegmentBytes { get; init; } = 64 << 20;

    // Views as the guest shows them (views: per-CPU idle tasks, module "used by")
    /// <summary>CPUs whose per-CPU areas the kernel model reads (nr_cpu_ids is guest data; x86-64's NR_CPUS is at most 8,192).</summary>
    public int MaxCpus { get; init; } = 8_192;
    /// <summary>Modules listed as users of one module ("used by" in /proc/modules); also bounded by the module-node budget.</summary>
    public int MaxModuleUsers { get; init; } = 4_096;

    // Kernel discovery cost (KernelLocator): what finding the kernel PGD may read before the full-RAM scan fallback.
    /// <summary>Low physical memory searched for the real-mode trampoline's top-level table, whose kernel half is a copy of
    /// init_top_pgt's: the kernel allocates it below 1 MiB whatever the RAM size or KASLR choose.</summary>
    public ulong MaxLowMemorySearchBytes { get; init; } = 1UL << 20;
    /// <summary>Kernel-image pages searched (nearest first, below the image's own L4/L3 table) for init_top_pgt.</summary>
    public int MaxInitTopPgtSearchPages { get; init; } = 32_768;
    /// <summary>Members of one group of the full scan tried as the route to the kernel image (a hostile dump can hold
    /// many look-alike tables; Linux needs one).</summary>
    public int MaxScanTablesTriedPerGroup { get; init; } = 4;
    /// <summary>Distinct pages remembered to count what discovery read; past it the count shown is a lower bound.</summary>
    public int MaxDiscoveryPagesCounted { get; init; } = 1 << 20;

    // Module symbols (`symbols` lists every live module's symbols as /proc/kallsyms does; one module is also capped by MaxModuleSymbols)
    /// <summary>Module symbols (mod_kallsyms entries) read over all modules together.</summary>
    public int MaxModuleSymbolsTotal { get; init; } = 1_000_000;
    /// <summary>Longest module symbol name read: KSYM_NAME_LEN (512) less its NUL, all the kernel's strscpy keeps.</summary>
    public int MaxModuleSymbolNameLength { get; init; } = 511;

    // Offsets without BTF (Linux/Inference): the constraint search's windows and its total work, and the offsets cache
    /// <summary>Bytes of each task_struct searched for members (Debian 6.1's task_struct is 0x2640 bytes).</summary>
    public int MaxInferenceTaskBytes { get; init; } = 16 << 10;
    /// <summary>Bytes of mm_struct and struct module searched (6.1: 0x448 and 0x380 bytes).</summary>
    public int MaxInferenceStructBytes { get; init; } = 4 << 10;
    /// <summary>Bytes of the small structs searched: vm_area_struct, file, dentry, inode, signal_struct's head, cred.</summary>
    public int MaxInferenceSmallStructBytes { get; init; } = 512;
    /// <summary>Objects of one kind (VMAs of one mm, modules) taken as evidence.</summary>
    public int MaxInferenceSamples { get; init; } = 4_096;
    /// <summary>User address spaces (mm_struct and their VMA trees) taken as evidence; a few dozen settle every rule.</summary>
    public int MaxInferenceAddressSpaces { get; init; } = 64;
    /// <summary>Candidate tests and object reads of the whole search together.</summary>
    public long MaxInferenceSteps { get; init; } = 100_000_000;
    /// <summary>Largest offsets-cache entry read (a Debian 6.1 entry is ~10 KiB).</summary>
    public int MaxOffsetsCacheBytes { get; init; } = 1 << 20;

    // Offsets without BTF on big guests (issue 8): the cost must follow what is read, not the number of processes
    /// <summary>Thread-group leaders whose task_struct windows are searched (init_task, pid 1, and an even spread of the
    /// rest); the found members are then checked on every leader's few fields, and threads are found on every leader.</summary>
    public int MaxInferenceTaskSamples { get; init; } = 192;
    // Watch and journal (issue 11: `periscope watch`, `periscope journal`): the journal file and key files are hostile
    // input like any database a user hands us; the watch loop's own bounds.
    /// <summary>Largest journal database opened (SQLite file, WAL not counted).</summary>
    public long MaxJournalDatabaseBytes { get; init; } = 64L << 30;
    /// <summary>Largest payload of one journal record (a finding with its bytes and disassembly is a few KiB).</summary>
    public int MaxJournalPayloadBytes { get; init; } = 1 << 20;
    /// <summary>Records one `journal verify`/`show`/`export` walks before it stops and says it is incomplete.</summary>
    public long MaxJournalRecordsRead { get; init; } = 1L << 32;
    /// <summary>Signed heads one verification reads (one per signing period; a year of 1-minute heads is ~525,000).</summary>
    public int MaxJournalHeads { get; init; } = 4_000_000;
    /// <summary>SQLite virtual-machine instructions one journal operation may run (a verified record costs ~100).</summary>
    public long MaxJournalQuerySteps { get; init; } = 1L << 40;
    /// <summary>Largest key file (PEM) read: a P-256 key is ~250 bytes.</summary>
    public int MaxJournalKeyFileBytes { get; init; } = 16 << 10;
    /// <summary>Targets one `watch` monitors at once (each holds a mapped RAM file and QMP connection).</summary>
    public int MaxWatchTargets { get; init; } = 256;
    /// <summary>Largest watch config file read.</summary>
    public int MaxWatchConfigBytes { get; init; } = 1 << 20;
    /// <summary>Largest GDB remote-protocol packet accepted from the stub (a `g` reply for x86-64 is ~1 KiB of hex).</summary>
    public int MaxGdbPacketBytes { get; init; } = 64 << 10;
    // Typed kernel objects and guest views (issue 13 part A: struct/read/deref, dmesg, ps details, namespaces, mounts)
    /// <summary>Pointers one KernelObjects context may follow in all (Deref, members through pointers, list walks).</summary>
    public int MaxObjectDerefs { get; init; } = 1_000_000;
    /// <summary>Nesting depth an object printout expands (embedded structs, arrays, followed pointers).</summary>
    public int MaxObjectPrintDepth { get; init; } = 32;
    /// <summary>Values (members and elements) one object printout holds in all; the rest is marked as cut.</summary>
    public int MaxObjectPrintNodes { get; init; } = 200_000;
    /// <summary>Elements of one array an object printout shows (BTF can declare arrays of millions).</summary>
    public int MaxObjectArrayElements { get; init; } = 4_096;
    /// <summary>Bytes one `read` (hex dump) may cover.</summary>
    public int MaxRawReadBytes { get; init; } = 16 << 20;
    /// <summary>Bytes of the printk text data ring read (CONFIG_LOG_BUF_SHIFT is at most 25: 32 MiB; log_buf_len= may add).</summary>
    public int MaxPrintkTextBytes { get; init; } = 64 << 20;
    /// <summary>printk descriptors (records) read from the descriptor ring.</summary>
    public int MaxPrintkRecords { get; init; } = 1 << 22;
    /// <summary>Bytes of one process's command line or environment read from its memory.</summary>
    public int MaxProcessArgBytes { get; init; } = 2 << 20;
    /// <summary>Mounts read from one mount namespace.</summary>
    public int MaxMountsPerNamespace { get; init; } = 65_536;
    // Cross-views, open files and sockets (psxview, lsof, sockets: issue 13 part B)
    /// <summary>Nodes visited by all of psxview's walks together (pid IDR nodes, children and thread lists, run-queue
    /// trees): a 2,000-process guest needs ~10,000; cycles and absurd lists stop here.</summary>
    public int MaxTaskViewNodes { get; init; } = 4_000_000;
    /// <summary>fdtable slots read per process: max_fds is guest data (the kernel allows up to sysctl fs.nr_open, 1 Mi by default).</summary>
    public int MaxOpenFilesPerProcess { get; init; } = 1 << 20;
    /// <summary>fdtable slots read over all processes together.</summary>
    public int MaxOpenFilesTotal { get; init; } = 4_000_000;
    /// <summary>Buckets of one kernel socket hash table read (ehash, listening hash, udp table, unix hash): mask+1 is guest data.</summary>
    public int MaxSocketHashBuckets { get; init; } = 1 << 22;
    /// <summary>Sockets read from the kernel's own tables over all of them together.</summary>
    public int MaxSocketsTotal { get; init; } = 1_000_000;
    /// <summary>Resident bytes `dump process` writes into one core file.</summary>
    public long MaxProcessCoreBytes { get; init; } = 64L << 30;
    // Live guest events (Events: trace syscalls/exec): what one event may make us read from the guest
    /// <summary>Entries of sys_call_table named (x86-64 has ~460 syscalls).</summary>
    public int MaxSyscallTableEntries { get; init; } = 1_024;
    /// <summary>Longest path or string argument read from a traced process's memory (PATH_MAX).</summary>
    public int MaxTraceStringBytes { get; init; } = 4_096;
    /// <summary>argv/envp entries read for one exec event.</summary>
    public int MaxTraceArgvEntries { get; init; } = 256;
    /// <summary>Bytes of one exec's argv read in total.</summary>
    public int MaxTraceArgvBytes { get; init; } = 32 << 10;
    /// <summary>Kernel stack size bound used to check that a pt_regs address lies on a task's stack (THREAD_SIZE is
    /// 16 KiB on x86-64, 32 KiB with KASAN; not in BTF).</summary>
    public int MaxKernelStackBytes { get; init; } = 64 << 10;
    /// <summary>Tasks remembered by the tracer (syscalls in flight, process tree) before the oldest are forgotten.</summary>
    public int MaxTracedTasks { get; init; } = 65_536;
    // Cost of big guests (issue 9): what one attach may remember instead of reading it again
    /// <summary>File paths remembered per (vfsmount, dentry) by one kernel model: thousands of processes map the same few
    /// files, and each VMA's path was a dentry walk of its own. Beyond this many, paths are resolved without remembering.</summary>
    public int MaxRememberedPaths { get; init; } = 65_536;
    /// <summary>Bytes of the kernel image, from _text, read ahead from a dump file in bulk at attach (kallsyms and BTF
    /// live there): the mapping itself reads no more than each page touched.</summary>
    public int KernelImagePrefetchBytes { get; init; } = 32 << 20;
    // Record and replay (issue 12): a recording folder is user-supplied input.
    /// <summary>Largest recording manifest (manifest.json) read; a real one is a few KiB.</summary>
    public int MaxRecordingManifestBytes { get; init; } = 1 << 20;
    /// <summary>Most snapshots or files a manifest may list.</summary>
    public int MaxRecordingEntries { get; init; } = 10_000;
    /// <summary>Longest a replay may take to reach one point (host seconds), whatever the recording says; a seek from
    /// the nearest snapshot of a 10-minute recording is meant to take under 30 s on an idle machine. The bound actually
    /// used is the smaller of this and <see cref="MaxReplayToRecordTimeRatio"/> times the recorded run's length.</summary>
    public int MaxReplaySeekSeconds { get; init; } = 600;
    /// <summary>A replay of a stretch of the run may take this many times as long as recording the whole run took (plus
    /// a minute for QEMU to start and load a snapshot): replay runs at about record speed, so more means it is stuck.</summary>
    public int MaxReplayToRecordTimeRatio { get; init; } = 4;
    /// <summary>A running replay whose instruction count has not moved for this many host seconds is stuck.</summary>
    public int MaxReplayStallSeconds { get; init; } = 90;
    /// <summary>Largest event log (events.rr) accepted; the busy demo guest writes about 20 MiB per minute.</summary>
    public long MaxRecordingEventLogBytes { get; init; } = 4L << 30;
    /// <summary>Largest snapshot image (snapshots.qcow2) accepted: each savevm stores the whole vmstate (60-100 MB).</summary>
    public long MaxRecordingSnapshotBytes { get; init; } = 32L << 30;
    /// <summary>Largest other file of a recording (kernel, initrd, serial logs) accepted, before it is hashed.</summary>
    public long MaxRecordingFileBytes { get; init; } = 1L << 30;
    /// <summary>Most bytes watched by `replay --find-write`.</summary>
    public int MaxWatchedBytes { get; init; } = 4096;
    /// <summary>Most points of a `replay --every` timeline.</summary>
    public int MaxTimelinePoints { get; init; } = 1000;
    // Watch, continued (issue 11: --protect watchpoints, QMP): what a compromised QEMU or stub can make us hold
    /// <summary>Longest line read from a QMP socket (a reply of `info registers -a` for 64 vCPUs is ~100 KiB).</summary>
    public int MaxQmpLineBytes { get; init; } = 4 << 20;
    /// <summary>Bytes of one protected kernel object (--protect) kept as a shadow copy to tell which bytes a write changed.</summary>
    public int MaxProtectedObjectBytes { get; init; } = 64 << 10;
    /// <summary>Watchpoint stops handled per second per guest before the rest are only counted (a guest writing a
    /// protected page in a loop must not turn watch into a journal flood).</summary>
    public int MaxProtectedWritesPerSecond { get; init; } = 100;
    // eBPF and the page cache (bpf, dump file: issue 13 part C)
    /// <summary>Entries read from one xarray (an IDR of eBPF objects, a file's page cache): a cycle or absurd tree stops here.</summary>
    public int MaxXarrayEntries { get; init; } = 4_000_000;
    /// <summary>Instructions of one eBPF program scanned for helper calls (BPF_COMPLEXITY_LIMIT_INSNS is 1 Mi).</summary>
    public int MaxBpfInstructions { get; init; } = 1 << 20;
    /// <summary>Cgroups visited for their effective eBPF programs, and items read from one bpf_prog_array.</summary>
    public int MaxBpfCgroups { get; init; } = 1 << 20;
    public int MaxBpfProgArrayItems { get; init; } = 1 << 16;
    /// <summary>Network devices visited (in all network namespaces) for their XDP programs.</summary>
    public int MaxBpfNetDevices { get; init; } = 1 << 20;
    /// <summary>Bytes of one file `dump file` writes (its i_size is guest data).</summary>
    public long MaxPageCacheFileBytes { get; init; } = 64L << 30;
    // Live guest events, finishing issue 10: syscall names from the guest's own dispatch function
    /// <summary>Bytes of x64_sys_call (6.9+: the switch that dispatches syscalls) read to name syscalls; it is ~8 KiB.</summary>
    public int MaxSyscallDispatchBytes { get; init; } = 64 << 10;
    /// <summary>Instructions followed through x64_sys_call's compare-and-branch tree for one syscall number.</summary>
    public int MaxSyscallDispatchSteps { get; init; } = 512;
    // eBPF attach points, finishing issue 13: perf events, trace events, trampolines, TC
    /// <summary>Perf events read from all tasks' perf_event_list (each may hold a kprobe, tracepoint or other program).</summary>
    public int MaxBpfPerfEvents { get; init; } = 1 << 20;
    /// <summary>trace_event_calls read from ftrace_events (a Debian kernel registers ~2,000).</summary>
    public int MaxBpfTraceEvents { get; init; } = 1 << 20;
    /// <summary>Trampolines, and links on their progs_hlist, read from trampoline_table.</summary>
    public int MaxBpfTrampolineEntries { get; init; } = 1 << 20;
    // 32-bit guests and kernel discovery (issue 8): page-table leaves enumerated by the discovery searches
    /// <summary>Leaves enumerated across an i386 kernel's lowmem to find where it turns read-only and executable (_text):
    /// 896 MiB of lowmem is at most 448 2 MiB pages, or 229,376 4 KiB ones where the map is split.</summary>
    public int MaxLowmemTextSearchLeaves { get; init; } = 1 << 16;
    /// <summary>Leaves of the x86-64 kernel half enumerated to find the direct map's base (1 GiB and 2 MiB pages: few).</summary>
    public int MaxDirectMapSearchLeaves { get; init; } = 1 << 20;
    // Cold reads from a dump file (issue 9, last targets): read-ahead before the task walk
    /// <summary>Pages of a dump file asked to be read ahead before the task walk (task_structs found through the pid
    /// IDR, then their creds, mms and exe files), so the walk's scattered reads overlap on the disk. 2,000 processes
    /// need about 4,000; beyond the cap the walk reads the rest page by page as without read-ahead.</summary>
    public int MaxTaskPrefetchPages { get; init; } = 1 << 16;

    // Integrity on kernels without data symbols (i386: Debian's 686 kernels lack KALLSYMS_ALL)
    /// <summary>Bytes of read-only kernel data after _etext searched for the syscall table by its first entries, and the
    /// most the read-only data found from the page tables may span (a 6.1 i386 kernel has about 3 MiB).</summary>
    public long MaxReadOnlyDataSearchBytes { get; init; } = 64L << 20;

    // bpf trampoline images checked by verify (issue 13: verify's trust in bpf trampolines)
    /// <summary>Bytes of one bpf trampoline image read and decoded. The kernel builds an image in one page (PAGE_SIZE until
    /// 6.7; arch_bpf_trampoline_size(), at most a page, since): an image said to be larger is itself a finding.</summary>
    public int MaxBpfTrampolineImageBytes { get; init; } = 4096;
    // Kernel module BTF (issue 13, TC programs before 6.6: cls_bpf's types are in its module's split BTF)
    /// <summary>Bytes of one module's split BTF read from the guest (struct btf's data_size is guest data; cls_bpf's
    /// is ~30 KiB, the largest Debian module's a few MiB).</summary>
    public int MaxModuleBtfBytes { get; init; } = 16 << 20;
    /// <summary>Entries of the kernel's btf_modules list visited to find one module's BTF (one per loaded module).</summary>
    public int MaxBtfModules { get; init; } = 1 << 14;

    // Integrity evidence without BTF (issue 8: verify --no-btf; jump labels, static calls, ftrace)
    /// <summary>Entries of one module's jump-label or static-call table read while inferring where struct module keeps
    /// the table (the first ones suffice to tell a table from another pointer/count pair).</summary>
    public int MaxInferencePatchEntriesPerModule { get; init; } = 64;
    /// <summary>Bytes of one kernel function decoded to find a data object its code uses (jump_label_init, ftrace
    /// functions): the longest of them is a few hundred bytes.</summary>
    public int MaxDataFinderCodeBytes { get; init; } = 4096;
    // Module-area view (issue 8: vmalloc areas on every kernel, 6.9+ vmap_nodes, without BTF, i386)
    /// <summary>vmap_node entries read (6.9+ splits the busy vmalloc areas over nr_vmap_nodes nodes; the kernel makes at
    /// most 128). nr_vmap_nodes is guest data: a larger count is refused, not walked.</summary>
    public int MaxVmapNodes { get; init; } = 1024;
    /// <summary>Largest struct vmap_node accepted (BTF or inferred; 6.12's is ~2.5 KiB with its size-class pools).</summary>
    public int MaxVmapNodeBytes { get; init; } = 1 << 16;
    // Sockets without BTF (Linux/Inference/SocketRules: the kernel's socket tables)
    /// <summary>Buckets of one socket hash table the inference reads for evidence (ehash, lhash2, udp slots): all of them
    /// on a small guest; a large ehash is sampled from its start.</summary>
    public int MaxInferenceSocketBuckets { get; init; } = 1 << 16;
    /// <summary>Bytes of init_net searched for the unix hash's bucket pointer (net.unx.table.buckets).</summary>
    public int MaxInferenceNetBytes { get; init; } = 16 << 10;

    // Open files without BTF (issue 8: lsof's offsets inferred from the processes' file tables)
    /// <summary>Struct files (open and mapped) the lsof offset rules take as evidence, all processes together.</summary>
    public int MaxInferenceFileSamples { get; init; } = 2_048;
    // timeline without BTF (issue 8: task_struct.start_time and the timekeeper inferred when timeline asks)
    /// <summary>Tasks whose task_structs (MaxInferenceTaskBytes each) are compared to infer start_time: the first ones by
    /// pid decide as well as all of them.</summary>
    public int MaxTimelineInferenceTasks { get; init; } = 512;

    /// <summary>
    /// Rejects zero, negative and absurd values (an operator's typo must not disable a cap or turn it into an
    /// allocation of terabytes). Throws <see cref="ArgumentOutOfRangeException"/> naming the property, its value and
    /// the accepted range.
    /// </summary>
    public IntrospectionLimits Validate()
    {
        const long Counts = 1L << 30, Bytes = 1L << 40;
        Check(nameof(MaxElfProgramHeaders), MaxElfProgramHeaders, Counts);
        Check(nameof(MaxElfNotes), MaxElfNotes, Counts);
        Check(nameof(MaxLimeRanges), MaxLimeRanges, Counts);
        Check(nameof(MaxKallsymsSymbols), MaxKallsymsSymbols, Counts);
        Check(nameof(MaxBtfTypes), MaxBtfTypes, Counts);
        Check(nameof(MaxBtfBytes), MaxBtfBytes, int.MaxValue);
        Check(nameof(MaxBtfMembers), MaxBtfMembers, Counts);
        Check(nameof(MaxTypeChainDepth), MaxTypeChainDepth, 4_096);
        Check(nameof(MaxTasks), MaxTasks, Counts);
        Check(nameof(MaxThreadsPerProcess), MaxThreadsPerProcess, Counts);
        Check(nameof(MaxModules), MaxModules, Counts);
        Check(nameof(MaxVmasPerProcess), MaxVmasPerProcess, Counts);
        Check(nameof(MaxMapleTreeDepth), MaxMapleTreeDepth, 64);
        Check(nameof(MaxPathComponents), MaxPathComponents, Counts);
        Check(nameof(MaxStringLength), MaxStringLength, 1 << 30);
        Check(nameof(MaxTaskNodesTotal), MaxTaskNodesTotal, Counts);
        Check(nameof(MaxThreadsTotal), MaxThreadsTotal, Counts);
        Check(nameof(MaxModuleNodesTotal), MaxModuleNodesTotal, Counts);
        Check(nameof(MaxModuleBytesTotal), MaxModuleBytesTotal, Bytes);
        Check(nameof(MaxVmasTotal), MaxVmasTotal, Counts);
        Check(nameof(MaxMapleNodesTotal), MaxMapleNodesTotal, Counts);
        Check(nameof(MaxPathComponentsTotal), MaxPathComponentsTotal, Counts);
        Check(nameof(MaxModelBytesRead), MaxModelBytesRead, Bytes);
        Check(nameof(MaxModelPagesRead), MaxModelPagesRead, Bytes >> 12);
        Check(nameof(MaxGuestAllocation), MaxGuestAllocation, 1 << 30);
        Check(nameof(MaxKernelImageBytes), MaxKernelImageBytes, int.MaxValue);
        Check(nameof(MaxKernelNotesBytes), MaxKernelNotesBytes, 1 << 30);
        Check(nameof(MaxCheckWalkNodes), MaxCheckWalkNodes, Counts);
        Check(nameof(MaxCheckCpus), MaxCheckCpus, Counts);
        Check(nameof(MaxKernelRegionBytes), (long)Math.Min(MaxKernelRegionBytes, (ulong)long.MaxValue), Bytes);
        Check(nameof(MaxModuleRegionBytes), (long)Math.Min(MaxModuleRegionBytes, (ulong)long.MaxValue), Bytes);
        Check(nameof(MaxEvidenceEntries), MaxEvidenceEntries, Counts);
        Check(nameof(MaxFtraceNodes), MaxFtraceNodes, Counts);
        Check(nameof(MaxModuleSymbols), MaxModuleSymbols, Counts);
        Check(nameof(MaxVmapAreas), MaxVmapAreas, Counts);
        Check(nameof(MaxHiddenModuleScanBytes), MaxHiddenModuleScanBytes, Bytes);
        Check(nameof(MaxHiddenModuleScanTotalBytes), MaxHiddenModuleScanTotalBytes, Bytes);
        Check(nameof(MaxEvidenceBytes), MaxEvidenceBytes, Bytes);
        Check(nameof(MaxBaselineDatabaseBytes), MaxBaselineDatabaseBytes, Bytes);
        Check(nameof(MaxBaselineValueBytes), MaxBaselineValueBytes, Bytes);
        Check(nameof(MaxBaselineQuerySteps), MaxBaselineQuerySteps, 1L << 50);
        Check(nameof(MaxBaselinePages), MaxBaselinePages, Counts);
        Check(nameof(MaxProcessCodeVmaBytes), (long)Math.Min(MaxProcessCodeVmaBytes, (ulong)long.MaxValue), Bytes);
        Check(nameof(MaxProcessCodePagesPerPass), MaxProcessCodePagesPerPass, Counts);
        Check(nameof(MaxImportFileBytes), MaxImportFileBytes, Bytes);
        Check(nameof(MaxDumpFileBytes), (long)Math.Min(MaxDumpFileBytes, (ulong)long.MaxValue), 1L << 50);
        Check(nameof(MaxFileDataExtents), MaxFileDataExtents, Counts);
        Check(nameof(MaxElfNoteSegmentBytes), MaxElfNoteSegmentBytes, Bytes);
        Check(nameof(MaxCpus), MaxCpus, Counts);
        Check(nameof(MaxModuleUsers), MaxModuleUsers, Counts);
        Check(nameof(MaxLowMemorySearchBytes), (long)Math.Min(MaxLowMemorySearchBytes, (ulong)long.MaxValue), Bytes);
        Check(nameof(MaxInitTopPgtSearchPages), MaxInitTopPgtSearchPages, Counts);
        Check(nameof(MaxScanTablesTriedPerGroup), MaxScanTablesTriedPerGroup, Counts);
        Check(nameof(MaxDiscoveryPagesCounted), MaxDiscoveryPagesCounted, Counts);
        Check(nameof(MaxModuleSymbolsTotal), MaxModuleSymbolsTotal, Counts);
        Check(nameof(MaxModuleSymbolNameLength), MaxModuleSymbolNameLength, 1 << 20);
        // Offsets without BTF
        Check(nameof(MaxInferenceTaskBytes), MaxInferenceTaskBytes, 1 << 20);
        Check(nameof(MaxInferenceStructBytes), MaxInferenceStructBytes, 1 << 20);
        Check(nameof(MaxInferenceSmallStructBytes), MaxInferenceSmallStructBytes, 1 << 20);
        Check(nameof(MaxInferenceSamples), MaxInferenceSamples, Counts);
        Check(nameof(MaxInferenceAddressSpaces), MaxInferenceAddressSpaces, Counts);
        Check(nameof(MaxInferenceSteps), MaxInferenceSteps, 1L << 40);
        Check(nameof(MaxOffsetsCacheBytes), MaxOffsetsCacheBytes, 1 << 30);
        Check(nameof(MaxInferenceTaskSamples), MaxInferenceTaskSamples, Counts);
        // Watch and journal
        Check(nameof(MaxJournalDatabaseBytes), MaxJournalDatabaseBytes, 1L << 50);
        Check(nameof(MaxJournalPayloadBytes), MaxJournalPayloadBytes, 1 << 30);
        Check(nameof(MaxJournalRecordsRead), MaxJournalRecordsRead, 1L << 50);
        Check(nameof(MaxJournalHeads), MaxJournalHeads, Counts);
        Check(nameof(MaxJournalQuerySteps), MaxJournalQuerySteps, 1L << 50);
        Check(nameof(MaxJournalKeyFileBytes), MaxJournalKeyFileBytes, 1 << 20);
        Check(nameof(MaxWatchTargets), MaxWatchTargets, 1 << 16);
        Check(nameof(MaxWatchConfigBytes), MaxWatchConfigBytes, 1 << 30);
        Check(nameof(MaxGdbPacketBytes), MaxGdbPacketBytes, 1 << 30);
        // Typed kernel objects and guest views
        Check(nameof(MaxObjectDerefs), MaxObjectDerefs, Counts);
        Check(nameof(MaxObjectPrintDepth), MaxObjectPrintDepth, 4_096);
        Check(nameof(MaxObjectPrintNodes), MaxObjectPrintNodes, Counts);
        Check(nameof(MaxObjectArrayElements), MaxObjectArrayElements, Counts);
        Check(nameof(MaxRawReadBytes), MaxRawReadBytes, 1 << 30);
        Check(nameof(MaxPrintkTextBytes), MaxPrintkTextBytes, 1 << 30);
        Check(nameof(MaxPrintkRecords), MaxPrintkRecords, Counts);
        Check(nameof(MaxProcessArgBytes), MaxProcessArgBytes, 1 << 30);
        Check(nameof(MaxMountsPerNamespace), MaxMountsPerNamespace, Counts);
        // Cross-views, open files and sockets
        Check(nameof(MaxTaskViewNodes), MaxTaskViewNodes, Counts);
        Check(nameof(MaxOpenFilesPerProcess), MaxOpenFilesPerProcess, Counts);
        Check(nameof(MaxOpenFilesTotal), MaxOpenFilesTotal, Counts);
        Check(nameof(MaxSocketHashBuckets), MaxSocketHashBuckets, Counts);
        Check(nameof(MaxSocketsTotal), MaxSocketsTotal, Counts);
        Check(nameof(MaxProcessCoreBytes), MaxProcessCoreBytes, Bytes);
        // Live guest events
        Check(nameof(MaxSyscallTableEntries), MaxSyscallTableEntries, 1 << 16);
        Check(nameof(MaxTraceStringBytes), MaxTraceStringBytes, 1 << 20);
        Check(nameof(MaxTraceArgvEntries), MaxTraceArgvEntries, 1 << 16);
        Check(nameof(MaxTraceArgvBytes), MaxTraceArgvBytes, 1 << 24);
        Check(nameof(MaxKernelStackBytes), MaxKernelStackBytes, 1 << 24);
        Check(nameof(MaxTracedTasks), MaxTracedTasks, Counts);
        // Cost of big guests (issue 9)
        Check(nameof(MaxRememberedPaths), MaxRememberedPaths, Counts);
        Check(nameof(KernelImagePrefetchBytes), KernelImagePrefetchBytes, int.MaxValue);
        // Record and replay
        Check(nameof(MaxRecordingManifestBytes), MaxRecordingManifestBytes, 1 << 30);
        Check(nameof(MaxRecordingEntries), MaxRecordingEntries, Counts);
        Check(nameof(MaxReplaySeekSeconds), MaxReplaySeekSeconds, 1 << 24);
        Check(nameof(MaxReplayToRecordTimeRatio), MaxReplayToRecordTimeRatio, 1000);
        Check(nameof(MaxReplayStallSeconds), MaxReplayStallSeconds, 1 << 24);
        Check(nameof(MaxRecordingEventLogBytes), MaxRecordingEventLogBytes, 1L << 50);
        Check(nameof(MaxRecordingSnapshotBytes), MaxRecordingSnapshotBytes, 1L << 50);
        Check(nameof(MaxRecordingFileBytes), MaxRecordingFileBytes, 1L << 50);
        Check(nameof(MaxWatchedBytes), MaxWatchedBytes, 1 << 24);
        Check(nameof(MaxTimelinePoints), MaxTimelinePoints, Counts);
        // Watch, continued
        Check(nameof(MaxQmpLineBytes), MaxQmpLineBytes, 1 << 30);
        Check(nameof(MaxProtectedObjectBytes), MaxProtectedObjectBytes, 1 << 24);
        Check(nameof(MaxProtectedWritesPerSecond), MaxProtectedWritesPerSecond, 1 << 20);
        // eBPF and the page cache
        Check(nameof(MaxXarrayEntries), MaxXarrayEntries, Counts);
        Check(nameof(MaxBpfInstructions), MaxBpfInstructions, 1 << 26);
        Check(nameof(MaxBpfCgroups), MaxBpfCgroups, Counts);
        Check(nameof(MaxBpfProgArrayItems), MaxBpfProgArrayItems, Counts);
        Check(nameof(MaxBpfNetDevices), MaxBpfNetDevices, Counts);
        Check(nameof(MaxPageCacheFileBytes), MaxPageCacheFileBytes, Bytes);
        // Syscall names from the dispatch function
        Check(nameof(MaxSyscallDispatchBytes), MaxSyscallDispatchBytes, 1 << 24);
        Check(nameof(MaxSyscallDispatchSteps), MaxSyscallDispatchSteps, 1 << 16);
        // eBPF attach points
        Check(nameof(MaxBpfPerfEvents), MaxBpfPerfEvents, Counts);
        Check(nameof(MaxBpfTraceEvents), MaxBpfTraceEvents, Counts);
        Check(nameof(MaxBpfTrampolineEntries), MaxBpfTrampolineEntries, Counts);
        // 32-bit guests and kernel discovery
        Check(nameof(MaxLowmemTextSearchLeaves), MaxLowmemTextSearchLeaves, 1 << 24);
        Check(nameof(MaxDirectMapSearchLeaves), MaxDirectMapSearchLeaves, 1 << 26);
        // Cold reads from a dump file
        Check(nameof(MaxTaskPrefetchPages), MaxTaskPrefetchPages, 1 << 24);
        // Integrity on kernels without data symbols
        Check(nameof(MaxReadOnlyDataSearchBytes), MaxReadOnlyDataSearchBytes, 1L << 32);
        // bpf trampoline images
        Check(nameof(MaxBpfTrampolineImageBytes), MaxBpfTrampolineImageBytes, 1 << 20);
        // Kernel module BTF
        Check(nameof(MaxModuleBtfBytes), MaxModuleBtfBytes, int.MaxValue);
        Check(nameof(MaxBtfModules), MaxBtfModules, Counts);
        // Integrity evidence without BTF
        Check(nameof(MaxInferencePatchEntriesPerModule), MaxInferencePatchEntriesPerModule, 1 << 20);
        Check(nameof(MaxDataFinderCodeBytes), MaxDataFinderCodeBytes, 1 << 20);
        // Module-area view
        Check(nameof(MaxVmapNodes), MaxVmapNodes, 1 << 16);
        Check(nameof(MaxVmapNodeBytes), MaxVmapNodeBytes, 1 << 24);
        // Open files without BTF
        Check(nameof(MaxInferenceFileSamples), MaxInferenceFileSamples, Counts);
        // Sockets without BTF
        Check(nameof(MaxInferenceSocketBuckets), MaxInferenceSocketBuckets, 1 << 24);
        Check(nameof(MaxInferenceNetBytes), MaxInferenceNetBytes, 1 << 20);
        // timeline without BTF
        Check(nameof(MaxTimelineInferenceTasks), MaxTimelineInferenceTasks, 1 << 20);
        return this;
    }

    private static void Check(string name, long value, long max)
    {
        if (value < 1 || value > max)
            throw new ArgumentOutOfRangeException(name, value, $"IntrospectionLimits.{name} = {value}: expected 1..{max}");
    }
}
