using Periscope.Integrity.Checks;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.GuestTests;

/// <summary>Baseline-free invariant checks on the real guest and on copies with rootkit-style list surgery applied.</summary>
[Collection("5-level guest")]
public sealed class CheckTests(FiveLevelGuest guest)
{
    private LinuxKernel Kernel => guest.Dump.Kernel;

    private IReadOnlyList<CheckFinding> CheckPatched(Action<PatchedDump> attack)
    {
        using var d = new PatchedDump(guest.DumpPath, guest.Dump.Image, Kernel);
        attack(d);
        using var t = d.Open();
        return new InvariantChecks(t.Kernel).Run();
    }

    /// <summary>What list_del does, minus the poisoning: the neighbours forget the node.</summary>
    private void Unlink(PatchedDump d, ulong node)
    {
        Assert.True(Kernel.Reader.TryPointer(node, out ulong next));
        Assert.True(Kernel.Reader.TryPointer(node + 8, out ulong prev));
        d.WriteU64(prev, next);
        d.WriteU64(next + 8, prev);
    }

    [Fact]
    public void Clean_guest_has_no_critical_finding()
    {
        var findings = new InvariantChecks(Kernel).Run();
        Assert.DoesNotContain(findings, f => f.Severity == Severity.Critical);
    }

    [Fact]
    public void Module_unlinked_from_the_list_is_found_in_the_module_area()
    {
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        var findings = CheckPatched(d => Unlink(d, dummy.Address + (ulong)Kernel.Offsets.Module.List));
        var f = Assert.Single(findings, x => x.Check == "hidden module");
        Assert.Equal("dummy", f.Subject);
        Assert.Equal(dummy.Address, f.Address);
        Assert.Equal(Severity.Critical, f.Severity);
    }

    [Fact]
    public void Task_unlinked_from_the_task_list_is_found_through_the_pid_namespace()
    {
        var victim = Kernel.Tasks.First(t => t.Comm == "sleep" && guest.Truth.Processes.ContainsKey(t.Pid));
        var findings = CheckPatched(d => Unlink(d, victim.Address + (ulong)Kernel.Offsets.Task.Tasks));
        // Found twice, independently: through the pid namespace and through its parent's children list.
        var hidden = findings.Where(x => x.Check == "hidden task").ToList();
        Assert.Equal(2, hidden.Count);
        Assert.All(hidden, f => Assert.Equal(victim.Address, f.Address));
        Assert.All(hidden, f => Assert.Equal($"pid {victim.Pid} (sleep)", f.Subject));
        Assert.Contains(hidden, f => f.Detail.Contains("pid namespace"));
        Assert.Contains(hidden, f => f.Detail.Contains($"child of pid {victim.ParentPid}"));
    }

    [Fact]
    public void User_process_flagged_as_kernel_thread_is_critical()
    {
        var victim = Kernel.Tasks.Single(t => t.Comm == "renamed-proc");
        uint flags = victim.Flags | Periscope.Linux.Model.LinuxTask.PfKthread;
        var findings = CheckPatched(d => d.Write(victim.Address + (ulong)Kernel.Offsets.Task.Flags, BitConverter.GetBytes(flags)));
        var f = Assert.Single(findings, x => x.Check == "task flags" && x.Severity == Severity.Critical);
        Assert.Equal(victim.Address, f.Address);
    }

    [Fact]
    public void Syscall_pointing_into_a_module_is_critical()
    {
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        ulong slot = Kernel.Symbols.GetAddress("sys_call_table") + 139 * 8;
        var findings = CheckPatched(d => d.WriteU64(slot, dummy.Base + 0x10));
        var f = Assert.Single(findings, x => x.Check == "syscall table");
        Assert.Equal(slot, f.Address);
        Assert.Contains("module dummy", f.Detail);
    }
}
