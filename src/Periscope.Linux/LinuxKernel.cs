using System.Text;
using Periscope.Linux.Btf;
using Periscope.Linux.Discovery;
using Periscope.Linux.Inference;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux;

/// <summary>
/// A Linux kernel rebuilt from guest physical memory alone: layout (paging, KASLR), symbols (kallsyms), types (BTF)
/// and the objects they describe (tasks, modules, memory maps). No profile, System.map or debug package is used.
/// Not thread-safe; for a live guest call <see cref="Refresh"/> to drop cached views before re-reading.
/// Every walk draws from one <see cref="WorkBudget"/> per kernel (per command); a walk cut short by a cap, a budget
/// or a corrupt structure marks the model <see cref="IsIncomplete"/>, with the reasons in <see cref="IncompleteReasons"/>.
/// </summary>
public sealed class LinuxKernel
{
    private readonly IDirectPhysicalMemory _memory;
    private IReadOnlyList<LinuxTask>? _tasks;
    private IReadOnlyList<KernelModule>? _modules;
    private IReadOnlyList<IdleTask>? _idleTasks;
    private bool _tasksPrefetched;
    private readonly PathResolver _paths;
    private readonly TaskList _taskList;
    private readonly VmaReader _vmas;

    private LinuxKernel(IDirectPhysicalMemory memory, GuestReader reader, IntrospectionLimits limits, DiscoveryLog log, KernelLayout layout,
        KernelSymbols symbols, KallsymsLocation kallsyms, BtfTypes? btf, KernelOffsets offsets, string banner, InferenceReport? inference, OffsetSource offsetSource,
        IReadOnlyList<CpuState> cpus, string? dumpVmcoreInfo)
    {
        _memory = memory;
        _dumpVmcoreInfo = dumpVmcoreInfo;
        Cpus = cpus;
        Limits = limits;
        Log = log;
        Layout = layout;
        Symbols = symbols;
        KallsymsLocation = kallsyms;
        Btf = btf;
        Offsets = offsets;
        Inference = inference;
        OffsetSource = offsetSource;
        Banner = banner;
        Reader = reader;
        KernelSpace = reader.Space;
        ModuleArea = KernelMacros.ModuleArea(symbols, layout, memory.Map.RamEnd);
        foreach (var problem in KernelMacros.Confirm(symbols, reader, ModuleArea, offsets)) log.Warn($"kernel macro check: {problem}");
        if (btf?.FindStruct("kernfs_node") is { } kernfsNode && KernelMacros.ConfirmKernfsParent(kernfsNode.HasMember, ReleaseVersion(Release)) is { } renamed)
            log.Warn($"kernel macro check: {renamed}");
        Lists = new ListWalker(Reader, Diagnostics, offsets.ListHeadPrev);
        _paths = new PathResolver(Reader, offsets, limits, Diagnostics);
        InitTask = inference?.InitTask is { } found && found != 0 ? found : symbols.GetAddress("init_task");
        var names = new TaskNames(Reader, offsets, Diagnostics, ReleaseVersion(Release) >= KernelMacros.WorkerIdFormatSince);
        _taskList = new TaskList(Reader, offsets, InitTask, limits, Diagnostics, _paths, Lists, names);
        _vmas = new VmaReader(Reader, offsets, limits, Diagnostics, _paths, new SpecialMappings(symbols, inference?.SpecialMappingOpsFromText is { } fromText ? layout.TextVa + fromText : null));
    }

    public IntrospectionLimits Limits { get; }
    public DiscoveryLog Log { get; }
    public Diagnostics Diagnostics { get; } = new();
    public KernelLayout Layout { get; }
    public KernelSymbols Symbols { get; }
    public KallsymsLocation KallsymsLocation { get; }
    /// <summary>The kernel's own type information; null when the kernel has none (or with --no-btf): then
    /// <see cref="Offsets"/> were inferred from the data (<see cref="Inference"/> says how) or came from the offsets cache.</summary>
    public BtfTypes? Btf { get; }
    public KernelOffsets Offsets { get; }
    /// <summary>Member offsets by name, from BTF or (without it) from <see cref="Offsets"/> as inferred.</summary>
    public KernelLayouts Layouts => _layouts ??= new KernelLayouts(Btf, Offsets, Btf is null ? VmcoreInfo : null);
    private KernelLayouts? _layouts;
    /// <summary>The kernel's VMCOREINFO: the dump's note when it names this kernel's release, else the kernel's own note
    /// in its memory; null when neither is found (the reason is logged).</summary>
    public KernelVmcoreInfo? VmcoreInfo
    {
        get
        {
            if (_vmcoreInfoRead) return _vmcoreInfo;
            _vmcoreInfoRead = true;
            string? reason = null;
            if (_dumpVmcoreInfo is not null)
            {
                var fromDump = KernelVmcoreInfo.Parse(_dumpVmcoreInfo, "the dump's VMCOREINFO note");
                if (fromDump.OsRelease == Release) return _vmcoreInfo = fromDump;
                reason = $"the dump's VMCOREINFO names release '{fromDump.OsRelease}', not '{Release}'";
            }
            _vmcoreInfo = KernelVmcoreInfo.FromKernelMemory(Reader, Symbols, Release, out string? fromMemory);
            if (_vmcoreInfo is null) Log.Fact("VMCOREINFO", "not found", reason is null ? fromMemory! : $"{reason}; {fromMemory}");
            return _vmcoreInfo;
        }
    }
    private readonly string? _dumpVmcoreInfo;
    private KernelVmcoreInfo? _vmcoreInfo;
    private bool _vmcoreInfoRead;
    /// <summary>Kernel data objects by name: kallsyms, else VMCOREINFO, else found by structure.</summary>
    public KernelDataAddresses DataAddresses => _dataAddresses ??= new KernelDataAddresses(this);
    private KernelDataAddresses? _dataAddresses;
    /// <summary>Where <see cref="Offsets"/> came from.</summary>
    public OffsetSource OffsetSource { get; }
    /// <summary>The constraint search's evidence (candidates, rules, decisions) when the offsets were inferred.</summary>
    public InferenceReport? Inference { get; }
    /// <summary>init_task: from kallsyms, or found by its own structure when kallsyms has no data symbols.</summary>
    public ulong InitTask { get; }
    /// <summary>The kernel's linux_banner: version, builder, build date.</summary>
    public string Banner { get; }
    /// <summary>Kernel virtual memory through the kernel PGD.</summary>
    public AddressSpace KernelSpace { get; }
    public GuestReader Reader { get; }
    /// <summary>Bounded, cycle-checked list_head walks that report into <see cref="Diagnostics"/>.</summary>
    public ListWalker Lists { get; }
    public IPhysicalMemory Physical => _memory;
    /// <summary>Total work allowed to this kernel's walks (tasks, threads, modules, VMAs, maple nodes, paths, bytes read).</summary>
    public WorkBudget Budget => Reader.Budget;
    /// <summary>MODULES_VADDR..MODULES_END of this kernel (see <see cref="KernelMacros.ModuleArea"/>).</summary>
    public VirtualRange ModuleArea { get; }

    /// <summary>True when some result left something out: a walk stopped early, an object was rejected, a budget ran out.</summary>
    public bool IsIncomplete => Diagnostics.IsIncomplete || Budget.AnyExhausted;

    /// <summary>Why the model is incomplete, one line each (budgets first, then the diagnostics that cost results).</summary>
    public IReadOnlyList<string> IncompleteReasons =>
        Budget.Exhausted.Select(Budget.Describe)
            .Concat(Diagnostics.Items.Where(d => d.Incomplete).Select(d => d.ToString()))
            .Concat(Diagnostics.Dropped > 0 ? [$"{Diagnostics.Dropped} further diagnostics were not kept"] : [])
            .ToArray();

    /// <summary>Release string, e.g. "6.1.0-56-amd64", taken from the banner.</summary>
    public string Release => ReleaseOf(Banner);

    /// <summary>The release in a banner ("Linux version 6.1.0-56-amd64 (...)" → "6.1.0-56-amd64"); "?" when it is no banner.</summary>
    public static string ReleaseOf(string banner)
    {
        const string prefix = "Linux version ";
        if (!banner.StartsWith(prefix, StringComparison.Ordinal)) return "?";
        int end = banner.IndexOf(' ', prefix.Length);
        return end < 0 ? banner[prefix.Length..] : banner[prefix.Length..end];
    }

    public IReadOnlyList<LinuxTask> Tasks => _tasks ??= Log.Time("task walk", ReadTasks);

    /// <summary>The vCPU state the kernel was opened with (empty when the source gave none).</summary>
    public IReadOnlyList<CpuState> Cpus { get; }

    /// <summary>The syscall table, IDT and read-only data the integrity checks measure: by data symbol, or, on kernels
    /// without data symbols (i386), by structure, the vCPU's IDTR and the page tables.</summary>
    public DispatchTables Dispatch => _dispatch ??= Log.Time("dispatch tables", () => DispatchTables.Find(Symbols, Reader, Cpus, Limits));
    private DispatchTables? _dispatch;

    /// <summary>Each possible CPU's idle task (rq->idle; without BTF or data symbols, idle_threads), CPU 0's being init_task;
    /// empty when unavailable (diagnostic says why).</summary>
    public IReadOnlyList<IdleTask> IdleTasks => _idleTasks ??= Log.Time("idle tasks",
        () => new IdleTasks(Reader, Offsets, Symbols, Limits, Diagnostics, _taskList, InitTask, Cpus).Read());

    /// <summary>
    /// The tasks as crash's and drgn's ps list them: the task list with every other CPU's idle task (pid 0,
    /// swapper/N) right after init_task (CPU 0's). Integrity checks use <see cref="Tasks"/>, the kernel's own list.
    /// </summary>
    public IReadOnlyList<LinuxTask> ProcessTable
    {
        get
        {
            var idleByAddress = new Dictionary<ulong, LinuxTask>();
            foreach (var i in IdleTasks) idleByAddress.TryAdd(i.Task.Address, i.Task);
            // init_task is listed already: shown once, as CPU 0's idle task.
            var tasks = Tasks.Select(t => idleByAddress.Remove(t.Address, out var asIdle) ? t with { IdleCpu = asIdle.IdleCpu } : t).ToList();
            var idle = IdleTasks.Select(i => i.Task).Where(t => idleByAddress.Remove(t.Address)).ToList(); // CPU order, each once
            if (idle.Count == 0) return tasks;
            int at = tasks.Count > 0 && tasks[0].Pid == 0 ? 1 : 0;
            return [.. tasks.Take(at), .. idle, .. tasks.Skip(at)];
        }
    }

    /// <summary>"6.1.0-57-amd64" → 6.1; 0.0 when the release does not start with major.minor.</summary>
    public static Version ReleaseVersion(string release)
    {
        var parts = release.Split('.', 3);
        return parts.Length >= 2 && int.TryParse(parts[0], out int major)
            && int.TryParse(new string(parts[1].TakeWhile(char.IsAsciiDigit).ToArray()), out int minor)
            ? new Version(major, minor) : new Version(0, 0);
    }

    public IReadOnlyList<KernelModule> Modules => _modules ??= Log.Time("module walk",
        () => new ModuleList(Reader, Offsets, Lists, Limits, Diagnostics, ModuleArea,
            DataAddresses.TryGetAddress("taint_flags", out ulong taintFlags) ? taintFlags : null).Read(ModulesHead()));

    /// <summary>The `modules` list head; a kernel whose kallsyms lacks data symbols has none to start from (reported).</summary>
    private ulong ModulesHead()
    {
        if (Symbols.TryGetAddress("modules", out ulong head)) return head;
        if (Inference?.ModulesHead is { } found) return found;
        Diagnostics.ReportIncomplete("module list", "kallsyms has no `modules` list head (no data symbols): modules are not listed");
        return 0;
    }

    private IReadOnlyList<LinuxTask> ReadTasks()
    {
        // From a dump file not in the page cache, the walk's scattered pages are asked for all at once (first walk only).
        if (!_tasksPrefetched)
        {
            _tasksPrefetched = true;
            using (Log.Stage("task read-ahead")) TaskPrefetch.Create(_memory, Reader, Symbols, Btf, Offsets, Limits)?.Run();
        }
        var tasks = _taskList.Read();
        // PF_KTHREAD is a macro, not in BTF: confirm it on this kernel's own tasks (once per read).
        foreach (var problem in KernelMacros.ConfirmKthreadFlag(tasks, t => t.ExitState != 0 || (t.Flags & KernelMacros.PF_EXITING) != 0).Take(8))
            Diagnostics.Report("kernel macros", problem);
        return tasks;
    }

    public IReadOnlyList<Vma> GetVmas(LinuxTask task) => _vmas.Read(task.Mm);

    /// <summary>Loaded modules' own types (split BTF from the kernel's btf_modules list), cached per module.</summary>
    public ModuleBtf ModuleBtf => _moduleBtf ??= new ModuleBtf(this);
    private ModuleBtf? _moduleBtf;

    /// <summary>Typed access to any kernel object through BTF (see <see cref="Objects.KernelObjects"/>).</summary>
    /// <exception cref="KernelModelException">The kernel has no BTF (or --no-btf): types are unknown.</exception>
    public Objects.KernelObjects Objects => _objects ??= new Objects.KernelObjects(
        Btf ?? throw new KernelModelException("typed kernel objects need the kernel's BTF (none found, or --no-btf)"), Reader, Symbols);
    private Objects.KernelObjects? _objects;

    /// <summary>The object of BTF type <paramref name="typeName"/> at <paramref name="address"/>: <c>kernel.Object("task_struct", a)["comm"].ReadString()</c>.</summary>
    public Objects.KernelObject Object(string typeName, ulong address) => Objects.Object(typeName, address);

    /// <summary>The user address space of a process (its own PGD), or null for kernel threads.</summary>
    public AddressSpace? GetAddressSpace(LinuxTask task) =>
        task.PgdPhysical is { } pgd ? new AddressSpace(_memory, pgd, Layout.Mode) : null;

    /// <summary>Drops cached lists and translations: the next read sees the guest as it is now.</summary>
    public void Refresh()
    {
        _tasks = null;
        _modules = null;
        _idleTasks = null;
        _paths.Forget();
        KernelSpace.FlushCache();
    }

    public static LinuxKernel Open(IDirectPhysicalMemory memory, IReadOnlyList<CpuState>? cpus = null, IntrospectionLimits? limits = null, string? vmcoreInfo = null,
        KernelOpenOptions? options = null)
    {
        options ??= KernelOpenOptions.Default;
        limits = (limits ?? IntrospectionLimits.Default).Validate();
        cpus ??= [];
        var log = new DiscoveryLog();
        var layout = KernelLocator.Locate(memory, new DiscoveryInputs { Cpus = cpus, VmcoreInfo = vmcoreInfo, Methods = options.Discovery }, limits, log);
        bool i386 = layout.Mode.Is32Bit();

        // From a dump file not in the page cache, the image is read in a few large requests rather than page by page.
        (memory as IPrefetchableMemory)?.Prefetch(layout.TextPa, (ulong)limits.KernelImagePrefetchBytes);
        var image = ImageSpan(memory, layout.TextPa, limits.MaxKernelImageBytes);
        var diagnostics = new List<string>();
        KallsymsResult? found;
        // i386: the same tables with 4-byte longs and 4-aligned labels.
        using (log.Stage("kallsyms")) found = KallsymsDecoder.Decode(image, layout.TextVa, limits, diagnostics, pointerSize: i386 ? 4 : 8);
        var kallsyms = found ?? throw new KernelNotFoundException(KallsymsNotFound(diagnostics));
        var symbols = kallsyms.Symbols;
        log.Fact("kallsyms", $"{symbols.Count} symbols", $"token table at 0x{kallsyms.Location.TokenTableVa:x}, {kallsyms.Location.TableOrder.Describe()} order, {kallsyms.Location.AddressEncoding.Describe()} addresses{(kallsyms.Location.HasSeqsOfNames ? ", seqs_of_names" : "")}");
        if (kallsyms.Location.RelativeBase == 0)
            log.Fact("_text cross-check", "not available", $"{kallsyms.Location.AddressEncoding.Describe()} kallsyms addresses carry no relocated base to compare with");
        else if (kallsyms.Location.RelativeBase != layout.TextVa)
            log.Warn($"kallsyms_relative_base 0x{kallsyms.Location.RelativeBase:x} differs from _text 0x{layout.TextVa:x} found in the page tables");
        else log.Fact("_text cross-check", "consistent", "kallsyms_relative_base (relocated at boot) equals the page-table _text");
        // The image-PGD and direct-map cross-checks are x86-64's (an i386 kernel has one lowmem map, checked by discovery).
        if (!i386) layout = KernelLocator.ConfirmWithSymbols(memory, layout, symbols, log);

        // One kernel address space from here on: its translation cache warmed by discovery serves the model too.
        var reader = new GuestReader(new AddressSpace(memory, layout.KernelPgd, layout.Mode), limits, new WorkBudget(limits));
        if (!i386) layout = RefineWithSymbols(layout, symbols, reader, log);

        string banner;
        using (log.Stage("banner")) banner = ReadBanner(reader, symbols, image, log);
        if (options.NoDataSymbols)
        {
            symbols = TextSymbolsOnly(symbols);
            log.Fact("kallsyms", $"{symbols.Count} text symbols only", "--no-data-symbols: as on a kernel built without CONFIG_KALLSYMS_ALL");
        }
        BtfTypes? btf = null;
        KernelOffsets offsets;
        InferenceReport? inference = null;
        var source = OffsetSource.Btf;
        string? btfMissing = null;
        if (!options.NoBtf)
            using (log.Stage("BTF")) btf = LoadBtf(memory, layout, symbols, image, limits, log, out btfMissing);
        if (btf is not null) offsets = KernelOffsets.FromBtf(btf);
        else
        {
            log.Fact("BTF", "not used", options.NoBtf ? "--no-btf: offsets are inferred from the data" : $"{btfMissing}: offsets are inferred from the data");
            var moduleArea = KernelMacros.ModuleArea(symbols, layout, memory.Map.RamEnd);
            var cacheKey = options.Cache is null ? null : OffsetsCache.Key(banner, BuildIdOf(reader, symbols, limits));
            if (cacheKey is not null && options.Cache!.TryLoad(cacheKey, limits, log) is { } cached)
            {
                (offsets, inference, source) = (cached.Offsets, cached.Report, OffsetSource.Cache);
                log.Fact("offsets", "from the offsets cache", $"entry {cacheKey} ({options.Cache.Directory})");
                // The cache holds offsets, not addresses: without data symbols init_task is found by its structure again.
                if (!symbols.TryGetAddress("init_task", out _))
                    using (log.Stage("init_task search"))
                    {
                        cached.Report.InitTask = OffsetInference.FindInitTask(reader, symbols, layout, limits, moduleArea);
                        cached.Report.InitTaskFromStructure = true;
                    }
                if (!symbols.TryGetAddress("modules", out _) && OffsetInference.FindModulesHead(reader, symbols, layout, limits, moduleArea, out _) is { } head)
                    cached.Report.ModulesHead = head;
            }
            else
            {
                using (log.Stage("offset inference")) (offsets, inference) = KernelOffsets.FromInference(reader, symbols, layout, limits, moduleArea,
                    ReleaseVersion(ReleaseOf(banner)));
                source = OffsetSource.Inferred;
                log.Fact("offsets", $"{inference.Members.Count(m => m.IsKnown)} members inferred, {inference.Unknown.Count()} unknown",
                    $"constraint search over {inference.Tasks} tasks, {inference.Threads} threads, {inference.Mms} mms, {inference.Vmas} VMAs, {inference.Files} files, {inference.Modules} modules ({inference.Steps} tests)");
                if (cacheKey is not null) options.Cache!.Store(cacheKey, offsets, inference, log);
            }
            if (inference?.InitTaskFromStructure == true)
                log.Fact("init_task", $"0x{inference.InitTask:x}", "not in kallsyms: found by its own structure (\"swapper/0\", the task list, real_parent)");
            if (inference?.ModulesHead is { } modulesHead)
                log.Fact("modules", $"0x{modulesHead:x}", "not in kallsyms: the one list_head in the kernel's data cycling through module-area nodes shaped like struct module");
        }
        ConfirmWithVmcoreInfo(vmcoreInfo, layout, symbols, log);
        return new LinuxKernel(memory, reader, limits, log, layout, symbols, kallsyms.Location, btf, offsets, banner, inference, source, cpus, vmcoreInfo);
    }

    /// <summary>One readable line: how many candidates were rejected, and the reasons of the ones that got furthest (a
    /// parsed token table), each cut short; the digit-pattern decoys that are not token tables at all are only counted.</summary>
    private static string KallsymsNotFound(IReadOnlyList<string> diagnostics)
    {
        const int MaxShown = 2, MaxReason = 240;
        var furthest = diagnostics.Where(d => !d.Contains("is not a short printable string", StringComparison.Ordinal)).ToList();
        var shown = (furthest.Count > 0 ? furthest : diagnostics).TakeLast(MaxShown)
            .Select(d => d.Length <= MaxReason ? d : d[..MaxReason] + "…");
        return $"kallsyms tables not found in the kernel image ({diagnostics.Count} candidate(s) rejected): {string.Join("; ", shown)}";
    }

    private static unsafe ReadOnlySpan<byte> ImageSpan(IDirectPhysicalMemory memory, ulong textPa, int maxImageBytes)
    {
        byte* p = memory.GetPointer(textPa, out ulong available);
        if (p == null) throw new KernelNotFoundException($"kernel image at physical 0x{textPa:x} is not backed by the memory source");
        return new ReadOnlySpan<byte>(p, (int)Math.Min(available, (ulong)maxImageBytes));
    }

    private static KernelLayout RefineWithSymbols(KernelLayout layout, KernelSymbols symbols, GuestReader reader, DiscoveryLog log)
    {
        ulong? Var(string name)
        {
            if (!symbols.TryGetAddress(name, out ulong va) || !reader.TryU64(va, out ulong v)) return null;
            log.Fact(name, $"0x{v:x}", $"read from the kernel variable at 0x{va:x}");
            return v;
        }
        ulong? pob = Var("page_offset_base");
        if (pob is { } p && layout.PageOffsetBase is { } found && p != found)
            log.Warn($"page_offset_base variable 0x{p:x} differs from the direct map found by scanning (0x{found:x})");
        if (symbols.TryGetAddress("__pgtable_l5_enabled", out ulong l5) && reader.TryU32(l5, out uint l5on)
            && (l5on != 0) != (layout.Mode == PagingMode.FiveLevel))
            log.Warn($"__pgtable_l5_enabled={l5on} disagrees with the {(int)layout.Mode}-level paging found");
        return layout with { PageOffsetBase = pob ?? layout.PageOffsetBase, VmallocBase = Var("vmalloc_base"), VmemmapBase = Var("vmemmap_base") };
    }

    private static string ReadBanner(GuestReader reader, KernelSymbols symbols, ReadOnlySpan<byte> image, DiscoveryLog log)
    {
        if (symbols.TryGetAddress("linux_banner", out ulong va) && reader.ReadCString(va, 512) is { } s && s.StartsWith("Linux version ", StringComparison.Ordinal))
        {
            log.Fact("banner", s.TrimEnd(), "linux_banner symbol");
            return s.TrimEnd();
        }
        int at = image.IndexOf("Linux version "u8);
        if (at < 0) return "?";
        var rest = image[at..];
        int end = rest.IndexOfAny((byte)0, (byte)'\n');
        string banner = Encoding.UTF8.GetString(rest[..(end < 0 ? Math.Min(rest.Length, 512) : end)]);
        log.Fact("banner", banner, "first \"Linux version \" string in the kernel image");
        return banner;
    }

    /// <summary>The kernel's build id (GNU note between __start_notes and __stop_notes), or null when it cannot be read.</summary>
    private static string? BuildIdOf(GuestReader reader, KernelSymbols symbols, IntrospectionLimits limits)
    {
        if (!symbols.TryGetAddress("__start_notes", out ulong start) || !symbols.TryGetAddress("__stop_notes", out ulong stop)
            || stop <= start || stop - start > (ulong)limits.MaxKernelNotesBytes) return null;
        var notes = new byte[stop - start];
        return reader.Read(start, notes) == notes.Length ? KernelIdentity.FindGnuBuildId(notes) : null;
    }

    /// <summary>The kernel's BTF, or null (with the reason in <paramref name="missing"/>) when the image holds none.</summary>
    /// <summary>
    /// What scripts/kallsyms keeps without --all-symbols (CONFIG_KALLSYMS_ALL=n): the symbols inside the text ranges
    /// _stext.._etext and _sinittext.._einittext. By address, not by type letter: Linux 7.x lists data such as init_task
    /// as 'T'. Without those markers, the type letter is all there is to go by.
    /// </summary>
    private static KernelSymbols TextSymbolsOnly(KernelSymbols symbols)
    {
        var ranges = new List<(ulong Start, ulong End)>();
        foreach (var (start, end) in (ReadOnlySpan<(string, string)>)[("_stext", "_etext"), ("_sinittext", "_einittext")])
            if (symbols.TryGetAddress(start, out ulong from) && symbols.TryGetAddress(end, out ulong to) && from <= to) ranges.Add((from, to));
        return ranges.Count == 0
            ? new KernelSymbols(symbols.All.Where(s => s.Type is 't' or 'T' or 'w' or 'W'))
            : new KernelSymbols(symbols.All.Where(s => ranges.Any(r => s.Address >= r.Start && s.Address <= r.End)));
    }

    private static BtfTypes? LoadBtf(IDirectPhysicalMemory memory, KernelLayout layout, KernelSymbols symbols, ReadOnlySpan<byte> image, IntrospectionLimits limits, DiscoveryLog log,
        out string? missing)
    {
        missing = null;
        var rejected = new List<string>();
        // __start_BTF known and holding no BTF magic at all: the kernel's own BTF section is absent or wiped, and a BTF
        // header found elsewhere in the image that does not parse is some other blob (Linux 7.x embeds a small one in
        // its BPF preload skeleton), not a corrupt kernel BTF.
        bool sectionHasNoBtf = false;
        if (symbols.TryGetAddress("__start_BTF", out ulong start) && symbols.TryGetAddress("__stop_BTF", out ulong stop) && stop > start
            && stop - start <= (ulong)limits.MaxBtfBytes)
        {
            var blob = memory.GetSpan(layout.ImageVaToPa(start), (int)(stop - start));
            if (!blob.IsEmpty && BtfTypes.LooksLikeHeader(blob))
            {
                if (BtfTypes.TryParse(blob, limits, out var types, out var error))
                {
                    log.Fact("BTF", $"{types!.Count} types, {blob.Length} bytes", $"__start_BTF..__stop_BTF at 0x{start:x}");
                    return types;
                }
                log.Warn($"BTF at __start_BTF 0x{start:x} is malformed ({error!.Message}); searching the image");
                rejected.Add($"__start_BTF 0x{start:x}: {error.Message}");
            }
            else
            {
                log.Warn($"__start_BTF at 0x{start:x} does not hold a BTF header; searching the image");
                // The BTF magic with a header that does not hold up is corruption, not a kernel built without BTF.
                if (blob.Length >= 2 && System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(blob) == BtfTypes.Magic) rejected.Add($"__start_BTF 0x{start:x}: BTF magic with an implausible header");
                else sectionHasNoBtf = true;
            }
        }
        // Without symbols: search the kernel image. Stale corrupt copies exist outside it, so the image comes first.
        foreach (int offset in BtfTypes.FindCandidates(image, limits))
        {
            if (BtfTypes.TryParse(image[offset..], limits, out var types, out var error))
            {
                log.Fact("BTF", $"{types!.Count} types", $"header found by search at image offset 0x{offset:x}");
                return types;
            }
            rejected.Add($"image offset 0x{offset:x}: {error!.Message}");
        }
        // A BTF header that does not parse is corrupt input (an error); no header at all is a kernel without BTF, whose
        // offsets are then inferred.
        if (rejected.Count > 0 && sectionHasNoBtf)
        {
            log.Warn($"__start_BTF holds no BTF; BTF headers elsewhere in the image did not parse and are not the kernel's: {string.Join("; ", rejected.Take(3))}");
            missing = $"no BTF in the kernel image (its BTF section at __start_BTF 0x{start:x} is empty or wiped)";
            return null;
        }
        if (rejected.Count > 0)
            throw new KernelNotFoundException($"no usable BTF in the kernel image; {rejected.Count} candidate(s) rejected: {string.Join("; ", rejected.Take(3))}");
        missing = "no BTF in the kernel image (kernel built without CONFIG_DEBUG_INFO_BTF?)";
        return null;
    }

    private static void ConfirmWithVmcoreInfo(string? vmcoreInfo, KernelLayout layout, KernelSymbols symbols, DiscoveryLog log)
    {
        if (vmcoreInfo is null) return;
        var hints = VmcoreInfoHints.Parse(vmcoreInfo);
        if (hints.KernelOffset is { } off)
        {
            if (off == layout.VirtualSlide) log.Fact("VMCOREINFO cross-check", "consistent", $"KERNELOFFSET={off:x} equals the virtual slide found");
            else log.Warn($"VMCOREINFO KERNELOFFSET={off:x} differs from the virtual slide 0x{layout.VirtualSlide:x} found");
        }
        foreach (var (name, va) in new[] { ("init_task", hints.InitTask), ("swapper_pg_dir", hints.SwapperPgDir) })
            if (va is { } stated && symbols.TryGetAddress(name, out ulong ours) && ours != stated)
                log.Warn($"VMCOREINFO says {name} is at 0x{stated:x}, kallsyms says 0x{ours:x}");
    }
}
