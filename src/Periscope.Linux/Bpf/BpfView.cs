using System.Buffers.Binary;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Linux.Network;
using Periscope.Linux.Objects;

namespace Periscope.Linux.Bpf;

/// <summary>Where a program was found attached (the second view, independent of the ID list).</summary>
public enum BpfAttachPoint
{
    /// <summary>A socket's sk_filter (SO_ATTACH_BPF, SO_ATTACH_FILTER): sockets from the processes' file tables and the kernel's tables.</summary>
    SocketFilter,
    /// <summary>A cgroup's effective program arrays (cgroup->bpf.effective[attach type]), cgroups walked from the default hierarchy's root.</summary>
    Cgroup,
    /// <summary>A network device's XDP programs (net_device.xdp_state[mode], and generic XDP's xdp_prog), in every network namespace.</summary>
    Xdp,
    /// <summary>A bpf_link in link_idr that holds the program.</summary>
    Link,
    /// <summary>A kprobe perf event (perf_event.prog, and its trace_event_call's prog_array), found through the tasks
    /// that own perf events (task_struct.perf_event_list).</summary>
    Kprobe,
    /// <summary>A kretprobe perf event (the kprobe PMU's retprobe bit set).</summary>
    Kretprobe,
    /// <summary>A tracepoint: a PERF_TYPE_TRACEPOINT event's program, or a tracepoint trace_event_call's prog_array
    /// (every registered event on ftrace_events).</summary>
    Tracepoint,
    /// <summary>A dynamic trace event that is not a tracepoint (a kprobe or uprobe event made through tracefs), by its
    /// trace_event_call's prog_array.</summary>
    TraceEvent,
    /// <summary>Any other perf event with a program (uprobe PMU, hardware or software events).</summary>
    PerfEvent,
    /// <summary>A bpf trampoline (fentry, fexit, fmod_ret, LSM, freplace): trampoline_table's progs_hlist.</summary>
    Trampoline,
    /// <summary>A network device's TC programs: tcx_ingress/tcx_egress (6.6+), cls_bpf filters on the ingress or clsact
    /// qdisc (before 6.6; types from the cls_bpf module's BTF).</summary>
    Tc,
}

public sealed record BpfAttachment(BpfAttachPoint Point, string Target);

/// <summary>Which views hold a program.</summary>
[Flags]
public enum BpfProgramViews : byte
{
    None = 0,
    /// <summary>prog_idr, the list BPF_PROG_GET_NEXT_ID (bpftool prog list) walks.</summary>
    IdList = 1,
    /// <summary>Some attach point (socket, cgroup, net device, perf event, trace event, trampoline, link) holds it.</summary>
    Attached = 2,
}

/// <summary>Helpers that make a program dangerous whatever it is attached to.</summary>
[Flags]
public enum BpfRiskyHelpers : byte
{
    None = 0,
    /// <summary>bpf_probe_write_user: writes any user process's memory.</summary>
    WritesUserMemory = 1,
    /// <summary>bpf_override_return: makes a kernel function return what the program says.</summary>
    OverridesReturn = 2,
}

public enum BpfProgramFinding
{
    None,
    /// <summary>Attached somewhere but missing from prog_idr: hidden from bpftool and every BPF_PROG_GET_NEXT_ID walk.</summary>
    AttachedButNotListed,
}

/// <param name="Tag">bpf_prog.tag as bpftool prints it (16 hex digits).</param>
/// <param name="Helpers">Kernel functions the program calls as helpers (kallsyms names), in first-call order.</param>
/// <param name="LoadTimeNs">bpf_prog_aux.load_time: nanoseconds since boot.</param>
public sealed record BpfProgram(ulong Address, uint Id, int Type, string TypeName, string Name, string Tag, int InstructionCount,
    ulong JitAddress, uint JitLength, ulong LoadTimeNs, IReadOnlyList<uint> MapIds, IReadOnlyList<string> Helpers, BpfRiskyHelpers Risky,
    BpfProgramViews Seen, IReadOnlyList<BpfAttachment> Attachments)
{
    public BpfProgramFinding Finding => Seen == BpfProgramViews.Attached ? BpfProgramFinding.AttachedButNotListed : BpfProgramFinding.None;
}

public sealed record BpfMap(ulong Address, uint Id, int Type, string TypeName, string Name, uint KeySize, uint ValueSize, uint MaxEntries);

public sealed record BpfLink(ulong Address, uint Id, int Type, string TypeName, uint ProgramId, ulong Program);

/// <summary>A program on a bpf trampoline: the hook kind as enum bpf_tramp_prog_type names it ("fentry", "fexit",
/// "modify_return", "freplace" for an extension program), the program, and whether prog_idr (bpftool's list) holds it.</summary>
public sealed record BpfTrampolineProgram(string Kind, BpfProgram Program, bool Listed);

/// <param name="Function">bpf_trampoline.func.addr: the traced function (its ftrace site is here, or 4 bytes on, past
/// an endbr64).</param>
/// <param name="Fops">The ftrace_ops the trampoline registered for a direct call (0 when it patches the function itself).</param>
/// <param name="Image">cur_image->image: where the traced function's patched call goes (0 when no image is built).</param>
/// <param name="ImageSize">cur_image->size (6.8+), else the page the kernel allocated for the image: the bytes that may
/// hold trampoline code (guest data: callers cap it before reading).</param>
/// <param name="ImageSymbolStart">cur_image->ksym.start: the image's own kallsyms entry, which the kernel names
/// "bpf_trampoline_KEY".</param>
public sealed record BpfTrampoline(ulong Address, ulong Function, string FunctionName, ulong Fops, ulong Image, ulong ImageSize, ulong ImageSymbolStart,
    string ImageSymbol, IReadOnlyList<BpfTrampolineProgram> Programs);

/// <param name="TableRead">False when the kernel has no trampoline_table (or BTF) to read: no image can be vouched for.</param>
public sealed record BpfTrampolineTable(IReadOnlyList<BpfTrampoline> Trampolines, bool TableRead, IReadOnlyList<string> Gaps);

/// <param name="ClassicSocketFilters">Sockets carrying a classic (cBPF, SO_ATTACH_FILTER) filter: converted programs that
/// no ID list holds, so they are counted here and not compared with prog_idr.</param>
public sealed record BpfReport(IReadOnlyList<BpfProgram> Programs, IReadOnlyList<BpfMap> Maps, IReadOnlyList<BpfLink> Links,
    IReadOnlyList<BpfAttachPoint> AttachPointsRead, IReadOnlyList<string> Unavailable, IReadOnlyList<string> Gaps,
    int ClassicSocketFilters = 0)
{
    public bool IsIncomplete => Gaps.Count > 0;
    public bool HasCriticalFinding => Programs.Any(p => p.Finding != BpfProgramFinding.None);
    public bool HasFinding => HasCriticalFinding || Programs.Any(p => p.Risky != BpfRiskyHelpers.None);
}

/// <summary>
/// Loaded eBPF programs, maps and links from the kernel's ID lists (prog_idr, map_idr, link_idr: what bpftool lists),
/// and independently the programs found where they are attached: sockets' filters, cgroups' effective arrays, network
/// devices' XDP slots and links. A program attached but missing from prog_idr is a critical finding. Each program's
/// translated instructions are scanned for helper calls: after verification a call's imm is the helper's address minus
/// __bpf_call_base, so the target is named through kallsyms, and the helpers that write user memory or override return
/// values are the functions the kernel's own enum bpf_func_id (BTF) names BPF_FUNC_probe_write_user and
/// BPF_FUNC_override_return (BPF_CALL_x defines each helper as bpf_NAME). Layouts come from BTF through the typed object
/// API; every walk is bounded by <see cref="Memory.IntrospectionLimits"/>.
/// </summary>
public sealed partial class BpfView(LinuxKernel kernel)
{
    /// <summary>BPF_JMP | BPF_CALL (include/uapi/linux/bpf_common.h, bpf.h): the call opcode; src_reg 0 is a helper call
    /// (1 a call into a bpf function, 2 a kfunc). ABI numbers of the instruction set, not in BTF.</summary>
    private const byte OpCall = 0x85;
    /// <summary>sizeof(struct bpf_insn): the instruction set's fixed 8-byte encoding.</summary>
    private const int InsnSize = 8;
    /// <summary>The enumerators of enum bpf_func_id whose helpers are flagged, and the flag each one raises.</summary>
    private static readonly (string Enumerator, BpfRiskyHelpers Flag)[] RiskyEnumerators =
    [
        ("BPF_FUNC_probe_write_user", BpfRiskyHelpers.WritesUserMemory),
        ("BPF_FUNC_override_return", BpfRiskyHelpers.OverridesReturn),
    ];

    private readonly List<string> _gaps = [];
    private readonly List<string> _unavailable = [];
    private readonly List<BpfAttachPoint> _pointsRead = [];
    private readonly Dictionary<ulong, List<BpfAttachment>> _attached = [];
    private int _classicSocketFilters;
    private readonly Dictionary<ulong, BpfRiskyHelpers> _riskyAddresses = [];
    private ulong _callBase;
    private BpfOffsets? _o;
    private XArrayReader? _xa;
    private string? _xaWhy;
    private BpfTypeNames _typeNames = new([], [], []);
    /// <summary>IDR index by object: the id each object was allocated (bpf_*_alloc_id).</summary>
    private readonly Dictionary<ulong, uint> _progIndex = [], _mapIndex = [];
    private readonly HashSet<string> _idrsFound = [];

    public BpfReport Read()
    {
        if (Prepare() is { } unavailable) return unavailable;
        PrepareHelpers();

        var listedProgs = ReadIdr("prog_idr", _progIndex);
        var listedMaps = ReadIdr("map_idr", _mapIndex);
        var listedLinks = ReadIdr("link_idr", null);

        var links = new List<BpfLink>();
        foreach (var (index, l) in listedLinks) if (DescribeLink(l, index) is { } link) links.Add(link);
        foreach (var link in links.Where(l => l.Program != 0))
            Attach(link.Program, BpfAttachPoint.Link, $"link {link.Id} ({link.TypeName})");
        if (_idrsFound.Contains("link_idr") && (listedLinks.Count == 0 || _o!.Link is not null)) _pointsRead.Add(BpfAttachPoint.Link);

        if (kernel.Btf is null) NotReadWithoutBtf();
        else
        {
            ReadSocketFilters();
            ReadCgroups();
            ReadXdp();
            ReadTraceEvents();
            ReadTrampolines();
            ReadTc();
        }

        var programs = new List<BpfProgram>();
        var listedSet = listedProgs.Select(p => p.Address).ToHashSet();
        foreach (ulong p in listedProgs.Select(p => p.Address).Concat(_attached.Keys.Where(a => !listedSet.Contains(a))))
        {
            var seen = (listedSet.Contains(p) ? BpfProgramViews.IdList : BpfProgramViews.None)
                       | (_attached.ContainsKey(p) ? BpfProgramViews.Attached : BpfProgramViews.None);
            if (DescribeProgram(p, seen) is { } prog) programs.Add(prog);
        }
        var maps = new List<BpfMap>();
        foreach (var (index, m) in listedMaps) if (DescribeMap(m, index) is { } map) maps.Add(map);
        return new(programs.OrderBy(p => p.Id).ToList(), maps.OrderBy(m => m.Id).ToList(), links.OrderBy(l => l.Id).ToList(),
            _pointsRead, _unavailable, _gaps.Distinct().ToList(), _classicSocketFilters);
    }

    /// <summary>Only the programs prog_idr lists, without their helpers or attach points (for measuring JIT code into a
    /// baseline: no socket, cgroup or device walks). Empty, with the reason in <paramref name="gaps"/>, when the layouts are unknown.</summary>
    public IReadOnlyList<BpfProgram> ListedPrograms(out IReadOnlyList<string> gaps)
    {
        gaps = _gaps;
        if (Prepare() is not null) return [];
        var result = new List<BpfProgram>();
        foreach (var (_, p) in ReadIdr("prog_idr", _progIndex))
            if (DescribeProgram(p, BpfProgramViews.IdList, scanHelpers: false) is { } prog) result.Add(prog);
        return result.OrderBy(p => p.Id).ToList();
    }

    /// <summary>The layouts and the xarray reader; null when ready, else the (empty) report saying why not.</summary>
    private BpfReport? Prepare()
    {
        var btf = kernel.Btf;
        if (btf is not null && (btf.FindStruct("bpf_prog") is null || btf.FindStruct("bpf_prog_aux") is null))
            return new([], [], [], [], ["bpf: BTF lacks struct bpf_prog (a kernel without CONFIG_BPF_SYSCALL)"], []);
        if (btf is null && !SyscallFunctions.Any(f => kernel.Symbols.TryGetAddress(f, out _)))
            return new([], [], [], [], [$"bpf: kallsyms has none of {string.Join(", ", SyscallFunctions)} (a kernel without CONFIG_BPF_SYSCALL)"], []);
        if (kernel.Offsets.Bpf is not { } o)
            // Not a kernel without BPF: nothing could be looked at, so the (empty) answer is incomplete, never "none".
            return new([], [], [], [], [], [btf is null
                ? $"bpf: the BPF IDRs were not found or their layout not inferred ({InferenceReason("idr", "idr_rt.xa_head")}; see `periscope info --offsets --no-btf`)"
                : "bpf: BTF lacks struct idr"]);
        _o = o;
        _xa = btf is null ? XArrayReader.FromAbi(kernel.Reader) : XArrayReader.Create(kernel.Reader, btf, out _xaWhy);
        if (_xa is null) return new([], [], [], [], [$"bpf: {_xaWhy}"], []);
        if (o.Prog is { AuxLoadTime: null }) _unavailable.Add("load times: bpf_prog_aux.load_time is not known (shown as 0)");
        _typeNames = btf is null ? new(BpfUapi.ProgramTypes, BpfUapi.MapTypes, BpfUapi.LinkTypes)
            : new(EnumNames(btf, "bpf_prog_type", "BPF_PROG_TYPE_"), EnumNames(btf, "bpf_map_type", "BPF_MAP_TYPE_"), EnumNames(btf, "bpf_link_type", "BPF_LINK_TYPE_"));
        return null;
    }

    /// <summary>Functions only a kernel with the bpf() syscall has (kallsyms lists functions on every kernel).</summary>
    private static readonly string[] SyscallFunctions = ["__sys_bpf", "bpf_prog_by_id"];

    private string InferenceReason(string structName, string member) =>
        kernel.Inference?.Find(structName, member) is { IsKnown: false } m ? $"{structName}.{member}: {m.Rule}" : $"{structName}.{member} unknown";

    /// <summary>An enum's enumerators by value, as bpftool prints them (prefix dropped, lower case); empty when BTF lacks it.</summary>
    private static IReadOnlyList<string> EnumNames(Btf.BtfTypes btf, string name, string prefix)
    {
        if (btf.FindTypeId(name, Btf.BtfKind.Enum) is not { } id) return [];
        var values = btf.GetEnumValues(id).Where(v => v.Value is >= 0 and < 1024).ToList();
        var names = new string[values.Count == 0 ? 0 : (int)values.Max(v => v.Value) + 1];
        // The first enumerator of a value names it (an alias added later, as BPF_MAP_TYPE_CGROUP_STORAGE, does not).
        foreach (var v in values) names[(int)v.Value] ??= Lower(v.Name, prefix);
        return names;
    }

    /// <summary>The attach points whose members only BTF gives: each is a gap, so that a program attached there and hidden
    /// from prog_idr is never taken for "nothing attached".</summary>
    private void NotReadWithoutBtf()
    {
        foreach (var (point, members) in new[]
        {
            ("socket filters", "sock.sk_filter, sk_filter.prog"), ("cgroup programs", "cgroup.bpf.effective, bpf_prog_array"),
            ("xdp", "net_device.xdp_state, xdp_prog"), ("tc", "net_device.tcx_ingress/miniq_ingress"),
            ("perf events and trace events", "perf_event.prog, trace_event_call.prog_array"), ("trampolines", "bpf_trampoline"),
        })
            _gaps.Add($"{point}: not read without BTF ({members} not inferred): a program attached there and missing from prog_idr would not be seen");
    }

    // ---------------------------------------------------------------- ID lists

    /// <summary>The IDR's entries (index, object), each index also kept in <paramref name="indices"/> by object.</summary>
    private List<(uint Index, ulong Address)> ReadIdr(string symbol, Dictionary<ulong, uint>? indices)
    {
        if (!kernel.DataAddresses.TryGetAddress(symbol, out ulong idr))
        {
            // Kallsyms with data symbols lists every IDR of a kernel with BPF; without them the code must give it.
            _gaps.Add($"{symbol}: not found (kallsyms lists no {symbol}, and no function using it yields it)");
            return [];
        }
        _idrsFound.Add(symbol);
        if (!kernel.Reader.TryPointer(idr + (ulong)_o!.IdrXaHead, out ulong head))
        {
            _gaps.Add($"{symbol}: its xa_head at 0x{idr + (ulong)_o.IdrXaHead:x} is unreadable");
            return [];
        }
        var entries = _xa!.Read(head, kernel.Limits.MaxXarrayEntries, symbol, _gaps);
        var result = new List<(uint, ulong)>();
        foreach (var e in entries)
        {
            if (e.Kind != XArrayEntryKind.Pointer || !kernel.Reader.IsKernelPointer(e.Entry) || e.Index > uint.MaxValue)
            {
                _gaps.Add($"{symbol}: entry {e.Index} (0x{e.Entry:x}) is not a kernel pointer");
                continue;
            }
            result.Add(((uint)e.Index, e.Entry));
            if (indices is not null) indices[e.Entry] = (uint)e.Index;
        }
        return result;
    }

    // ---------------------------------------------------------------- attach points

    private void Attach(ulong prog, BpfAttachPoint point, string target)
    {
        if (prog == 0) return;
        if (!kernel.Reader.IsKernelPointer(prog))
        {
            _gaps.Add($"{point}: {target} holds 0x{prog:x}, not a kernel pointer");
            return;
        }
        if (!_attached.TryGetValue(prog, out var list)) _attached[prog] = list = [];
        list.Add(new BpfAttachment(point, target));
    }

    /// <summary>A classic (cBPF) filter attached with SO_ATTACH_FILTER, as udev's netlink monitor, DHCP clients and libpcap
    /// attach them on every ordinary system: the kernel converts it into a bpf_prog that no ID list ever holds. What marks
    /// one is the kernel's own bpf_prog_was_classic() (type BPF_PROG_TYPE_UNSPEC, which no bpf() load can produce) and the
    /// classic program kept in orig_prog for SO_GET_FILTER, which only the SO_ATTACH_FILTER path stores. Both are guest
    /// data: a rootkit able to rewrite a hidden eBPF program's type and orig_prog could pass as one (README).</summary>
    private bool IsClassicSocketFilter(ulong prog)
    {
        if (prog == 0 || !kernel.Reader.IsKernelPointer(prog)) return false;
        var p = kernel.Object("bpf_prog", prog);
        return p["type"].ReadInt64() == 0 && p.Type.Layout?.HasMember("orig_prog") == true && p["orig_prog"].ReadPointer() != 0;
    }

    /// <summary>sock.sk_filter -> sk_filter.prog for every socket either socket view finds.</summary>
    private void ReadSocketFilters()
    {
        var sock = kernel.Btf!.FindStruct("sock");
        if (sock is null || !sock.HasMember("sk_filter") || kernel.Btf.FindStruct("sk_filter") is null)
        {
            _unavailable.Add("socket filters: BTF lacks sock.sk_filter");
            return;
        }
        var report = new Sockets(kernel).Read();
        foreach (var g in report.Gaps) _gaps.Add($"socket filters: {g}");
        _pointsRead.Add(BpfAttachPoint.SocketFilter);
        foreach (var s in report.Sockets)
        {
            try
            {
                var filter = kernel.Object("sock", s.Sock)["sk_filter"];
                if (filter.ReadPointer() == 0) continue;
                ulong prog = filter["prog"].ReadPointer();
                if (IsClassicSocketFilter(prog)) { _classicSocketFilters++; continue; }
                string owners = s.Owners.Count > 0 ? $" pid {string.Join(",", s.Owners)}" : "";
                Attach(prog, BpfAttachPoint.SocketFilter, $"{s.Kind.ToString().ToLowerInvariant()} socket inode {s.Inode}{owners}");
            }
            catch (ObjectFaultException e)
            {
                _gaps.Add($"socket filters: sock 0x{s.Sock:x}: {e.Message}");
            }
        }
    }

    /// <summary>Every cgroup of the default (v2) hierarchy, from cgrp_dfl_root.cgrp down the css children lists: its
    /// bpf.effective[type] arrays of programs (what runs for that cgroup, inherited ones included).</summary>
    private void ReadCgroups()
    {
        var cgroup = kernel.Btf!.FindStruct("cgroup");
        if (cgroup is null || !cgroup.HasMember("bpf.effective") || !kernel.Symbols.TryGetAddress("cgrp_dfl_root", out ulong root))
        {
            _unavailable.Add("cgroup programs: needs cgrp_dfl_root and cgroup.bpf.effective (CONFIG_CGROUP_BPF)");
            return;
        }
        _pointsRead.Add(BpfAttachPoint.Cgroup);
        kernel.Symbols.TryGetAddress("dummy_bpf_prog", out ulong dummy);
        var attachTypes = kernel.Btf.FindTypeId("cgroup_bpf_attach_type", Btf.BtfKind.Enum) is { } enumId
            ? kernel.Btf.GetEnumValues(enumId).ToDictionary(v => v.Value, v => v.Name) : [];
        int visited = 0;
        var pending = new Stack<(KernelObject Cgroup, string Path, int Depth)>();
        try { pending.Push((kernel.Object("cgroup_root", root)["cgrp"], "/", 0)); }
        catch (ObjectFaultException e) { _gaps.Add($"cgroup programs: {e.Message}"); return; }
        var seen = new HashSet<ulong>();
        while (pending.Count > 0)
        {
            var (cg, path, depth) = pending.Pop();
            if (!seen.Add(cg.Address)) { _gaps.Add($"cgroup programs: cgroup 0x{cg.Address:x} reached twice (a cycle)"); continue; }
            if (++visited > kernel.Limits.MaxBpfCgroups)
            {
                _gaps.Add($"cgroup programs: stopped at MaxBpfCgroups = {kernel.Limits.MaxBpfCgroups} cgroups");
                return;
            }
            try
            {
                var effective = cg["bpf.effective"];
                for (long i = 0; i < effective.Type.Length; i++)
                {
                    ulong array = effective[i].ReadPointer();
                    if (array == 0) continue;
                    string type = attachTypes.TryGetValue(i, out var n) ? Lower(n, "CGROUP_") : i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    var items = kernel.Object("bpf_prog_array", array)["items"];
                    var itemType = kernel.Objects.Type("bpf_prog_array_item");
                    for (int k = 0; ; k++)
                    {
                        if (k >= kernel.Limits.MaxBpfProgArrayItems)
                        {
                            _gaps.Add($"cgroup programs: {path} {type}: more than MaxBpfProgArrayItems = {kernel.Limits.MaxBpfProgArrayItems} programs");
                            break;
                        }
                        var item = kernel.Objects.Object(itemType.Id, items.Address + (ulong)(k * itemType.Size));
                        ulong prog = item["prog"].ReadPointer();
                        if (prog == 0) break;
                        if (prog == dummy) continue; // a detached program's placeholder
                        Attach(prog, BpfAttachPoint.Cgroup, $"cgroup {path} {type}");
                    }
                }
                if (depth >= 64) { _gaps.Add($"cgroup programs: {path} is nested deeper than 64"); continue; }
                foreach (var child in cg["self.children"].ListEntries("cgroup", "self.sibling"))
                {
                    string name = child["kn"].TryDeref(out var kn) ? kn["name"].ReadString(256) : "?";
                    pending.Push((child, path == "/" ? "/" + name : path + "/" + name, depth + 1));
                }
            }
            catch (ObjectFaultException e)
            {
                _gaps.Add($"cgroup programs: {path}: {e.Message}");
            }
        }
    }

    /// <summary>Every network device of every network namespace (net_namespace_list, dev_base_head): xdp_state[mode].prog
    /// (generic, driver and offloaded XDP, since 5.9) and generic XDP's xdp_prog.</summary>
    private void ReadXdp()
    {
        var dev = kernel.Btf!.FindStruct("net_device");
        if (dev is null || !kernel.Symbols.TryGetAddress("net_namespace_list", out ulong nsList) || !dev.HasMember("dev_list"))
        {
            _unavailable.Add("xdp: needs net_namespace_list and struct net_device");
            return;
        }
        bool state = dev.HasMember("xdp_state"), generic = dev.HasMember("xdp_prog");
        if (!state && !generic) { _unavailable.Add("xdp: BTF lacks net_device.xdp_state and xdp_prog"); return; }
        _pointsRead.Add(BpfAttachPoint.Xdp);
        ForEachNetDevice("xdp", nsList, (d, name, inum) =>
        {
            var found = new HashSet<ulong>();
            if (state)
            {
                var slots = d["xdp_state"];
                for (long m = 0; m < slots.Type.Length; m++)
                {
                    ulong prog = slots[m]["prog"].ReadPointer();
                    if (prog != 0 && found.Add(prog)) Attach(prog, BpfAttachPoint.Xdp, $"netdev {name} (net ns {inum}) mode {m}");
                }
            }
            if (generic && d["xdp_prog"].ReadPointer() is var g and not 0 && found.Add(g))
                Attach(g, BpfAttachPoint.Xdp, $"netdev {name} (net ns {inum}) generic");
        });
    }

    /// <summary>Every network device of every network namespace (net_namespace_list, then each net's dev_base_head),
    /// with its name and namespace inode, at most MaxBpfNetDevices in all; the bound or a fault ends the walk with a gap
    /// named after <paramref name="view"/>.</summary>
    private void ForEachNetDevice(string view, ulong nsList, Action<KernelObject, string, uint> visit)
    {
        int devices = 0;
        try
        {
            foreach (var net in kernel.Object("list_head", nsList).ListEntries("net", "list"))
            {
                uint inum = net.TryMember("ns.inum", out var ino) ? (uint)ino.ReadUInt64() : 0;
                foreach (var d in net["dev_base_head"].ListEntries("net_device", "dev_list"))
                {
                    if (++devices > kernel.Limits.MaxBpfNetDevices)
                    {
                        _gaps.Add($"{view}: stopped at MaxBpfNetDevices = {kernel.Limits.MaxBpfNetDevices} devices");
                        return;
                    }
                    visit(d, d["name"].ReadString(), inum);
                }
            }
        }
        catch (ObjectFaultException e)
        {
            _gaps.Add($"{view}: {e.Message}");
        }
    }

    // ---------------------------------------------------------------- objects

    private void PrepareHelpers()
    {
        if (!kernel.Symbols.TryGetAddress("__bpf_call_base", out _callBase))
            _unavailable.Add("helper calls: kallsyms lists no __bpf_call_base (helper targets cannot be named)");
        foreach (var (enumerator, flag) in RiskyEnumerators)
        {
            // With BTF the kernel's enum bpf_func_id says whether the helper exists; without it the function's name does.
            if (kernel.Btf is { } btf && !btf.TryFindEnumerator(enumerator, out _))
            {
                _unavailable.Add($"helper calls: enum bpf_func_id has no {enumerator}");
                continue;
            }
            string function = "bpf_" + enumerator["BPF_FUNC_".Length..];
            // A kernel built without the helper (bpf_override_return needs CONFIG_BPF_KPROBE_OVERRIDE) has no such
            // function, and no program can call it: nothing to look for.
            if (kernel.Symbols.TryGetAddress(function, out ulong at)) _riskyAddresses[at] = flag;
        }
    }

    /// <summary>A field of a guest object that could not be read: the object is then a gap.</summary>
    private sealed class BpfFieldFault(string message) : Exception(message);

    private uint U32(ulong at, string what) => kernel.Reader.TryU32(at, out uint v) ? v : throw new BpfFieldFault($"{what} at 0x{at:x} is unreadable");
    private ulong Pointer(ulong at, string what) => kernel.Reader.TryPointer(at, out ulong v) ? v : throw new BpfFieldFault($"{what} at 0x{at:x} is unreadable");
    private byte[] Bytes(ulong at, int count, string what)
    {
        var b = new byte[count];
        return kernel.Reader.Read(at, b) == count ? b : throw new BpfFieldFault($"{what} at 0x{at:x} is unreadable");
    }

    /// <summary>A 16-byte object name (up to its NUL), as the guest wrote it (printing escapes it).</summary>
    private string Name(ulong at, string what)
    {
        var b = Bytes(at, BpfRule.ObjectNameLength, what);
        int n = Array.IndexOf(b, (byte)0);
        return System.Text.Encoding.Latin1.GetString(b, 0, n < 0 ? b.Length : n);
    }

    /// <summary>The object's id: the member when known (checked against the IDR index: bpf_*_alloc_id stores the index it
    /// got, so a difference is a rewritten object), else the IDR index; 0 with a gap when neither is known.</summary>
    private uint Id(string what, ulong address, ulong? idAt, uint? index)
    {
        if (idAt is { } at)
        {
            uint id = U32(at, $"{what} id");
            if (index is { } i && i != id) _gaps.Add($"{what} 0x{address:x}: id {id}, but the IDR holds it at index {i}");
            return id;
        }
        if (index is { } idx) return idx;
        _gaps.Add($"{what} 0x{address:x}: not in its IDR and its id member is not known: shown as id 0");
        return 0;
    }

    private BpfProgram? DescribeProgram(ulong address, BpfProgramViews seen, bool scanHelpers = true)
    {
        if (_o!.Prog is not { } o)
        {
            _gaps.Add($"bpf prog 0x{address:x}: struct bpf_prog's members are not known ({InferenceReason("bpf_prog", "aux")})");
            return null;
        }
        try
        {
            ulong aux = Pointer(address + (ulong)o.Aux, "aux");
            if (!kernel.Reader.IsKernelPointer(aux)) throw new BpfFieldFault($"aux 0x{aux:x} is not a kernel pointer");
            int type = (int)U32(address + (ulong)o.Type, "type");
            var tag = Bytes(address + (ulong)o.Tag, BpfRule.TagSize, "tag");
            uint len = U32(address + (ulong)o.Len, "len");
            var mapIds = new List<uint>();
            if (o.AuxUsedMapCount is { } countAt && o.AuxUsedMaps is { } mapsAt)
            {
                uint mapCount = U32(aux + (ulong)countAt, "used_map_cnt");
                ulong used = mapCount > 0 ? Pointer(aux + (ulong)mapsAt, "used_maps") : 0;
                for (uint i = 0; i < Math.Min(mapCount, 64u) && used != 0; i++)
                {
                    ulong map = Pointer(used + i * (ulong)kernel.Reader.PointerSize, "used_maps[]");
                    if (map != 0) mapIds.Add(Id("bpf map", map, _o.Map?.Id is { } mid ? map + (ulong)mid : null, _mapIndex.TryGetValue(map, out uint mi) ? mi : null));
                }
                if (mapCount > 64) _gaps.Add($"bpf prog 0x{address:x}: {mapCount} maps, only 64 read");
            }
            else _gaps.Add($"bpf prog 0x{address:x}: its map ids are not read (bpf_prog_aux.used_maps not known)");
            var (helpers, risky) = scanHelpers ? ScanHelpers(address, o.Insnsi, len) : ([], BpfRiskyHelpers.None);
            uint id = Id("bpf prog", address, o.AuxId is { } idAt ? aux + (ulong)idAt : null, _progIndex.TryGetValue(address, out uint pi) ? pi : null);
            return new BpfProgram(address, id, type, TypeName(_typeNames.Programs, type), Name(aux + (ulong)o.AuxName, "name"), Convert.ToHexStringLower(tag), (int)len,
                Pointer(address + (ulong)o.BpfFunc, "bpf_func"), U32(address + (ulong)o.JitedLen, "jited_len"),
                o.AuxLoadTime is { } lt ? ReadU64(aux + (ulong)lt) : 0,
                mapIds, helpers, risky, seen, _attached.GetValueOrDefault(address) ?? []);
        }
        catch (BpfFieldFault e)
        {
            _gaps.Add($"bpf prog 0x{address:x}: {e.Message}");
            return null;
        }
    }

    private ulong ReadU64(ulong at) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(at, 8, "load_time"));

    /// <summary>The helper calls of the translated program (insnsi[0..len]).</summary>
    private (List<string> Helpers, BpfRiskyHelpers Risky) ScanHelpers(ulong address, int? insnsi, uint count)
    {
        var helpers = new List<string>();
        var risky = BpfRiskyHelpers.None;
        if (_callBase == 0) return (helpers, risky);
        if (insnsi is not { } insnsAt)
        {
            _gaps.Add($"bpf prog 0x{address:x}: its instructions are not scanned for helper calls (bpf_prog.insnsi not known)");
            return (helpers, risky);
        }
        if (count > (uint)kernel.Limits.MaxBpfInstructions)
        {
            _gaps.Add($"bpf prog 0x{address:x}: {count} instructions, more than MaxBpfInstructions = {kernel.Limits.MaxBpfInstructions}; only those scanned");
            count = (uint)kernel.Limits.MaxBpfInstructions;
        }
        var bytes = new byte[count * InsnSize];
        ulong insns = address + (ulong)insnsAt;
        if (kernel.Reader.Read(insns, bytes) != bytes.Length)
        {
            _gaps.Add($"bpf prog 0x{address:x}: instructions at 0x{insns:x} are unreadable");
            return (helpers, risky);
        }
        var seenTargets = new HashSet<ulong>();
        for (int i = 0; i < bytes.Length; i += InsnSize)
        {
            if (bytes[i] != OpCall || (bytes[i + 1] >> 4) != 0) continue;
            int imm = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i + 4));
            ulong target = unchecked(_callBase + (ulong)(long)imm);
            if (kernel.Reader.PointerSize == 4) target &= 0xffff_ffff;
            if (!seenTargets.Add(target)) continue;
            if (_riskyAddresses.TryGetValue(target, out var flag)) risky |= flag;
            helpers.Add(kernel.Symbols.TryFindContaining(target, out var sym, out ulong off) && off == 0 ? sym.Name : $"0x{target:x}");
        }
        return (helpers, risky);
    }

    private BpfMap? DescribeMap(ulong address, uint index)
    {
        if (_o!.Map is not { } o)
        {
            _gaps.Add($"bpf map 0x{address:x}: struct bpf_map's members are not known ({InferenceReason("bpf_map", "map_type")})");
            return null;
        }
        try
        {
            int type = (int)U32(address + (ulong)o.MapType, "map_type");
            return new BpfMap(address, Id("bpf map", address, o.Id is { } idAt ? address + (ulong)idAt : null, index), type, TypeName(_typeNames.Maps, type),
                Name(address + (ulong)o.Name, "name"), U32(address + (ulong)o.KeySize, "key_size"), U32(address + (ulong)o.ValueSize, "value_size"),
                U32(address + (ulong)o.MaxEntries, "max_entries"));
        }
        catch (BpfFieldFault e)
        {
            _gaps.Add($"bpf map 0x{address:x}: {e.Message}");
            return null;
        }
    }

    private BpfLink? DescribeLink(ulong address, uint index)
    {
        if (_o!.Link is not { } o)
        {
            _gaps.Add($"bpf link 0x{address:x}: struct bpf_link's members are not known ({InferenceReason("bpf_link", "prog")})");
            return null;
        }
        try
        {
            int type = (int)U32(address + (ulong)o.Type, "type");
            ulong prog = Pointer(address + (ulong)o.Prog, "prog");
            uint progId = 0;
            if (prog != 0 && kernel.Reader.IsKernelPointer(prog))
            {
                ulong? progIdAt = _o.Prog is { AuxId: { } idAt } po && kernel.Reader.TryPointer(prog + (ulong)po.Aux, out ulong aux) ? aux + (ulong)idAt : null;
                progId = Id("bpf prog", prog, progIdAt, _progIndex.TryGetValue(prog, out uint pi) ? pi : null);
            }
            return new BpfLink(address, Id("bpf link", address, o.Id is { } id ? address + (ulong)id : null, index), type, TypeName(_typeNames.Links, type), progId, prog);
        }
        catch (BpfFieldFault e)
        {
            _gaps.Add($"bpf link 0x{address:x}: {e.Message}");
            return null;
        }
    }

    private static string TypeName(IReadOnlyList<string> names, int value) =>
        value >= 0 && value < names.Count && names[value] is { } n ? n : value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private sealed record BpfTypeNames(IReadOnlyList<string> Programs, IReadOnlyList<string> Maps, IReadOnlyList<string> Links);

    /// <summary>An enumerator as bpftool prints it: prefix dropped, lower case ("BPF_PROG_TYPE_SOCKET_FILTER" → "socket_filter").</summary>
    private static string Lower(string? enumerator, string prefix) =>
        enumerator is null ? "?" : (enumerator.StartsWith(prefix, StringComparison.Ordinal) ? enumerator[prefix.Length..] : enumerator).ToLowerInvariant();
}
