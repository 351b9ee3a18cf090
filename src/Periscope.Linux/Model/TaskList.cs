using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Walks init_task.tasks (thread-group leaders only) and each leader's thread list. Every walk is bounded by the
/// limits object and detects cycles; a broken link ends the walk with a diagnostic.
/// </summary>
public sealed class TaskList(GuestReader reader, KernelOffsets offsets, ulong initTask, IntrospectionLimits limits, Diagnostics diagnostics, PathResolver paths, ListWalker lists)
{
    private readonly TaskOffsets _t = offsets.Task;

    public IReadOnlyList<LinuxTask> Read()
    {
        var result = new List<LinuxTask>();
        foreach (ulong task in lists.Walk(initTask + (ulong)_t.Tasks, _t.Tasks, limits.MaxTasks, "task list"))
        {
            var t = ReadTask(task);
            if (t is not null) result.Add(t);
        }
        return result;
    }

    private LinuxTask? ReadTask(ulong task)
    {
        if (!reader.TryI32(task + (ulong)_t.Pid, out int pid) || !reader.TryI32(task + (ulong)_t.Tgid, out int tgid))
        {
            diagnostics.Report("task", "unreadable task_struct", task);
            return null;
        }
        string comm = reader.ReadFixedString(task + (ulong)_t.Comm, _t.CommSize) ?? "?";
        reader.TryU32(task + (ulong)_t.Flags, out uint flags);
        int ppid = 0;
        if (reader.TryPointer(task + (ulong)_t.RealParent, out ulong parent) && reader.IsKernelPointer(parent))
            reader.TryI32(parent + (ulong)_t.Pid, out ppid);
        if (pid == 0) ppid = 0;

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

        return new LinuxTask
        {
            Address = task, Pid = pid, Tgid = tgid, ParentPid = ppid, Comm = comm, Flags = flags, State = ReadState(task),
            Uid = uid, Gid = gid, Mm = mm, PgdPhysical = pgdPa, ExePath = exe, Threads = ReadThreads(task, pid, comm),
        };
    }

    private IReadOnlyList<LinuxThread> ReadThreads(ulong leader, int pid, string comm)
    {
        var threads = new List<LinuxThread>();
        IEnumerable<ulong> members;
        if (_t.ThreadGroup is { } tg)
            members = lists.Walk(leader + (ulong)tg, tg, limits.MaxThreadsPerProcess, $"threads of pid {pid}");
        else if (_t.ThreadNode is { } tn && _t.SignalThreadHead is { } th && reader.TryPointer(leader + (ulong)_t.Signal, out ulong signal) && reader.IsKernelPointer(signal))
            members = lists.Walk(signal + (ulong)th, tn, limits.MaxThreadsPerProcess, $"threads of pid {pid}", includeHead: false);
        else
            members = [leader];

        foreach (ulong t in members)
        {
            if (!reader.TryI32(t + (ulong)_t.Pid, out int tid)) { diagnostics.Report("thread", "unreadable thread", t); continue; }
            string name = t == leader ? comm : reader.ReadFixedString(t + (ulong)_t.Comm, _t.CommSize) ?? "?";
            threads.Add(new LinuxThread(t, tid, name, ReadState(t)));
        }
        return threads;
    }

    /// <summary>Mirrors the kernel's task_state_index: the highest reportable state bit picks the letter.</summary>
    private char ReadState(ulong task)
    {
        reader.TryU32(task + (ulong)_t.State, out uint state);
        reader.TryU32(task + (ulong)_t.ExitState, out uint exitState);
        const uint TaskIdle = 0x402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
        if (state == TaskIdle && exitState == 0) return 'I';
        uint report = (state | exitState) & 0x7f;
        if (report == 0) return 'R';
        int index = 32 - System.Numerics.BitOperations.LeadingZeroCount(report);
        return "RSDTtXZP"[Math.Min(index, 7)];
    }
}
