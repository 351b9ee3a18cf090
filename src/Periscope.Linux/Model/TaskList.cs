using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Walks init_task.tasks (thread-group leaders only) and each leader's thread list. Every walk is bounded by the
/// limits object and detects cycles; a broken link ends the walk with a diagnostic. Tasks and threads are drawn from
/// the kernel's work budget in total, and a thread may appear in one thread list only: lists that share nodes (a
/// corruption that would multiply threads by the number of tasks) end at the first node already seen.
/// </summary>
public sealed class TaskList(GuestReader reader, KernelOffsets offsets, ulong initTask, IntrospectionLimits limits, Diagnostics diagnostics, PathResolver paths, ListWalker lists, TaskNames? names = null)
{
    private readonly TaskOffsets _t = offsets.Task;

    /// <summary>
    /// One task that is not on the task list (a CPU's idle task), read like a listed one, its threads included;
    /// null with an incomplete diagnostic when it is unreadable or no task_struct.
    /// </summary>
    public LinuxTask? ReadOne(ulong task) => ReadTask(task, []);

    private string Name(ulong task, int pid, string comm, uint flags) => names?.ProcName(task, pid, comm, flags) ?? comm;

    public IReadOnlyList<LinuxTask> Read()
    {
        var result = new List<LinuxTask>();
        var threadsSeen = new Dictionary<ulong, int>();
        foreach (ulong task in lists.Walk(initTask + (ulong)_t.Tasks, _t.Tasks, limits.MaxTasks, "task list", budget: WorkKind.TaskNodes))
        {
            var t = ReadTask(task, threadsSeen);
            if (t is not null) result.Add(t);
        }
        return result;
    }

    private LinuxTask? ReadTask(ulong task, Dictionary<ulong, int> threadsSeen)
    {
        if (!reader.TryI32(task + (ulong)_t.Pid, out int pid) || !reader.TryI32(task + (ulong)_t.Tgid, out int tgid))
        {
            diagnostics.ReportIncomplete("task", "unreadable task_struct", task);
            return null;
        }
        if (!IsPlausiblePid(pid) || !IsPlausiblePid(tgid))
        {
            // Random bytes over a task_struct: listing it would invent a process.
            diagnostics.ReportIncomplete("task", $"implausible pid {pid} / tgid {tgid} (PID_MAX_LIMIT = {KernelMacros.PID_MAX_LIMIT}): not a task_struct", task);
            return null;
        }
        string comm = reader.ReadFixedString(task + (ulong)_t.Comm, _t.CommSize) ?? "?";
        reader.TryU32(task + (ulong)_t.Flags, out uint flags);
        reader.TryU32(task + (ulong)_t.ExitState, out uint exitState);
        // /proc's PPid is the tgid of real_parent (task_tgid_nr_ns(rcu_dereference(p->real_parent))), not its pid:
        // a child forked by a secondary thread has that thread as real_parent.
        int ppid = 0;
        if (pid != 0 && reader.TryPointer(task + (ulong)_t.RealParent, out ulong parent) && reader.IsKernelPointer(parent)
            && !(reader.TryI32(parent + (ulong)_t.Tgid, out ppid) && IsPlausiblePid(ppid)))
        {
            diagnostics.Report("task", $"pid {pid}: real_parent 0x{parent:x} has no readable, plausible tgid", task);
            ppid = 0;
        }

        uint? uid = null, gid = null;
        if (reader.TryPointer(task + (ulong)_t.RealCred, out ulong cred) && reader.IsKernelPointer(cred))
        {
            if (reader.TryU32(cred + (ulong)offsets.CredUid, out uint u)) uid = u;
            if (reader.TryU32(cred + (ulong)offsets.CredGid, out uint g)) gid = g;
        }

        reader.TryPointer(task + (ulong)_t.Mm, out ulong mm);
        ulong? pgdPa = null;
        string? exe = null;
        if (mm != 0)
        {
            if (!reader.IsKernelPointer(mm)) { diagnostics.Report("task", $"pid {pid}: mm 0x{mm:x} is not a kernel pointer", task); mm = 0; }
            else
            {
                if (reader.TryPointer(mm + (ulong)offsets.Mm.Pgd, out ulong pgd) && reader.Space.TryTranslate(pgd, out ulong pa)) pgdPa = pa;
                if (offsets.Mm.ExeFile is { } exeOff && reader.TryPointer(mm + (ulong)exeOff, out ulong file) && file != 0)
                    exe = paths.FilePath(file);
            }
        }

        string name = Name(task, pid, comm, flags);
        return new LinuxTask
        {
            Address = task, Pid = pid, Tgid = tgid, ParentPid = ppid, Comm = comm, Name = name, Flags = flags, State = ReadState(task),
            Uid = uid, Gid = gid, Mm = mm, PgdPhysical = pgdPa, ExePath = exe, ExitState = exitState,
            Threads = ReadThreads(task, pid, comm, name, threadsSeen),
        };
    }

    private static bool IsPlausiblePid(int pid) => pid is >= 0 and <= KernelMacros.PID_MAX_LIMIT;

    private IReadOnlyList<LinuxThread> ReadThreads(ulong leader, int pid, string comm, string leaderName, Dictionary<ulong, int> threadsSeen)
    {
        var threads = new List<LinuxThread>();
        IEnumerable<ulong> members;
        if (_t.ThreadGroup is { } tg)
            members = lists.Walk(leader + (ulong)tg, tg, limits.MaxThreadsPerProcess, $"threads of pid {pid}", budget: WorkKind.Threads);
        else if (_t.ThreadNode is { } tn && _t.SignalThreadHead is { } th && reader.TryPointer(leader + (ulong)_t.Signal, out ulong signal) && reader.IsKernelPointer(signal))
            members = lists.Walk(signal + (ulong)th, tn, limits.MaxThreadsPerProcess, $"threads of pid {pid}", includeHead: false, budget: WorkKind.Threads);
        else
            members = [leader];

        foreach (ulong t in members)
        {
            if (threadsSeen.TryGetValue(t, out int owner) && t != leader)
            {
                diagnostics.ReportIncomplete($"threads of pid {pid}", $"thread 0x{t:x} is already listed under pid {owner}: thread lists share nodes", t);
                break;
            }
            threadsSeen[t] = pid;
            if (!reader.TryI32(t + (ulong)_t.Pid, out int tid) || !IsPlausiblePid(tid)) { diagnostics.ReportIncomplete("thread", "unreadable thread or implausible tid", t); continue; }
            string threadComm = comm, name = leaderName;
            if (t != leader)
            {
                threadComm = reader.ReadFixedString(t + (ulong)_t.Comm, _t.CommSize) ?? "?";
                reader.TryU32(t + (ulong)_t.Flags, out uint flags);
                name = Name(t, tid, threadComm, flags);
            }
            threads.Add(new LinuxThread(t, tid, threadComm, ReadState(t), name == threadComm ? null : name));
        }
        return threads;
    }

    /// <summary>Mirrors the kernel's task_state_index: the highest reportable state bit picks the letter.</summary>
    private char ReadState(ulong task)
    {
        reader.TryU32(task + (ulong)_t.State, out uint state);
        reader.TryU32(task + (ulong)_t.ExitState, out uint exitState);
        if (state == KernelMacros.TASK_IDLE && exitState == 0) return KernelMacros.TaskStateLetters[^1];
        uint report = (state | exitState) & KernelMacros.TASK_REPORT;
        int index = 32 - System.Numerics.BitOperations.LeadingZeroCount(report); // 0 when running
        return KernelMacros.TaskStateLetters[Math.Min(index, KernelMacros.TaskStateLetters.Length - 2)];
    }
}
