using Periscope.Linux;
using Periscope.Linux.Model;
using Xunit;

namespace Periscope.GuestTests;

/// <summary>Comparisons of Periscope's model with the guest's own /proc that every guest class makes the same way,
/// whatever the kernel (64- or 32-bit, with or without BTF).</summary>
internal static class ProcComparisons
{
    /// <summary>/proc/modules: name, base, size, state in the kernel's order, then the "used by" counts.</summary>
    public static void ModulesMatch(GroundTruth truth, LinuxKernel kernel)
    {
        var ours = kernel.Modules;
        Assert.True(truth.Modules.Count >= 4);
        Assert.Equal(truth.Modules.Select(m => (m.Name, m.Base, m.Size, m.State)), ours.Select(m => (m.Name, m.Base, m.Size, m.State.ProcName())));
        Assert.Equal(truth.Modules.Select(m => m.References), ours.Select(m => m.References ?? -1));
    }

    /// <summary>/proc/PID/maps of every user process the guest listed, line for line; at least six processes compared.</summary>
    public static void MapsMatch(GroundTruth truth, LinuxKernel kernel)
    {
        int compared = 0;
        foreach (var task in kernel.Tasks.Where(t => t.Mm != 0))
        {
            if (!truth.Maps.TryGetValue(task.Pid, out var lines) || lines.Count == 0) continue;
            var expected = lines.Select(m => $"{m.Start:x}-{m.End:x} {m.Perms} {m.Offset:x} {m.Device} {m.Inode} {m.Path}").ToList();
            var actual = kernel.GetVmas(task).Select(v => $"{v.Start:x}-{v.End:x} {v.Permissions} {v.Offset:x} {v.DeviceMajor:x2}:{v.DeviceMinor:x2} {v.Inode} {v.Path}").ToList();
            Assert.True(expected.SequenceEqual(actual), $"pid {task.Pid} ({task.Comm}):\nguest:\n{string.Join('\n', expected)}\nPeriscope:\n{string.Join('\n', actual)}");
            compared++;
        }
        Assert.True(compared >= 6, $"compared maps of only {compared} processes");
    }

    /// <summary>
    /// Whether /proc's name of a workqueue worker, taken before the dump, and Periscope's name of it from the dump name the
    /// same worker: both begin with one worker id (the comm, or since 6.10 the full id the comm may cut, such as
    /// "kworker/R-rcu_gp" for the comm "kworker/R-rcu_g"; an id may itself hold '-'), and each goes on with nothing or with
    /// "+desc"/"-desc", the work it runs or ran last, which may change in between. Where Periscope shows no description,
    /// /proc must have shown none either. <paramref name="described"/>: Periscope's name goes on with one.
    /// </summary>
    internal static bool SameWorker(string proc, string ours, string comm, out bool described)
    {
        described = false;
        // The ids a name can begin with: the whole name, or the part before any '+' or '-' (the description's mark).
        // The shortest such id at least as long as the comm is the worker's: the rest is the description.
        static IEnumerable<string> Ids(string name) =>
            Enumerable.Range(1, Math.Max(0, name.Length - 1)).Where(i => name[i] is '+' or '-').Select(i => name[..i]).Append(name);
        var id = Ids(ours).Intersect(Ids(proc)).Where(i => i.Length >= comm.Length && i.StartsWith(comm, StringComparison.Ordinal))
            .OrderBy(i => i.Length).FirstOrDefault();
        if (id is null) return false;
        described = ours.Length > id.Length;
        return described || proc == id;
    }

    /// <summary>
    /// Every process's name as /proc/PID/stat shows it (truth.d/views.sh) and its cgroup as /proc/PID/cgroup's "0::" line.
    /// A workqueue worker's "-desc" names the workqueue it served last, which may change between the guest's listing and
    /// the dump: for a worker the comm must match and, where /proc showed a description, Periscope must show one too.
    /// At least two described workers, one kernel thread with a name longer than its comm and the container's cgroup.
    /// </summary>
    public static void NamesAndCgroupsMatch(Dictionary<(string Name, int Pid), List<string>> sections, LinuxKernel kernel)
    {
        var details = new ProcessDetailsReader(kernel);
        // The inference report's rows (candidates and the rule that decided) say why a member stayed unknown.
        Assert.True(details.Unavailable.Count == 0, string.Join("\n", details.Unavailable.Concat(
            kernel.Inference?.Unknown.Select(m => $"{m.Name}: {m.Decision} [{string.Join(", ", m.Candidates.Select(c => $"0x{c:x}"))}] {m.Rule}") ?? [])));
        int compared = 0, described = 0, longNames = 0;
        bool container = false;
        foreach (var task in kernel.Tasks.Where(t => t.Pid != 0))
        {
            if (!sections.TryGetValue(("views-proc", task.Pid), out var lines) || lines.FirstOrDefault(l => l.StartsWith("stat ", StringComparison.Ordinal)) is not { } stat)
                continue; // started after the guest printed its view
            string name = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
            if (!name.StartsWith(task.Comm, StringComparison.Ordinal)) continue; // a pid of the truth script's helpers, reused
            if ((task.Flags & KernelMacros.PF_WQ_WORKER) != 0)
            {
                Assert.True(SameWorker(name, task.Name, task.Comm, out bool ours), $"pid {task.Pid}: /proc showed {name}, Periscope {task.Name}");
                if (ours) described++;
            }
            else
            {
                Assert.Equal(name, task.Name);
                if (task.IsKernelThread && name.Length > task.Comm.Length) longNames++;
            }
            if (lines.FirstOrDefault(l => l.StartsWith("cgroup ", StringComparison.Ordinal)) is { } cgroup)
            {
                var d = details.Read(task, withEnvironment: false);
                Assert.Equal(cgroup["cgroup ".Length..], $"0::{d.CgroupPath}");
                container |= d.ContainerId is not null;
            }
            compared++;
        }
        Assert.True(compared > 40, $"only {compared} processes compared");
        Assert.True(described >= 2, $"only {described} workqueue workers with a description");
        Assert.True(longNames >= 1, "no kernel thread with a name longer than its comm");
        Assert.True(container, "the container's cgroup (start.d/50-views.sh) was not found");
    }
}
