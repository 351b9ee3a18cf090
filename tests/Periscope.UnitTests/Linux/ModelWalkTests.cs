using Periscope.Linux.Model;
using Periscope.Memory;
using static Periscope.UnitTests.Linux.SyntheticKernelBtf;

namespace Periscope.UnitTests.Linux;

/// <summary>The real task and module walkers over synthetic guest memory laid out by <see cref="SyntheticKernelBtf"/>.</summary>
public class ModelWalkTests
{
    private const ulong Threads = SyntheticGuest.Base + 0x10_0000;
    private static readonly VirtualRange ModuleArea = new(0xffff_ffff_c000_0000, 0xffff_ffff_ff00_0000);

    private static ulong Task(int i) => SyntheticGuest.Base + (ulong)i * TaskSize;
    private static ulong Thread(int j) => Threads + (ulong)j * TaskSize;

    private static void WriteTask(SyntheticGuest g, ulong t, int pid, int tgid, string comm, ulong realParent)
    {
        g.I32(t + TaskPid, pid);
        g.I32(t + TaskTgid, tgid);
        g.Text(t + TaskComm, comm);
        g.U64(t + TaskRealParent, realParent);
        g.U64(t + TaskThreadGroup, t + TaskThreadGroup); // alone in its thread group
        g.U64(t + TaskThreadGroup + 8, t + TaskThreadGroup);
    }

    /// <summary>init_task plus <paramref name="count"/> - 1 processes on the task list.</summary>
    private static void WriteTaskList(SyntheticGuest g, int count)
    {
        for (int i = 0; i < count; i++) WriteTask(g, Task(i), i == 0 ? 0 : 1000 + i, i == 0 ? 0 : 1000 + i, i == 0 ? "swapper/0" : $"p{i}", Task(0));
        g.CircularList(Enumerable.Range(0, count).Select(i => Task(i) + TaskTasks).ToList());
    }

    /// <summary>Every process's thread list is pointed into one shared chain of <paramref name="chain"/> thread nodes (issue 6 #9).</summary>
    private static void ShareOneThreadChain(SyntheticGuest g, int processes, int chain)
    {
        for (int j = 0; j < chain; j++)
        {
            WriteTask(g, Thread(j), 100_000 + j, 1001, "shared", Task(0));
            g.U64(Thread(j) + TaskThreadGroup, Thread((j + 1) % chain) + TaskThreadGroup);
        }
        for (int i = 1; i < processes; i++) g.U64(Task(i) + TaskThreadGroup, Thread(0) + TaskThreadGroup);
    }

    private static (IReadOnlyList<LinuxTask> Tasks, Diagnostics Diagnostics, GuestReader Reader) ReadTasks(SyntheticGuest g, IntrospectionLimits limits)
    {
        var offsets = new SyntheticKernelBtf().Offsets();
        var reader = g.Reader(limits);
        var diagnostics = new Diagnostics();
        var lists = new ListWalker(reader, diagnostics, offsets.ListHeadPrev);
        var tasks = new TaskList(reader, offsets, Task(0), limits, diagnostics, new PathResolver(reader, offsets, limits, diagnostics), lists).Read();
        return (tasks, diagnostics, reader);
    }

    [Fact]
    public void Thread_nodes_shared_by_many_processes_are_counted_once()
    {
        const int processes = 300, chain = 1000;
        using var g = new SyntheticGuest();
        WriteTaskList(g, processes);
        ShareOneThreadChain(g, processes, chain);
        var (tasks, diagnostics, _) = ReadTasks(g, IntrospectionLimits.Default);
        Assert.Equal(processes, tasks.Count);
        // Per-list caps alone allowed 299 × 1,001 threads; each shared node may be listed once in all.
        int threads = tasks.Sum(t => t.ThreadCount);
        Assert.True(threads <= processes + chain, $"{threads} threads listed");
        Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message.Contains("already listed under pid 1001"));
        Assert.True(diagnostics.IsIncomplete);
    }

    [Fact]
    public void Threads_are_bounded_in_total_across_all_processes()
    {
        const int processes = 300, chain = 1000;
        using var g = new SyntheticGuest();
        WriteTaskList(g, processes);
        ShareOneThreadChain(g, processes, chain);
        var (tasks, diagnostics, reader) = ReadTasks(g, IntrospectionLimits.Default with { MaxThreadsTotal = 500 });
        Assert.True(tasks.Sum(t => t.ThreadCount) <= 500);
        Assert.True(reader.Budget.IsExhausted(WorkKind.Threads));
        Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message.Contains("MaxThreadsTotal = 500"));
    }

    [Fact]
    public void Parent_is_the_tgid_of_real_parent_even_when_a_secondary_thread_forked()
    {
        using var g = new SyntheticGuest();
        WriteTaskList(g, 3);
        // Thread 1002 of process 1001 (not on the task list) forked process 1002.
        WriteTask(g, Thread(0), 1500, 1001, "worker", Task(0));
        g.U64(Task(2) + TaskRealParent, Thread(0));
        var (tasks, diagnostics, _) = ReadTasks(g, IntrospectionLimits.Default);
        Assert.Equal(1001, tasks.Single(t => t.Pid == 1002).ParentPid);
        Assert.Equal(0, tasks.Single(t => t.Pid == 1001).ParentPid);
        Assert.False(diagnostics.IsIncomplete);
    }

    [Fact]
    public void Random_bytes_over_a_task_are_not_listed_as_a_process_and_mark_the_walk_incomplete()
    {
        using var g = new SyntheticGuest();
        WriteTaskList(g, 4);
        g.U64(Task(2) + TaskPid, 0x9e3779b97f4a7c15); // pid and tgid from random bytes
        var (tasks, diagnostics, _) = ReadTasks(g, IntrospectionLimits.Default);
        Assert.Equal([0, 1001, 1003], tasks.Select(t => t.Pid));
        Assert.True(diagnostics.IsIncomplete);
        Assert.Contains(diagnostics.Items, d => d.Message.Contains("implausible pid"));
    }

    [Fact]
    public void Bytes_read_through_the_model_reader_are_bounded_per_command()
    {
        using var g = new SyntheticGuest();
        WriteTaskList(g, 200);
        var (tasks, diagnostics, reader) = ReadTasks(g, IntrospectionLimits.Default with { MaxModelBytesRead = 4096 });
        Assert.InRange(tasks.Count, 1, 199);
        Assert.True(reader.Budget.IsExhausted(WorkKind.BytesRead));
        Assert.True(reader.Budget.Used(WorkKind.BytesRead) <= 4096);
        Assert.True(diagnostics.IsIncomplete);
    }

    [Fact]
    public void List_back_links_are_checked_at_the_BTF_offset_of_list_head_prev()
    {
        using var g = new SyntheticGuest();
        ulong[] nodes = [.. Enumerable.Range(0, 5).Select(i => SyntheticGuest.Base + 0x1000 + (ulong)i * 0x100)];
        g.CircularList(nodes, prevOffset: 16);
        var reader = g.Reader(IntrospectionLimits.Default);
        var atSixteen = new Diagnostics();
        Assert.Equal(5, new ListWalker(reader, atSixteen, prevOffset: 16).Walk(nodes[0], 0, 100, "list").Count());
        Assert.Empty(atSixteen.Items);
        var atEight = new Diagnostics();
        Assert.Equal(5, new ListWalker(reader, atEight, prevOffset: 8).Walk(nodes[0], 0, 100, "list").Count());
        Assert.Equal(4, atEight.Items.Count(d => d.Message.Contains("inconsistent links") && !d.Incomplete));
    }

    // ---------------------------------------------------------------- modules

    private const ulong ModulesHead = SyntheticGuest.Base + 0x30_0000;
    private static ulong Module(int k) => SyntheticGuest.Base + 0x31_0000 + (ulong)k * ModuleSize;

    private static void WriteModule(SyntheticGuest g, int k, string name, int state, params (int Index, ulong Base, uint Size)[] mem)
    {
        g.I32(Module(k) + ModuleStateAt, state);
        g.Text(Module(k) + ModuleName, name);
        g.I32(Module(k) + ModuleRefcnt, 1);
        foreach (var (index, b, size) in mem)
        {
            g.U64(Module(k) + ModuleMem + (ulong)(index * ModuleMemorySize), b);
            g.U32(Module(k) + ModuleMem + (ulong)(index * ModuleMemorySize) + 8, size);
        }
    }

    private static (IReadOnlyList<KernelModule>, Diagnostics) ReadModules(SyntheticGuest g, SyntheticKernelBtf btf, int count, IntrospectionLimits limits)
    {
        g.CircularList([ModulesHead, .. Enumerable.Range(0, count).Select(k => Module(k) + ModuleListAt)]);
        var offsets = btf.Offsets();
        var reader = g.Reader(limits);
        var diagnostics = new Diagnostics();
        var modules = new ModuleList(reader, offsets, new ListWalker(reader, diagnostics, offsets.ListHeadPrev), limits, diagnostics, ModuleArea)
            .Read(ModulesHead);
        return (modules, diagnostics);
    }

    [Fact]
    public void Garbage_modules_are_rejected_and_text_comes_from_the_BTF_MOD_TEXT_index()
    {
        var btf = new SyntheticKernelBtf { ModTextValue = 1, ModRodataValue = 3, ModuleStates = (4, 5, 6, 7) };
        using var g = new SyntheticGuest();
        WriteModule(g, 0, "crc7", 4, (1, 0xffff_ffff_c000_1000, 0x2000), (3, 0xffff_ffff_c000_4000, 0x1000));
        WriteModule(g, 1, "bad_state", 99, (1, 0xffff_ffff_c001_0000, 0x1000));
        WriteModule(g, 2, "in_a_task", 4, (1, SyntheticGuest.Base, 86 << 20)); // a list head pointed into a task_struct
        WriteModule(g, 3, "empty", 4);
        var (modules, diagnostics) = ReadModules(g, btf, 4, IntrospectionLimits.Default);
        var m = Assert.Single(modules);
        Assert.Equal(("crc7", 0xffff_ffff_c000_1000UL, 0x3000UL, 0x2000UL, 0x1000UL, ModuleState.Live), (m.Name, m.Base, m.Size, m.TextSize!.Value, m.ReadOnlySize!.Value, m.State));
        Assert.Equal(0, m.References);
        Assert.Equal(3, diagnostics.Items.Count(d => d.Incomplete && d.Area == "module list" && d.Message.Contains("not a struct module")));
    }

    [Fact]
    public void Module_bytes_are_bounded_in_total()
    {
        using var g = new SyntheticGuest();
        WriteModule(g, 0, "a", 0, (0, 0xffff_ffff_c000_1000, 0x1000));
        WriteModule(g, 1, "b", 0, (0, 0xffff_ffff_c000_3000, 0x1000));
        var (modules, diagnostics) = ReadModules(g, new SyntheticKernelBtf(), 2, IntrospectionLimits.Default with { MaxModuleBytesTotal = 0x1800 });
        Assert.Equal(["a"], modules.Select(x => x.Name));
        Assert.Contains(diagnostics.Items, d => d.Incomplete && d.Message.Contains("MaxModuleBytesTotal = 6144"));
    }
}
