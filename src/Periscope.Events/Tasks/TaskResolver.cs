using System.Text;
using Periscope.Linux;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Events.Tasks;

/// <summary>A task as one event saw it.</summary>
/// <param name="Address">Its task_struct.</param>
/// <param name="Pid">The thread id (task->pid).</param>
/// <param name="Tgid">The process id (task->tgid).</param>
/// <param name="ParentTgid">real_parent's tgid, as /proc's PPid.</param>
public sealed record TracedTask(ulong Address, int Pid, int Tgid, string Comm, int ParentTgid, uint? Uid, ulong Mm);

/// <summary>
/// Finds the task behind a syscall from CPU state and kernel data only: the per-CPU <c>current_task</c> at the GS base
/// the entry code used (read by the plugin at the event, or now when the plugin was not told where it is), accepted
/// only when the event's pt_regs lie on that task's kernel stack. Nothing the guest passes in a register or buffer
/// is believed about who is calling.
/// </summary>
public sealed class TaskResolver
{
    private readonly LinuxKernel _kernel;
    private readonly AddressSpace _space;
    private readonly IntrospectionLimits _limits;
    private readonly int _stackOffset;
    private readonly Dictionary<ulong, ulong> _taskByPtRegs = [];
    private readonly Dictionary<ulong, AddressSpace> _userSpaces = [];
    private readonly Dictionary<ulong, TracedTask> _lastDescribed = [];
    private readonly Dictionary<ulong, BatchEntry> _batch = [];

    private readonly int _ptRegsSize;
    private readonly int? _mmArgStart, _mmArgEnd;

    /// <param name="ptRegsSize">sizeof(struct pt_regs) from BTF: pt_regs end exactly at the top of the task's stack.</param>
    public TaskResolver(LinuxKernel kernel, IntrospectionLimits limits, int ptRegsSize)
    {
        _ptRegsSize = ptRegsSize;
        _kernel = kernel;
        _space = kernel.KernelSpace;
        _limits = limits;
        var btf = kernel.Btf ?? throw new InvalidOperationException("tracing needs the kernel's BTF (struct pt_regs, task_struct.stack)");
        var task = btf.FindStruct("task_struct") ?? throw new InvalidOperationException("BTF has no task_struct");
        _stackOffset = (int)task.Offset("stack");
        if (btf.FindStruct("mm_struct") is { } mmStruct && mmStruct.HasMember("arg_start") && mmStruct.HasMember("arg_end"))
        {
            _mmArgStart = (int)mmStruct.Offset("arg_start");
            _mmArgEnd = (int)mmStruct.Offset("arg_end");
        }
        CurrentTaskPerCpuOffset = FindCurrentTask(kernel);
    }

    /// <summary>Per-CPU offset of the `current` pointer: current_task (up to 6.1) or pcpu_hot.current_task (6.2+).</summary>
    public ulong CurrentTaskPerCpuOffset { get; }

    private static ulong FindCurrentTask(LinuxKernel kernel)
    {
        if (kernel.Symbols.TryGetAddress("current_task", out ulong current)) return current;
        if (kernel.Symbols.TryGetAddress("pcpu_hot", out ulong hot) && kernel.Btf?.FindStruct("pcpu_hot") is { } s && s.HasMember("current_task"))
            return hot + (ulong)s.Offset("current_task");
        throw new InvalidOperationException("the guest's kallsyms has neither current_task nor pcpu_hot: cannot tell which task made a syscall");
    }

    /// <summary>The task whose kernel stack holds <paramref name="ptRegs"/>: the plugin's `current` if given, else the
    /// vCPU's current task now; 0 when neither is that task (it was switched out before we looked).</summary>
    public ulong Resolve(ulong recordedCurrent, ulong gsBase, ulong ptRegs) => Resolve(recordedCurrent, gsBase, ptRegs, out _);

    /// <param name="exited">The task's stack is gone (it exited since the event); describe it with <see
    /// cref="Describe(ulong, bool)"/> as it was last seen alive.</param>
    public ulong Resolve(ulong recordedCurrent, ulong gsBase, ulong ptRegs, out bool exited)
    {
        exited = false;
        ulong candidate = recordedCurrent;
        if (candidate == 0 && gsBase != 0) _space.TryReadUInt64(gsBase + CurrentTaskPerCpuOffset, out candidate);
        if (candidate != 0 && OnStackOf(candidate, ptRegs))
        {
            if (_taskByPtRegs.Count >= _limits.MaxTracedTasks) _taskByPtRegs.Clear();
            _taskByPtRegs[ptRegs] = candidate;
            return candidate;
        }
        // A task that exited since the event has no stack left to check (it is freed at exit, e.g. right after
        // exit_group). The plugin's `current`, read from CPU state at the event, is still believed when it is the task
        // this same pt_regs slot was proven to belong to while it was alive.
        if (!_taskByPtRegs.TryGetValue(ptRegs, out ulong known)) return 0;
        if (OnStackOf(known, ptRegs)) return known;
        if (recordedCurrent == 0 || known != recordedCurrent) return 0;
        exited = true;   // its task_struct may be freed by now
        return known;
    }

    /// <summary>
    /// Syscall pt_regs sit at the very top of the task's stack (task_pt_regs: stack + THREAD_SIZE - sizeof(pt_regs),
    /// no padding on x86-64). THREAD_SIZE is not in BTF, so the check is that the stack's extent up to the end of
    /// pt_regs is a power of two no larger than MaxKernelStackBytes: a neighbouring task's stack (vmalloc places them
    /// next to each other) never passes.
    /// </summary>
    private bool OnStackOf(ulong task, ulong ptRegs)
    {
        if (!_space.TryReadUInt64(task + (ulong)_stackOffset, out ulong stack) || stack == 0 || ptRegs < stack) return false;
        ulong extent = ptRegs + (ulong)_ptRegsSize - stack;
        return extent >= 0x1000 && extent <= (ulong)_limits.MaxKernelStackBytes && (extent & (extent - 1)) == 0;
    }

    /// <param name="exited">From <see cref="Resolve(ulong, ulong, ulong, out bool)"/>: the task as it was last seen alive.</param>
    public TracedTask? Describe(ulong task, bool exited = false)
    {
        if (exited && _lastDescribed.TryGetValue(task, out var seen)) return seen;
        var described = DescribeNow(task);
        if (described is not null)
        {
            if (_lastDescribed.Count >= _limits.MaxTracedTasks) _lastDescribed.Clear();
            _lastDescribed[task] = described;
        }
        return described;
    }

    /// <summary>
    /// The task as the plugin saw it at the event: its pid, tgid and name copied then, the rest (parent, uid, mm) read
    /// now while the task_struct still holds the same pid, else as last seen alive, else unknown (0, null). "Now" is
    /// once per batch of records (<see cref="FlushUserSpaces"/>, or <see cref="Forget"/> after an exec): a task makes
    /// many calls in a batch, and reading it again for each cost more than everything else per record.
    /// </summary>
    public TracedTask DescribeAtEvent(ulong task, int pid, int tgid, ReadOnlySpan<byte> comm)
    {
        UInt128 commKey = comm.Length >= 16 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(comm) : 0;
        if (comm.Length >= 16 && _batch.TryGetValue(task, out var hit) && hit.Pid == pid && hit.Tgid == tgid && hit.Comm == commKey) return hit.Task;
        var described = DescribeAtEventNow(task, pid, tgid, comm);
        if (comm.Length >= 16)
        {
            if (_batch.Count >= _limits.MaxTracedTasks) _batch.Clear();
            _batch[task] = new BatchEntry(pid, tgid, commKey, described);
        }
        return described;
    }

    /// <summary>Forgets what this batch read about <paramref name="task"/> (its mm and name change at exec).</summary>
    public void Forget(ulong task) => _batch.Remove(task);

    private readonly record struct BatchEntry(int Pid, int Tgid, UInt128 Comm, TracedTask Task);

    private TracedTask DescribeAtEventNow(ulong task, int pid, int tgid, ReadOnlySpan<byte> comm)
    {
        string name = CString(comm);
        var now = DescribeNow(task);
        if (now is not null && now.Pid == pid)
        {
            var atEvent = now with { Tgid = tgid, Comm = name };
            if (_lastDescribed.Count >= _limits.MaxTracedTasks) _lastDescribed.Clear();
            _lastDescribed[task] = atEvent;
            return atEvent;
        }
        if (_lastDescribed.TryGetValue(task, out var seen) && seen.Pid == pid) return seen with { Tgid = tgid, Comm = name };
        return new TracedTask(task, pid, tgid, name, 0, null, 0);
    }

    private TracedTask? DescribeNow(ulong task)
    {
        var t = _kernel.Offsets.Task;
        if (!TryI32(task + (ulong)t.Pid, out int pid) || !TryI32(task + (ulong)t.Tgid, out int tgid)) return null;
        Span<byte> comm = stackalloc byte[Math.Clamp(t.CommSize, 1, 64)];
        string name = _space.Read(task + (ulong)t.Comm, comm) == comm.Length ? CString(comm) : "?";
        int ppid = 0;
        if (_space.TryReadUInt64(task + (ulong)t.RealParent, out ulong parent) && parent != 0) TryI32(parent + (ulong)t.Tgid, out ppid);
        uint? uid = null;
        if (_space.TryReadUInt64(task + (ulong)t.RealCred, out ulong cred) && cred != 0 && TryU32(cred + (ulong)_kernel.Offsets.CredUid, out uint u)) uid = u;
        _space.TryReadUInt64(task + (ulong)t.Mm, out ulong mm);
        return new TracedTask(task, pid, tgid, name, ppid, uid, mm);
    }

    /// <summary>
    /// A process's argv as the kernel placed it at exec: NUL-separated strings between mm->arg_start and arg_end (BTF),
    /// read from the new program's stack. Bounded by MaxTraceArgvBytes/MaxTraceArgvEntries; null when unreadable.
    /// </summary>
    public IReadOnlyList<string>? ReadArgvFromMm(ulong mm)
    {
        if (mm == 0 || _mmArgStart is not { } startOff || _mmArgEnd is not { } endOff) return null;
        if (!_space.TryReadUInt64(mm + (ulong)startOff, out ulong start) || !_space.TryReadUInt64(mm + (ulong)endOff, out ulong end) || end <= start) return null;
        int length = (int)Math.Min(end - start, (ulong)_limits.MaxTraceArgvBytes);
        var bytes = new byte[length];
        int got = ReadUser(mm, start, bytes);
        if (got <= 0) return null;
        var list = new List<string>();
        foreach (var part in new ReadOnlySpan<byte>(bytes, 0, got).Split((byte)0))
        {
            if (list.Count >= _limits.MaxTraceArgvEntries) break;
            list.Add(Encoding.UTF8.GetString(new ReadOnlySpan<byte>(bytes, 0, got)[part]));
        }
        if (list.Count > 0 && list[^1].Length == 0) list.RemoveAt(list.Count - 1);   // the final NUL
        return list;
    }

    /// <summary>The program a process runs: mm->exe_file's path, from kernel data.</summary>
    public string? ExePath(ulong mm)
    {
        if (mm == 0 || _kernel.Offsets.Mm.ExeFile is not { } exeOffset || !_space.TryReadUInt64(mm + (ulong)exeOffset, out ulong file) || file == 0) return null;
        return new Periscope.Linux.Model.PathResolver(_kernel.Reader, _kernel.Offsets, _limits, _kernel.Diagnostics).FilePath(file);
    }

    /// <summary>Forgets cached user page-table translations and the tasks read for the last batch of records: the
    /// guest changes them as it runs.</summary>
    public void FlushUserSpaces()
    {
        _userSpaces.Clear();
        _batch.Clear();
    }

    /// <summary>A NUL-terminated string from a process's memory, at most MaxTraceStringBytes; null when unmapped.</summary>
    public string? ReadUserString(ulong mm, ulong address, out bool truncated)
    {
        truncated = false;
        if (address == 0 || UserSpace(mm) is not { } space) return null;
        var bytes = new List<byte>(64);
        Span<byte> chunk = stackalloc byte[256];
        ulong at = address;
        while (bytes.Count < _limits.MaxTraceStringBytes)
        {
            // Never read across a page boundary in one go: the next page may be unmapped while this one holds the NUL.
            int want = (int)Math.Min((ulong)chunk.Length, 0x1000 - (at & 0xfff));
            want = Math.Min(want, _limits.MaxTraceStringBytes - bytes.Count);
            int got = space.Read(at, chunk[..want]);
            if (got <= 0) return bytes.Count == 0 ? null : Encoding.UTF8.GetString([.. bytes]);
            int nul = chunk[..got].IndexOf((byte)0);
            if (nul >= 0) { bytes.AddRange(chunk[..nul]); return Encoding.UTF8.GetString([.. bytes]); }
            bytes.AddRange(chunk[..got]);
            at += (ulong)got;
        }
        truncated = true;
        return Encoding.UTF8.GetString([.. bytes]);
    }

    public int ReadUser(ulong mm, ulong address, Span<byte> buffer) => UserSpace(mm) is { } space ? space.Read(address, buffer) : 0;

    public bool TryReadUserU64(ulong mm, ulong address, out ulong value)
    {
        value = 0;
        return UserSpace(mm) is { } space && space.TryReadUInt64(address, out value);
    }

    private AddressSpace? UserSpace(ulong mm)
    {
        if (mm == 0) return null;
        if (_userSpaces.TryGetValue(mm, out var cached)) return cached;
        if (!_space.TryReadUInt64(mm + (ulong)_kernel.Offsets.Mm.Pgd, out ulong pgd) || !_space.TryTranslate(pgd, out ulong pgdPa)) return null;
        var space = new AddressSpace(_kernel.Physical, pgdPa, _kernel.Layout.Mode);
        if (_userSpaces.Count >= 256) _userSpaces.Clear();
        _userSpaces[mm] = space;
        return space;
    }

    private bool TryI32(ulong va, out int value)
    {
        Span<byte> b = stackalloc byte[4];
        value = 0;
        if (_space.Read(va, b) != 4) return false;
        value = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(b);
        return true;
    }

    private bool TryU32(ulong va, out uint value)
    {
        bool ok = TryI32(va, out int v);
        value = (uint)v;
        return ok;
    }

    private static string CString(ReadOnlySpan<byte> b)
    {
        int n = b.IndexOf((byte)0);
        return Encoding.UTF8.GetString(n < 0 ? b : b[..n]);
    }
}
