using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// task_struct.nsproxy, the nsproxy's namespace pointers, ns.inum in each namespace struct and cred.user_ns, without
/// BTF. The evidence is init_task's namespaces, the initial ones: each is recognised by its ns_common
/// (<see cref="NamespaceRule"/>: operations named as the namespace, and the fixed PROC_*_INIT_INO inode number where
/// the type has one), so which nsproxy slot holds which namespace is read from the data, not from a declaration order
/// (which only separates time_ns from time_ns_for_children: both point to init_time_ns).
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>struct nsproxy: refcount_t count then at most this many namespace pointers (8 in 5.6..7.x).</summary>
    private const int MaxNsproxySlots = 12;
    private static readonly string[] NsproxyOpsNames = ["uts", "ipc", "mnt", "pid", "net", "time", "cgroup"];
    private readonly Dictionary<ulong, string?> _opsNames = [];

    private readonly record struct NamespaceSlot(int Offset, string Name, ulong Target, int Inum);

    private void InferNamespaces(TaskEvidence ev)
    {
        const string rule = "init_task's pointer to a struct nsproxy (refcount, then namespace pointers) whose uts slot leads to init_uts_ns "
            + "(ns_common.ops named \"uts\", inum PROC_UTS_INIT_INO 0xEFFFFFFE); checked: every task's pointer there is NULL (exited) or an nsproxy whose uts slot is a uts namespace";
        byte[]? init = TaskWindow(ev.Init);
        var candidates = new List<int>();
        var slotsOf = new Dictionary<int, List<NamespaceSlot>>();
        for (int o = 0; init is not null && o + _p <= init.Length; o += _p)
        {
            Step();
            ulong proxy = Word(init, o);
            if (!IsKernel(proxy) || !LooksLikeNsproxy(proxy)) continue;
            var slots = NsproxySlots(proxy);
            if (slots.Count(s => s.Name == "uts") != 1) continue;
            candidates.Add(o);
            slotsOf[o] = slots;
        }
        candidates = candidates.Where(o => ev.AllLeaders.All(t => HasUtsNamespace(t, o, slotsOf[o].First(s => s.Name == "uts")))).ToList();
        int? nsproxy = _report.Add(Task, "nsproxy", candidates, rule);
        InferCredUserNs(ev);
        if (nsproxy is not { } at)
        {
            foreach (var (_, member, structName, _) in NamespaceOffsets.NsproxyMembers) _report.AddUnknown("nsproxy", member, "needs task_struct.nsproxy");
            foreach (var s in NamespaceOffsets.NamespaceStructs.Where(s => s != "user_namespace")) _report.AddUnknown(s, "ns.inum", "needs task_struct.nsproxy");
            return;
        }
        var found = slotsOf[at];
        foreach (var (_, member, structName, opsName) in NamespaceOffsets.NsproxyMembers)
        {
            var matching = found.Where(s => s.Name == opsName).OrderBy(s => s.Offset).ToList();
            string what = $"the slot of init_nsproxy that leads to a namespace whose ns_common.ops is named \"{opsName}\"";
            if (opsName == "time")
                _report.Add("nsproxy", member, matching.Select(s => s.Offset).ToList(), what,
                    c => member == "time_ns" ? c.Min() : c.Max(), "declared time_ns, then time_ns_for_children (both init_time_ns in init_nsproxy)");
            else _report.Add("nsproxy", member, matching.Select(s => s.Offset).ToList(), what);
        }
        foreach (var structName in NamespaceOffsets.NamespaceStructs.Where(s => s != "user_namespace"))
        {
            string opsName = NamespaceOffsets.NsproxyMembers.First(m => m.Struct == structName).OpsName;
            var inums = found.Where(s => s.Name == opsName).Select(s => s.Inum).Distinct().ToList();
            string evidence = NamespaceRule.InitialInode(opsName) is { } fixedInode
                ? $"0x{fixedInode:X8} (the initial {opsName} namespace's fixed inode number)" : "a proc inode number";
            _report.Add(structName, "ns.inum", inums, $"{evidence} right after ns_common.ops named \"{opsName}\", in the namespace init_nsproxy points to");
        }
    }

    /// <summary>cred.user_ns: the pointer in init_task's real_cred (init_cred) to init_user_ns, and its ns.inum.</summary>
    private void InferCredUserNs(TaskEvidence ev)
    {
        if (ev.RealCred is not { } rc || SmallWindow(Ptr(ev.Init + (ulong)rc)) is not { } cred)
        {
            _report.AddUnknown("cred", "user_ns", "needs task_struct.real_cred");
            _report.AddUnknown("user_namespace", "ns.inum", "needs cred.user_ns");
            return;
        }
        var found = new List<(int Slot, ulong Target, int Inum)>();
        for (int o = 0; o + _p <= cred.Length; o += _p)
        {
            Step();
            ulong ns = Word(cred, o);
            if (!IsKernel(ns) || StructWindow(ns) is not { } w) continue;
            Step(w.Length / 64);
            if (NamespaceRule.InumOffsets(w, _p, "user", initial: true, OpsName) is { Count: > 0 } hits) found.Add((o, ns, hits[0]));
        }
        // init_cred.user (root_user) may lie just before init_user_ns, and its window then runs on into it: every
        // candidate must reach the same ns_common, and the pointer nearest below it is the namespace's own.
        bool oneNamespace = found.Select(f => f.Target + (ulong)f.Inum).Distinct().Count() == 1;
        int? userNs = _report.Add("cred", "user_ns", found.Select(f => f.Slot).ToList(),
            "the pointer in init_cred to a namespace whose ns_common.ops is named \"user\" with inum PROC_USER_INIT_INO 0xEFFFFFFD",
            oneNamespace ? c => found.Where(f => c.Contains(f.Slot)).MaxBy(f => f.Target).Slot : null,
            "the pointer nearest below init_user_ns's ns_common (another object's window ran on into it)");
        if (userNs is { } u) _report.Add("user_namespace", "ns.inum", [found.First(f => f.Slot == u).Inum],
            "0xEFFFFFFD (init_user_ns's fixed inode number) right after ns_common.ops named \"user\"");
        else _report.AddUnknown("user_namespace", "ns.inum", "needs cred.user_ns");
    }

    /// <summary>refcount_t count (a positive count, padded to a word) and at least five kernel pointers after it.</summary>
    private bool LooksLikeNsproxy(ulong proxy)
    {
        if (SmallWindow(proxy) is not { } w) return false;
        ulong count = Word(w, 0);
        if (count is 0 or > 1 << 24) return false;
        int pointers = 0;
        for (int k = 1; k <= MaxNsproxySlots && (k + 1) * _p <= w.Length; k++) if (IsKernel(Word(w, k * _p))) pointers++;
        return pointers >= 5;
    }

    private List<NamespaceSlot> NsproxySlots(ulong proxy)
    {
        var result = new List<NamespaceSlot>();
        if (SmallWindow(proxy) is not { } w) return result;
        for (int k = 1; k <= MaxNsproxySlots && (k + 1) * _p <= w.Length; k++)
        {
            ulong ns = Word(w, k * _p);
            if (!IsKernel(ns) || StructWindow(ns) is not { } nw) continue;
            Step(nw.Length / 64);
            foreach (var name in NsproxyOpsNames)
                // The first hit: a window may run on into the next object of the same slab and its ns_common.
                if (NamespaceRule.InumOffsets(nw, _p, name, initial: true, OpsName) is { Count: > 0 } hits)
                    result.Add(new NamespaceSlot(k * _p, name, ns, hits[0]));
        }
        return result;
    }

    /// <summary>The task's pointer at <paramref name="nsproxyOffset"/> is NULL (an exited task) or an nsproxy whose uts
    /// slot holds a uts namespace (any, not only the initial one) with its ns_common where init_uts_ns has it.</summary>
    private bool HasUtsNamespace(ulong task, int nsproxyOffset, NamespaceSlot uts)
    {
        Step();
        ulong proxy = Ptr(task + (ulong)nsproxyOffset);
        if (proxy == 0) return true;
        if (!IsKernel(proxy)) return false;
        ulong ns = Ptr(proxy + (ulong)uts.Offset);
        return IsKernel(ns) && _r.TryU32(ns + (ulong)uts.Inum, out uint inum) && NamespaceRule.IsNamespaceInode(inum)
            && OpsName(Ptr(ns + (ulong)(uts.Inum - _p))) == "uts";
    }

    /// <summary>proc_ns_operations.name (its first member) of the operations at <paramref name="ops"/>, cached.</summary>
    private string? OpsName(ulong ops)
    {
        if (_opsNames.TryGetValue(ops, out var name)) return name;
        Step();
        name = IsKernel(ops) && Ptr(ops) is var text && IsKernel(text) ? _r.ReadCString(text, 24) : null;
        _opsNames[ops] = name;
        return name;
    }
}
