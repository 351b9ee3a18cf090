using System.Buffers.Binary;
using Periscope.Linux;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.Targets;

namespace Periscope.GuestTests;

/// <summary>
/// The guest is the attacker: copies of a real dump with kernel structures corrupted the way a rootkit or a crash
/// would (cycles, pointers into nowhere, absurd counts, broken type data). Every walk must stay bounded, report a
/// diagnostic and keep going; nothing may hang or throw past the API.
/// </summary>
[Collection("5-level guest")]
public sealed class HostileGuestTests(FiveLevelGuest guest)
{
    private LinuxKernel Clean => guest.Dump.Kernel;

    private PatchedDump Patch() => new(guest.DumpPath, guest.Dump.Image, Clean);

    private ulong TasksNode(int index) => Clean.Tasks[index].Address + (ulong)Clean.Offsets.Task.Tasks;

    [Fact]
    public void Cycle_in_the_task_list_is_cut_with_a_diagnostic()
    {
        using var d = Patch();
        d.WriteU64(TasksNode(10), TasksNode(5)); // task 10's next goes back to task 5, never reaching init_task again
        using var t = d.Open();
        var tasks = t.Kernel.Tasks;
        Assert.Equal(11, tasks.Count);
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Area == "task list" && x.Message.Contains("cycle"));
    }

    [Fact]
    public void Task_list_pointer_into_nowhere_ends_the_walk()
    {
        using var d = Patch();
        d.WriteU64(TasksNode(3), 0xdead4ead00000000);
        using (var t = d.Open())
        {
            Assert.Equal(4, t.Kernel.Tasks.Count);
            Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Message.Contains("not a kernel pointer"));
        }
        // Canonical kernel address that nothing maps.
        d.WriteU64(TasksNode(3), 0xffffffffff5f0000);
        using (var t = d.Open())
        {
            Assert.Equal(4, t.Kernel.Tasks.Count);
            Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Message.Contains("unreadable"));
        }
    }

    [Fact]
    public void Task_cap_from_the_limits_object_is_enforced()
    {
        using var t = Target.OpenDump(guest.DumpPath, new TargetOptions { Limits = IntrospectionLimits.Default with { MaxTasks = 10 } });
        Assert.Equal(11, t.Kernel.Tasks.Count); // init_task plus 10 followed links
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Message.Contains("limit of 10"));
    }

    [Fact]
    public void Thread_group_self_loop_and_garbage_comm_are_survived()
    {
        var threaded = Clean.Tasks.Single(x => x.Comm == "workload" && x.ThreadCount == 4);
        var o = Clean.Offsets.Task;
        using var d = Patch();
        ulong second = threaded.Threads[1].Address + (ulong)o.ThreadGroup!.Value;
        d.WriteU64(second, second); // the second thread links to itself
        d.Write(threaded.Address + (ulong)o.Comm, [0xff, 0xfe, .. "ABCDEFGHIJKLMN"u8.ToArray()]); // 16 bytes, no NUL, not UTF-8
        using var t = d.Open();
        var task = t.Kernel.Tasks.Single(x => x.Pid == threaded.Pid);
        Assert.Equal(2, task.ThreadCount);
        Assert.EndsWith("ABCDEFGHIJKLMN", task.Comm);
        Assert.True(task.Comm.Length <= 16);
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Message.Contains("cycle"));
    }

    [Fact]
    public void Maple_tree_corruption_yields_a_diagnostic_not_a_hang()
    {
        var victim = Clean.Tasks.Single(x => x.Comm == "renamed-proc");
        ulong rootField = victim.Mm + (ulong)Clean.Offsets.Maple!.Root;
        Assert.True(Clean.Reader.TryU64(rootField, out ulong root));
        ulong node = root & ~0xffUL;
        var o = Clean.Offsets.Maple;
        using var d = Patch();
        // Make the root an internal range node (type 2, root tag) whose every slot points back at itself.
        ulong looped = node | (2 << 3) | 2;
        d.WriteU64(rootField, looped);
        for (int i = 0; i < o.RangeSlots; i++) d.WriteU64(node + (ulong)o.RangeSlot + (ulong)i * 8, looped);
        // And map_count claims two billion mappings.
        d.Write(victim.Mm + (ulong)Clean.Offsets.Mm.MapCount, [0xff, 0xff, 0xff, 0x7f]);
        using var t = d.Open();
        var task = t.Kernel.Tasks.Single(x => x.Pid == victim.Pid);
        var vmas = t.Kernel.GetVmas(task);
        Assert.DoesNotContain(vmas, v => v.Path == "/bin/workload");
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Area == "maple tree" && x.Message.Contains("cycle"));
    }

    [Fact]
    public void Module_list_cycle_and_unterminated_name_are_bounded()
    {
        var mods = Clean.Modules;
        var o = Clean.Offsets.Module;
        using var d = Patch();
        d.WriteU64(mods[1].Address + (ulong)o.List, mods[0].Address + (ulong)o.List);
        d.Write(mods[0].Address + (ulong)o.Name, Enumerable.Repeat((byte)'A', o.NameSize).ToArray());
        using var t = d.Open();
        Assert.Equal(2, t.Kernel.Modules.Count);
        Assert.Equal(new string('A', o.NameSize), t.Kernel.Modules[0].Name);
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Area == "module list" && x.Message.Contains("cycle"));
    }

    [Fact]
    public void Modules_head_pointed_into_a_task_struct_yields_no_garbage_modules()
    {
        using var d = Patch();
        d.WriteU64(Clean.Symbols.GetAddress("modules"), TasksNode(5)); // issue 6 #7: the walk now runs along the task list
        using var t = d.Open();
        var modules = t.Kernel.Modules;
        Assert.Empty(modules);
        Assert.True(t.Kernel.IsIncomplete);
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Area == "module list" && x.Incomplete && x.Message.Contains("not a struct module"));
    }

    [Fact]
    public void Thread_lists_sharing_nodes_list_each_thread_once()
    {
        var threaded = Clean.Tasks.Single(x => x.Comm == "workload" && x.ThreadCount == 4);
        int tg = Clean.Offsets.Task.ThreadGroup!.Value;
        int cleanTotal = Clean.Tasks.Sum(x => x.ThreadCount);
        var victims = Clean.Tasks.Where(x => x.ThreadCount == 1 && x.Pid > 0).Take(40).ToList();
        using var d = Patch();
        // Issue 6 #9: 40 thread groups all lead into the workload's thread list.
        foreach (var v in victims) d.WriteU64(v.Address + (ulong)tg, threaded.Threads[1].Address + (ulong)tg);
        using var t = d.Open();
        int total = t.Kernel.Tasks.Sum(x => x.ThreadCount);
        Assert.True(total <= cleanTotal + 1, $"{total} threads listed, {cleanTotal} in the clean dump");
        Assert.Contains(t.Kernel.Diagnostics.Items, x => x.Incomplete && x.Message.Contains("already listed under pid"));
        Assert.True(t.Kernel.IsIncomplete);
    }

    [Fact]
    public void Thread_total_budget_from_the_limits_object_is_enforced()
    {
        using var t = Target.OpenDump(guest.DumpPath, new TargetOptions { Limits = IntrospectionLimits.Default with { MaxThreadsTotal = 25 } });
        Assert.True(t.Kernel.Tasks.Sum(x => x.ThreadCount) <= 25);
        Assert.True(t.Kernel.IsIncomplete);
        Assert.Contains(t.Kernel.IncompleteReasons, r => r.Contains("MaxThreadsTotal = 25"));
    }

    [Fact]
    public void Random_bytes_over_the_task_list_head_mark_the_model_incomplete()
    {
        ulong initTasks = Clean.Symbols.GetAddress("init_task") + (ulong)Clean.Offsets.Task.Tasks;
        var noise = new byte[64];
        new Random(6).NextBytes(noise);
        using var d = Patch();
        d.Write(initTasks, noise);
        using var t = d.Open();
        Assert.True(t.Kernel.Tasks.Count <= 1);
        Assert.True(t.Kernel.IsIncomplete);
        Assert.Contains(t.Kernel.IncompleteReasons, r => r.StartsWith("task list", StringComparison.Ordinal));
    }

    [Fact]
    public void Corrupt_BTF_is_a_clear_error()
    {
        using var d = Patch();
        ulong btf = Clean.Symbols.GetAddress("__start_BTF");
        d.Write(btf + 8, [0xff, 0xff, 0xff, 0x7f]); // type_off: far past the blob
        using var t = d.Open();
        var e = Assert.Throws<KernelNotFoundException>(() => t.Kernel);
        Assert.Contains("BTF", e.Message);
    }

    [Fact]
    public void Truncated_dump_names_file_and_offset()
    {
        string path = Path.Combine(Path.GetDirectoryName(guest.DumpPath)!, $"truncated-{Guid.NewGuid():n}.core");
        using (var src = File.OpenRead(guest.DumpPath))
        using (var dst = File.Create(path))
        {
            var buf = new byte[1 << 20];
            for (int i = 0; i < 64; i++) dst.Write(buf, 0, src.Read(buf));
        }
        try
        {
            var e = Assert.Throws<MemoryFormatException>(() => Target.OpenDump(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("offset 0x", e.Message);
        }
        finally { File.Delete(path); }
    }
}
