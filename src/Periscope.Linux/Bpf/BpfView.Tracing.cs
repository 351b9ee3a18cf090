using Periscope.Linux.Model;
using Periscope.Linux.Objects;

namespace Periscope.Linux.Bpf;

/// <summary>
/// The tracing and TC attach points of <see cref="BpfView"/>: programs on kprobe, kretprobe, tracepoint and other perf
/// events (found through the tasks that own the events, and through every registered trace event's prog_array), on bpf
/// trampolines (fentry, fexit, fmod_ret, LSM, freplace: trampoline_table), and on network devices' tcx entries. None
/// of these walks goes through prog_idr, so a program unlinked from the ID list is still found where it runs.
/// </summary>
public sealed partial class BpfView
{
    /// <summary>The kprobe PMU's retprobe bit (kernel/trace/trace_event_perf.c, PERF_PROBE_CONFIG_IS_RETPROBE; sysfs
    /// publishes it as format/retprobe = "config:0"). A #define, not in BTF.</summary>
    private const ulong PerfProbeConfigIsRetprobe = 1;
    /// <summary>TRAMPOLINE_TABLE_SIZE (kernel/bpf/trampoline.c: 1 &lt;&lt; TRAMPOLINE_HASH_BITS, 10 since 5.5): buckets of
    /// the static trampoline_table, a #define BTF cannot give. Checked against kallsyms: no other symbol may start
    /// inside the table.</summary>
    public const int TrampolineTableSize = 1 << 10;
    /// <summary>PAGE_SIZE on x86-64: before 6.8 (no bpf_tramp_image.size) the kernel builds each trampoline image in a page
    /// of its own (bpf_jit_alloc_exec_page) and registers the whole page as the image's kallsyms entry.</summary>
    private const ulong BpfTrampolineImagePage = 4096;

    private readonly record struct TraceCall(BpfAttachPoint Point, string Label);

    /// <summary>trace_event_calls whose prog_array is read (from perf events and ftrace_events); and which (program,
    /// call) pairs a perf event already reported.</summary>
    private readonly HashSet<ulong> _traceCalls = [];
    private readonly HashSet<(ulong Prog, ulong Call)> _perfReported = [];

    // ---------------------------------------------------------------- perf events and trace events

    /// <summary>Every task's perf_event_list (perf_event_open puts each event on its opener's list), each event's prog and
    /// its trace_event_call's prog_array; then every registered trace_event_call on ftrace_events with a prog_array.</summary>
    private void ReadTraceEvents()
    {
        var btf = kernel.Btf!;
        var perfEvent = btf.FindStruct("perf_event");
        var task = btf.FindStruct("task_struct");
        if (perfEvent is null || task is null || !task.HasMember("perf_event_list") || !perfEvent.HasMember("owner_entry") || !perfEvent.HasMember("prog"))
            _unavailable.Add("perf events: BTF lacks task_struct.perf_event_list or perf_event.prog (CONFIG_PERF_EVENTS, CONFIG_BPF_EVENTS)");
        else
            ReadPerfEvents(perfEvent.HasMember("tp_event"));

        var call = btf.FindStruct("trace_event_call");
        if (call is null || !call.HasMember("prog_array") || !kernel.Symbols.TryGetAddress("ftrace_events", out ulong events))
            _unavailable.Add("trace events: needs ftrace_events and trace_event_call.prog_array (CONFIG_EVENT_TRACING, CONFIG_PERF_EVENTS)");
        else
        {
            _pointsRead.Add(BpfAttachPoint.TraceEvent);
            int count = 0;
            try
            {
                foreach (var c in kernel.Object("list_head", events).ListEntries("trace_event_call", "list"))
                {
                    if (++count > kernel.Limits.MaxBpfTraceEvents)
                    {
                        _gaps.Add($"trace events: stopped at MaxBpfTraceEvents = {kernel.Limits.MaxBpfTraceEvents} events");
                        break;
                    }
                    if (c["prog_array"].ReadPointer() != 0) _traceCalls.Add(c.Address);
                }
            }
            catch (ObjectFaultException e)
            {
                _gaps.Add($"trace events: {e.Message}");
            }
        }
        // A call's prog_array also holds programs no perf event walked here points at (an event whose owner exited,
        // or one unlinked from its owner's list): those are reported by the call itself.
        foreach (ulong address in _traceCalls)
        {
            try
            {
                var c = kernel.Object("trace_event_call", address);
                var how = DescribeCall(c);
                foreach (ulong prog in ReadProgArray(c["prog_array"].ReadPointer(), how.Label))
                    if (!_perfReported.Contains((prog, address))) Attach(prog, how.Point, how.Label);
            }
            catch (ObjectFaultException e)
            {
                _gaps.Add($"trace events: trace_event_call 0x{address:x}: {e.Message}");
            }
        }
    }

    private void ReadPerfEvents(bool hasTraceEvent)
    {
        _pointsRead.AddRange([BpfAttachPoint.Kprobe, BpfAttachPoint.Kretprobe, BpfAttachPoint.Tracepoint, BpfAttachPoint.PerfEvent]);
        int count = 0;
        foreach (var process in kernel.Tasks)
        {
            foreach (var thread in process.Threads)
            {
                try
                {
                    foreach (var ev in kernel.Object("task_struct", thread.Address)["perf_event_list"].ListEntries("perf_event", "owner_entry"))
                    {
                        if (++count > kernel.Limits.MaxBpfPerfEvents)
                        {
                            _gaps.Add($"perf events: stopped at MaxBpfPerfEvents = {kernel.Limits.MaxBpfPerfEvents} events");
                            return;
                        }
                        ulong prog = ev["prog"].ReadPointer();
                        ulong call = hasTraceEvent ? ev["tp_event"].ReadPointer() : 0;
                        if (prog == 0 && call == 0) continue;
                        var how = DescribePerfEvent(ev, call, process.Tgid);
                        if (call != 0) _traceCalls.Add(call);
                        if (prog == 0) continue;
                        Attach(prog, how.Point, how.Label);
                        _perfReported.Add((prog, call));
                    }
                }
                catch (ObjectFaultException e)
                {
                    _gaps.Add($"perf events: task {thread.Tid}: {e.Message}");
                }
            }
        }
    }

    /// <summary>What a perf event is attached to, by its PMU: "kprobe do_sys_openat2", "tracepoint sched:sched_process_exec".</summary>
    private TraceCall DescribePerfEvent(KernelObject ev, ulong call, int pid)
    {
        string pmu = ev["pmu"].TryDeref(out var p) && p["name"].TryDeref(out _) ? p["name"].ReadString(64) : "?";
        ulong config = ev["attr.config"].ReadUInt64();
        var point = pmu switch
        {
            "kprobe" => (config & PerfProbeConfigIsRetprobe) != 0 ? BpfAttachPoint.Kretprobe : BpfAttachPoint.Kprobe,
            "tracepoint" => BpfAttachPoint.Tracepoint,
            _ => BpfAttachPoint.PerfEvent,
        };
        string where = call != 0
            ? CallName(kernel.Object("trace_event_call", call), nameOnly: point is BpfAttachPoint.Kprobe or BpfAttachPoint.Kretprobe)
            : $"config 0x{config:x}";
        string kind = point == BpfAttachPoint.PerfEvent ? $"perf event ({pmu})" : point.ToString().ToLowerInvariant();
        return new TraceCall(point, $"{kind} {where} (perf event of pid {pid})");
    }

    /// <summary>A registered trace event: a tracepoint ("tracepoint sched:sched_process_exec") or another event
    /// ("trace event kprobes:p_do_sys_openat2_0").</summary>
    private TraceCall DescribeCall(KernelObject call)
    {
        bool tracepoint = IsTracepointCall(call);
        return new TraceCall(tracepoint ? BpfAttachPoint.Tracepoint : BpfAttachPoint.TraceEvent,
            $"{(tracepoint ? "tracepoint" : "trace event")} {CallName(call)}");
    }

    /// <summary>TRACE_EVENT_FL_TRACEPOINT in trace_event_call.flags: the name union holds a struct tracepoint *.</summary>
    private bool IsTracepointCall(KernelObject call) =>
        kernel.Btf!.TryFindEnumerator("TRACE_EVENT_FL_TRACEPOINT", out long flag) && (call["flags"].ReadUInt64() & (ulong)flag) != 0;

    /// <summary>"system:name" ("sched:sched_process_exec"); with <paramref name="nameOnly"/>, the name alone (a local
    /// kprobe, made by perf_event_open on the kprobe PMU, is named after its function).</summary>
    private string CallName(KernelObject call, bool nameOnly = false)
    {
        string name = IsTracepointCall(call)
            ? (call["tp"].TryDeref(out var tp) && tp["name"].TryDeref(out _) ? tp["name"].ReadString(256) : "?")
            : (call["name"].TryDeref(out _) ? call["name"].ReadString(256) : "?");
        if (nameOnly) return name;
        string system = call["class"].TryDeref(out var cls) && cls["system"].TryDeref(out _) ? cls["system"].ReadString(64) : "";
        return system.Length == 0 ? name : $"{system}:{name}";
    }

    /// <summary>The programs of a bpf_prog_array (NULL-terminated items; dummy_bpf_prog marks a detached slot).</summary>
    private List<ulong> ReadProgArray(ulong array, string where)
    {
        var result = new List<ulong>();
        if (array == 0) return result;
        kernel.Symbols.TryGetAddress("dummy_bpf_prog", out ulong dummy);
        var items = kernel.Object("bpf_prog_array", array)["items"];
        var itemType = kernel.Objects.Type("bpf_prog_array_item");
        for (int k = 0; ; k++)
        {
            if (k >= kernel.Limits.MaxBpfProgArrayItems)
            {
                _gaps.Add($"{where}: more than MaxBpfProgArrayItems = {kernel.Limits.MaxBpfProgArrayItems} programs");
                break;
            }
            ulong prog = kernel.Objects.Object(itemType.Id, items.Address + (ulong)(k * itemType.Size))["prog"].ReadPointer();
            if (prog == 0) break;
            if (prog != dummy) result.Add(prog);
        }
        return result;
    }

    // ---------------------------------------------------------------- trampolines

    /// <summary>trampoline_table's programs as attach points of the cross-view.</summary>
    private void ReadTrampolines()
    {
        foreach (var t in WalkTrampolines())
            foreach (var (kind, prog) in t.Programs)
                Attach(prog, BpfAttachPoint.Trampoline, $"{kind} {t.FunctionName}");
    }

    /// <summary>
    /// Every bpf_trampoline of the kernel's trampoline_table, with the programs on it and the image the traced function
    /// now calls, for the integrity judge: a call at a function's ftrace site into one of these images is what the
    /// kernel writes for fentry/fexit/fmod_ret/LSM programs. <see cref="BpfTrampolineTable.TableRead"/> is false when the
    /// kernel has no table to read (no CONFIG_BPF_JIT, no BTF); prog_idr is read too, to say which programs bpftool lists.
    /// </summary>
    public BpfTrampolineTable ReadTrampolineTable()
    {
        if (kernel.Btf is null) return new([], false, []);
        // A kernel without bpf_prog has no trampolines to vouch for; any other reason not to read is a gap.
        if (Prepare() is { } unavailable)
            return new([], false, [.. unavailable.Gaps, .. unavailable.Unavailable.Where(u => !u.Contains("CONFIG_BPF_SYSCALL", StringComparison.Ordinal))]);
        var walked = WalkTrampolines();
        if (!_pointsRead.Contains(BpfAttachPoint.Trampoline)) return new([], false, _gaps);
        var listed = walked.Count == 0 ? [] : ReadIdr("prog_idr", _progIndex).Select(e => e.Address).ToHashSet();
        var result = new List<BpfTrampoline>();
        foreach (var t in walked)
        {
            var programs = new List<BpfTrampolineProgram>();
            foreach (var (kind, prog) in t.Programs)
                if (DescribeProgram(prog, listed.Contains(prog) ? BpfProgramViews.IdList | BpfProgramViews.Attached : BpfProgramViews.Attached, scanHelpers: false) is { } p)
                    programs.Add(new BpfTrampolineProgram(kind, p, listed.Contains(prog)));
            result.Add(new BpfTrampoline(t.Address, t.Function, t.FunctionName, t.Fops, t.Image, t.ImageSize, t.ImageSymbolStart, t.ImageSymbol, programs));
        }
        return new(result, true, _gaps);
    }

    private sealed record WalkedTrampoline(ulong Address, ulong Function, string FunctionName, ulong Fops, ulong Image, ulong ImageSize, ulong ImageSymbolStart,
        string ImageSymbol, List<(string Kind, ulong Prog)> Programs);

    /// <summary>trampoline_table: every bpf_trampoline (one per attached-to function), its progs_hlist[kind] of
    /// bpf_tramp_link (6.0+; bpf_prog_aux.tramp_hlist before; bpf_tramp_node in 7.x), its extension_prog (freplace), and
    /// its current image (cur_image: bpf_tramp_image.image and the image's kallsyms entry, ksym). Which table and which
    /// entry type a kernel has is read from BTF, see <see cref="TrampolineLayout"/>.</summary>
    private List<WalkedTrampoline> WalkTrampolines()
    {
        var result = new List<WalkedTrampoline>();
        var btf = kernel.Btf!;
        var layout = TrampolineLayout.From(btf, kernel.Symbols);
        if (layout is null)
        {
            _unavailable.Add("trampolines: needs trampoline_table (trampoline_key_table in 7.x) and struct bpf_trampoline (CONFIG_BPF_JIT)");
            return result;
        }
        ulong table = layout.Table;
        ulong tableEnd = table + TrampolineTableSize * 8UL;
        if (kernel.Symbols.TryGetNextAddress(table, out ulong next) && next < tableEnd)
        {
            _gaps.Add($"trampolines: a symbol starts at 0x{next:x}, inside {layout.TableName} (0x{table:x} + {TrampolineTableSize} buckets): TRAMPOLINE_TABLE_SIZE changed");
            return result;
        }
        var kinds = btf.FindTypeId("bpf_tramp_prog_type", Btf.BtfKind.Enum) is { } kindEnum
            ? btf.GetEnumValues(kindEnum).ToDictionary(v => v.Value, v => v.Name) : [];
        _pointsRead.Add(BpfAttachPoint.Trampoline);
        var budget = new HlistBudget(kernel.Limits.MaxBpfTrampolineEntries);
        for (int bucket = 0; bucket < TrampolineTableSize; bucket++)
        {
            try
            {
                foreach (ulong node in Hlist(table + (ulong)bucket * 8, "trampolines", budget))
                {
                    var t = kernel.Object("bpf_trampoline", node).ContainerOf("bpf_trampoline", layout.TableNode);
                    ulong func = t.TryMember("func.addr", out var fa) ? fa.ReadPointer() : 0;
                    string function = func != 0 && kernel.Symbols.TryFindContaining(func, out var sym, out ulong off)
                        ? (off == 0 ? sym.Name : $"{sym.Name}+0x{off:x}") : $"key 0x{t["key"].ReadUInt64():x}";
                    var programs = new List<(string, ulong)>();
                    var hlists = t["progs_hlist"];
                    for (long kind = 0; kind < hlists.Type.Length; kind++)
                    {
                        string kindName = kinds.TryGetValue(kind, out var n) ? Lower(n, "BPF_TRAMP_") : kind.ToString(System.Globalization.CultureInfo.InvariantCulture);
                        foreach (ulong entry in Hlist(hlists[kind].Address, $"trampoline {function}", budget))
                            programs.Add((kindName, layout.ProgramOf(kernel, entry)));
                    }
                    if (t.TryMember("extension_prog", out var ext) && ext.ReadPointer() is var e and not 0)
                        programs.Add(("freplace", e));
                    ulong fops = t.TryMember("fops", out var fo) ? fo.ReadPointer() : 0;
                    ulong image = 0, symStart = 0, imageSize = 0;
                    string symName = "";
                    if (t.TryMember("cur_image", out var ci) && ci.TryDeref(out var im))
                    {
                        image = im["image"].ReadPointer();
                        // bpf_tramp_image.size (6.8+: arch_bpf_trampoline_size()); before it, the image is one page.
                        imageSize = im.TryMember("size", out var sz) ? sz.ReadUInt64() : BpfTrampolineImagePage;
                        if (im.TryMember("ksym", out var ks))
                            (symStart, symName) = (ks["start"].ReadUInt64(), ks["name"].ReadString(256));
                    }
                    result.Add(new WalkedTrampoline(t.Address, func, function, fops, image, imageSize, symStart, symName, programs));
                }
            }
            catch (ObjectFaultException e)
            {
                _gaps.Add($"trampolines: bucket {bucket}: {e.Message}");
            }
            if (budget.Exhausted)
            {
                _gaps.Add($"trampolines: stopped at MaxBpfTrampolineEntries = {kernel.Limits.MaxBpfTrampolineEntries} entries");
                break;
            }
        }
        return result;
    }

    private sealed class HlistBudget(int max)
    {
        public int Left { get; set; } = max;
        public bool Exhausted => Left <= 0;
    }

    /// <summary>The nodes of the hlist whose hlist_head is at <paramref name="head"/> (first, then each next), bounded by
    /// the shared budget; a cycle or an unreadable node ends the walk with <see cref="ObjectFaultException"/>.</summary>
    private IEnumerable<ulong> Hlist(ulong head, string where, HlistBudget budget)
    {
        if (!kernel.Reader.TryPointer(head, out ulong node))
            throw new ObjectFaultException($"{where}: hlist head 0x{head:x} cannot be read", head);
        var seen = new HashSet<ulong>();
        while (node != 0)
        {
            if (budget.Left-- <= 0) yield break;
            if (!seen.Add(node)) throw new ObjectFaultException($"{where}: hlist node 0x{node:x} comes round again (a cycle)", node);
            yield return node;
            if (!kernel.Reader.TryPointer(node, out node))
                throw new ObjectFaultException($"{where}: hlist node cannot be read", node);
        }
    }

    // ---------------------------------------------------------------- TC

    /// <summary>Every network device's tcx_ingress/tcx_egress (6.6+: a bpf_mprog_entry whose fp_items hold the programs
    /// in run order, NULL-terminated). Before 6.6, TC programs are cls_bpf filters: miniq_ingress/miniq_egress (the
    /// mini_Qdisc the ingress or clsact qdisc publishes for the datapath) → filter_list, a chain of tcf_proto → root, a
    /// cls_bpf_head whose plist links cls_bpf_prog → filter (the bpf_prog). cls_bpf_head and cls_bpf_prog are the
    /// cls_bpf module's own types, read from its split BTF (<see cref="Model.ModuleBtf"/>).</summary>
    private void ReadTc()
    {
        var dev = kernel.Btf!.FindStruct("net_device");
        if (dev is null || !kernel.Symbols.TryGetAddress("net_namespace_list", out ulong nsList) || !dev.HasMember("dev_list"))
        {
            _unavailable.Add("tc: needs net_namespace_list and struct net_device");
            return;
        }
        bool tcx = dev.HasMember("tcx_ingress") && kernel.Btf.FindStruct("bpf_mprog_entry") is not null;
        bool miniq = dev.HasMember("miniq_ingress") && kernel.Btf.FindStruct("mini_Qdisc") is not null && kernel.Btf.FindStruct("tcf_proto") is not null;
        if (!tcx && !miniq) { _unavailable.Add("tc: BTF lacks net_device.tcx_ingress and miniq_ingress"); return; }
        _pointsRead.Add(BpfAttachPoint.Tc);
        ForEachNetDevice("tc", nsList, (d, name, inum) =>
        {
            foreach (string direction in (string[])["ingress", "egress"])
            {
                if (tcx && d.TryMember("tcx_" + direction, out var entryPtr) && entryPtr.ReadPointer() != 0)
                {
                    var items = entryPtr.Deref()["fp_items"];
                    for (long i = 0; i < items.Type.Length; i++)
                    {
                        ulong prog = items[i]["prog"].ReadPointer();
                        if (prog == 0) break;
                        Attach(prog, BpfAttachPoint.Tc, $"netdev {name} (net ns {inum}) tcx {direction}");
                    }
                }
                else if (!tcx && miniq && d.TryMember("miniq_" + direction, out var mq) && mq.ReadPointer() != 0)
                    ReadClsBpf(mq.Deref(), $"netdev {name} (net ns {inum}) tc {direction}");
            }
        });
    }

    /// <summary>The cls_bpf filters on a pre-6.6 mini_Qdisc's filter_list and the eBPF programs they run. Classic BPF
    /// filters (cls_bpf_prog.bpf_ops set) are converted programs that no ID list ever holds: left out. Without the
    /// cls_bpf module's BTF the filter is a gap, so the view never claims a device has no programs it could not read.</summary>
    private void ReadClsBpf(KernelObject miniQdisc, string where)
    {
        int filters = 0;
        for (ulong tp = miniQdisc["filter_list"].ReadPointer(); tp != 0; tp = kernel.Object("tcf_proto", tp)["next"].ReadPointer())
        {
            if (++filters > kernel.Limits.MaxBpfProgArrayItems) { _gaps.Add($"tc: {where}: more than MaxBpfProgArrayItems filters"); return; }
            var proto = kernel.Object("tcf_proto", tp);
            string kind = proto["ops"].TryDeref(out var ops) ? ops["kind"].ReadString(16) : "?";
            if (kind != "bpf") continue;
            if (kernel.ModuleBtf.Objects("cls_bpf", out string? why) is not { } cls)
            {
                _gaps.Add($"tc: {where} has a cls_bpf filter (tcf_proto 0x{tp:x}) whose programs cannot be read: {why}");
                continue;
            }
            ulong head = proto["root"].ReadPointer();
            if (head == 0) continue; // a filter being set up or torn down holds no programs yet
            int progs = 0;
            foreach (var p in cls.Object("cls_bpf_head", head)["plist"].ListEntries("cls_bpf_prog", "link"))
            {
                if (++progs > kernel.Limits.MaxBpfProgArrayItems) { _gaps.Add($"tc: {where}: more than MaxBpfProgArrayItems cls_bpf programs"); break; }
                if (p["bpf_ops"].ReadPointer() != 0) continue;
                string label = p["bpf_name"].TryDeref(out _) ? p["bpf_name"].ReadString(256) : "";
                Attach(p["filter"].ReadPointer(), BpfAttachPoint.Tc,
                    $"{where} cls_bpf handle 0x{p["handle"].ReadUInt64():x}{(label.Length > 0 ? $" {label}" : "")}");
            }
        }
    }
}
