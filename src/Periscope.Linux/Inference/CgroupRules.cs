using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// ps --full's cgroup path without BTF (/proc/PID/cgroup's "0::/path"): task_struct.cgroups, css_set.dom_cset and
/// dfl_cgrp, cgroup.kn, and kernfs_node's priv, parent (__parent since 6.15: <see cref="KernelMacros.KernfsParentMember"/>) and name. The evidence: a domain css_set points to itself
/// (dom_cset), dfl_cgrp (declared right after it) is a cgroup whose css self.cgroup points back to it, the cgroup's
/// kernfs_node points back to it (priv), init_css_set's cgroup is the root, whose node has no parent and the empty name,
/// and every other cgroup's node reaches that root through its parents, with printable names on the way.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>kernfs_node's members, the parent under this kernel's name (__parent since 6.15).</summary>
    private string[] KernfsMembers => ["priv", _kernfsParent, "name"];
    /// <summary>Cgroups other than the root whose nodes are walked as evidence (a host with thousands of cgroups gives
    /// no better evidence than its first few dozen, and each walk costs up to MaxPathComponents reads).</summary>
    private const int MaxCgroupEvidence = 64;
    /// <summary>The tie-break of cgroup.kn and kernfs_node.priv: a pointer that reaches the cgroup at a higher offset reaches
    /// it through a neighbouring node in the slab.</summary>
    private const string KernfsPrivTieBreak = "the pointer reaching the cgroup at the lowest offset (a higher one is the directory node's priv seen from one of its file nodes, its neighbour in the slab)";

    private void InferCgroups(TaskEvidence ev)
    {
        const string rule = "a pointer every task holds (outside the task) to a css_set whose dom_cset points to itself, followed by dfl_cgrp, "
            + "a cgroup whose css self.cgroup points to itself";
        var pairs = CssSetColumns(ev.Init).Where(c => ev.AllLeaders.All(t => LeadsToCgroup(t, c.Column, c.DomCset))).ToList();
        if (_report.Add(Task, "cgroups", pairs.Select(c => c.Column).Distinct().ToList(), rule) is not { } cgroups
            || _report.Add("css_set", "dom_cset", pairs.Where(c => c.Column == cgroups).Select(c => c.DomCset).Distinct().ToList(), rule) is not { } dom)
        {
            foreach (var (s, m) in new[] { ("css_set", "dom_cset"), ("css_set", "dfl_cgrp"), ("cgroup", "kn") }.Where(x => _report.Find(x.Item1, x.Item2) is null))
                _report.AddUnknown(s, m, "needs task_struct.cgroups");
            foreach (var m in KernfsMembers) _report.AddUnknown("kernfs_node", m, "needs task_struct.cgroups");
            return;
        }
        int dfl = _report.AddStructural("css_set", "dfl_cgrp", dom + _p, "declared right after dom_cset (checked: a cgroup whose self.cgroup points to itself, in every task's css_set)");
        ulong root = Ptr(Ptr(ev.Init + (ulong)cgroups) + (ulong)dfl);
        var children = ev.AllLeaders.Select(t => Ptr(Ptr(t + (ulong)cgroups) + (ulong)dfl)).Where(g => g != root).Distinct().Take(MaxCgroupEvidence).ToList();
        InferKernfs(root, children);
    }

    /// <summary>(task column, dom_cset offset) pairs in init_task: its css_set (init_css_set) points to itself at dom_cset.</summary>
    private List<(int Column, int DomCset)> CssSetColumns(ulong init)
    {
        var found = new List<(int, int)>();
        if (TaskWindow(init) is not { } tw) return found;
        for (int c = 0; c + _p <= tw.Length; c += _p)
        {
            Step();
            ulong set = Word(tw, c);
            if (!IsKernel(set) || set - init < (ulong)tw.Length || SmallWindow(set) is not { } sw) continue;
            // dom_cset follows the subsys[] pointers and the refcount: never at offset 0 (an empty list head there also
            // points to itself).
            for (int d = _p; d + 2 * _p <= sw.Length; d += _p)
                if (Word(sw, d) == set && IsCgroup(Word(sw, d + _p))) found.Add((c, d));
        }
        return found;
    }

    /// <summary>struct cgroup starts with its css, whose first member (css.cgroup) points back to the cgroup.</summary>
    private bool IsCgroup(ulong cgroup) => IsKernel(cgroup) && Ptr(cgroup) == cgroup;

    /// <summary>
    /// The other tasks confirm init's column; a pointer into the task itself is not refused here. init's column already
    /// points outside init_task (which rules out a task's own empty lists: ptraced's prev points to ptraced, and
    /// ptrace_entry right after it points to itself), and a task's real css_set is a slab object that may sit within
    /// MaxInferenceTaskBytes after the task_struct (a task_struct ends well before that window does): refusing those
    /// lost task_struct.cgroups on some boots.
    /// </summary>
    private bool LeadsToCgroup(ulong task, int column, int domCset)
    {
        Step();
        ulong set = Ptr(task + (ulong)column);
        return IsKernel(set) && Ptr(set + (ulong)domCset) == set && IsCgroup(Ptr(set + (ulong)(domCset + _p)));
    }

    /// <summary>The cgroup rules alone, on their own step budget, given init_task and every thread-group leader (for tests).</summary>
    /// <exception cref="KernelModelException">The search exceeded MaxInferenceSteps.</exception>
    public static InferenceReport InferCgroupMembers(GuestReader reader, Memory.IntrospectionLimits limits, ulong init, IReadOnlyList<ulong> leaders) =>
        RulesAlone(reader, new Kallsyms.KernelSymbols([]), limits, "cgroup",
            search => search.InferCgroups(new TaskEvidence { Init = init, Leaders = [.. leaders], AllLeaders = [.. leaders], Threads = [] }));

    /// <summary>cgroup.kn and kernfs_node.priv (the node points back to its cgroup, in every cgroup seen, and its parent and
    /// name, declared before priv, make a tree: the root's node has no parent and the empty name, every other cgroup's
    /// node walks up to it with printable names, <see cref="KernfsPath"/>), then parent and name from that walk.</summary>
    private void InferKernfs(ulong root, List<ulong> children)
    {
        const string knRule = "a pointer in the root cgroup (and every other cgroup a task is in) to a kernfs_node whose priv points back to the cgroup, "
            + "and below priv a parent and a name through which the root cgroup's node has no parent and the empty name and every other cgroup's node walks up to it";
        // A back pointer alone is not enough: a cgroup also points to other objects (its files' nodes, its refcount's data)
        // whose slab neighbours may hold the cgroup, in the root and in every child alike on some boots (seen on i386: 0xc
        // besides 0x98, about one boot in six). Only the directory's node also makes a kernfs tree.
        var links = new List<(int Kn, int Priv, List<(int Parent, int Name)> Walks)>();
        if (StructWindow(root) is { } gw)
            for (int k = 0; k + _p <= gw.Length; k += _p)
            {
                Step();
                ulong kn = Word(gw, k);
                if (!IsKernel(kn) || kn - root < (ulong)gw.Length || SmallWindow(kn) is not { } kw) continue;
                for (int q = 0; q + _p <= kw.Length; q += _p)
                    if (Word(kw, q) == root && children.All(g => Ptr(Ptr(g + (ulong)k) + (ulong)q) == g)
                        && KernfsWalks(root, children, k, q) is { Count: > 0 } walks)
                        links.Add((k, q, walks));
            }
        // A cgroup file's node may lie beside the directory's in the slab, its window reaching the directory's priv
        // further on: of several pointers the one reaching the cgroup at the lowest offset is the node's own.
        int lowest = links.Count == 0 ? 0 : links.Min(l => l.Priv);
        var atLowest = links.Where(l => l.Priv == lowest).Select(l => l.Kn).Distinct().ToList();
        if (_report.Add("cgroup", "kn", links.Select(l => l.Kn).Distinct().ToList(), knRule,
                atLowest.Count == 1 ? _ => atLowest[0] : null, KernfsPrivTieBreak) is not { } knAt
            || _report.Add("kernfs_node", "priv", links.Where(l => l.Kn == knAt).Select(l => l.Priv).Distinct().Order().ToList(), knRule,
                c => c.Min(), KernfsPrivTieBreak) is not { } priv)
        {
            foreach (var m in KernfsMembers.Where(m => _report.Find("kernfs_node", m) is null)) _report.AddUnknown("kernfs_node", m, "needs cgroup.kn");
            return;
        }
        if (children.Count == 0)
        {
            _report.AddUnknown("kernfs_node", _kernfsParent, "every task is in the root cgroup: no node to walk up from");
            _report.AddUnknown("kernfs_node", "name", "every task is in the root cgroup: no named node");
            return;
        }
        var found = links.First(l => l.Kn == knAt && l.Priv == priv).Walks;
        const string walkRule = "below priv (both are declared before it), the root cgroup's node has parent NULL and the empty name; every other cgroup's "
            + "node walks up to it through parent, each name on the way printable, non-empty and without '/'";
        if (_report.Add("kernfs_node", _kernfsParent, found.Select(f => f.Parent).Distinct().ToList(), walkRule) is { } parent)
            _report.Add("kernfs_node", "name", found.Where(f => f.Parent == parent).Select(f => f.Name).Distinct().ToList(), walkRule);
        else _report.AddUnknown("kernfs_node", "name", $"needs kernfs_node.{_kernfsParent}");
    }

    /// <summary>The (parent, name) offset pairs below <paramref name="privAt"/> through which the nodes that cgroup.kn at
    /// <paramref name="knAt"/> gives make a tree (<see cref="KernfsRule.ParentAndName"/>).</summary>
    private List<(int Parent, int Name)> KernfsWalks(ulong root, List<ulong> children, int knAt, int privAt)
    {
        Step((children.Count + 1) * (_smallBytes / _p) * 4);
        return KernfsRule.ParentAndName(_r, Ptr(root + (ulong)knAt), children.Select(g => Ptr(g + (ulong)knAt)).ToList(), _smallBytes, privAt, _limits.MaxPathComponents);
    }
}
