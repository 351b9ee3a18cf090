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
}
