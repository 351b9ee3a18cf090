using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// struct pid rules: task->thread_pid and pid->numbers[0].nr, checked on every listed task and thread (the integrity
/// checks read them to tell a live task from garbage), then the links the pid cross-views walk.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>What the pid rules learned: every listed task and thread with its pid, and its struct pid.</summary>
    private sealed class PidEvidence
    {
        public required List<(ulong Task, int Pid, ulong StructPid)> Tasks { get; init; }
        public required int ThreadPid { get; init; }
        public required int NumbersNr { get; init; }
    }

    private void InferPids(TaskEvidence ev)
    {
        InferThreadPid(ev);
    }

    /// <summary>The pid members a report knows (inferred now or loaded from the cache), each inside its search window;
    /// null when thread_pid and numbers (what every pid view needs) are not both known.</summary>
    private static PidOffsets? PidOffsetsOf(InferenceReport report, int taskWindow, int smallWindow)
    {
        int? Get(string s, string m, int window) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < window ? v : null;
        if (Get(Task, "thread_pid", taskWindow) is not { } threadPid || Get("pid", "numbers", smallWindow) is not { } numbers
            || Get("upid", "nr", 8) is not { } nr)
            return null;
        return new PidOffsets
        {
            ThreadPid = threadPid, Numbers = numbers, UpidNr = nr, NumbersNr = numbers + nr, PidTypePid = PidAbi.PidTypePid,
        };
    }

    /// <summary>Every listed task and thread once (leaders first, in list order), with its pid.</summary>
    private List<(ulong Task, int Pid)> AllTasks(TaskEvidence ev)
    {
        var seen = new HashSet<ulong>();
        var all = new List<(ulong, int)>();
        foreach (ulong leader in ev.AllLeaders)
            foreach (ulong t in ev.Threads.TryGetValue(leader, out var members) ? members.Prepend(leader) : [leader])
            {
                Step();
                if (seen.Add(t) && _r.TryI32(t + (ulong)ev.Pid, out int pid)) all.Add((t, pid));
            }
        return all;
    }

    private PidEvidence? InferThreadPid(TaskEvidence ev)
    {
        var abi = PidAbi.For(_p);
        var all = AllTasks(ev);
        var sample = ev.Leaders.Select(l => (Task: l, Window: TaskWindow(l), Pid: all.FirstOrDefault(x => x.Task == l).Pid)).Where(x => x.Window is not null).ToList();
        // thread_pid: a pointer column, a different struct pid for every task, whose object starts with a count >= 1 and
        // a level <= MAX_PID_NS_LEVEL and holds at one offset N (numbers[0].nr, numbers[0] being the initial namespace's
        // upid) the task's own pid. Seeded on the sampled leaders, then checked on every task and thread.
        var pairs = new List<(int Column, int Numbers)>();
        for (int o = 0; o + _p <= _taskBytes && sample.Count >= 2; o += _p)
        {
            Step(sample.Count);
            var values = new HashSet<ulong>();
            List<int>? numbers = null;
            foreach (var (task, window, pid) in sample)
            {
                ulong v = Word(window!, o);
                if (!IsKernel(v) || (v & (ulong)(_p - 1)) != 0 || !values.Add(v)) { numbers = null; break; }
                byte[]? pw = SmallWindow(v);
                if (pw is null || U32(pw, PidAbi.PidCount) == 0 || U32(pw, PidAbi.PidLevel) > PidAbi.MaxPidNamespaceLevel) { numbers = null; break; }
                var here = new List<int>();
                for (int n = PidAbi.PidLevel + 4; n + abi.UpidNs + _p <= pw.Length; n += 4)
                    if (n % _p == 0 && I32(pw, n) == pid && (numbers is null || numbers.Contains(n))) here.Add(n);
                numbers = here;
                if (numbers.Count == 0) break;
            }
            if (numbers is null) continue;
            foreach (int n in numbers) pairs.Add((o, n));
        }
        // Every task and thread, not only the sample: threads have pids of their own, so a column holding the leader's
        // pid (or a pointer into the group's shared pid) fails here.
        // numbers[0].ns is the initial pid namespace for every task (a task in a child namespace has its own number there
        // in numbers[level]): one kernel pointer, the same in every struct pid (7.x's pidfs inode number repeats the pid
        // near the start of struct pid; no namespace pointer follows it).
        pairs = pairs.Where(pair =>
        {
            ulong? ns = null;
            return all.All(x =>
            {
                Step();
                if (!_r.TryPointer(x.Task + (ulong)pair.Column, out ulong p) || !IsKernel(p)
                    || !_r.TryU32(p + PidAbi.PidLevel, out uint level) || level > PidAbi.MaxPidNamespaceLevel
                    || !_r.TryI32(p + (ulong)pair.Numbers, out int nr) || nr != x.Pid
                    || !_r.TryPointer(p + (ulong)(pair.Numbers + abi.UpidNs), out ulong n) || !IsKernel(n) || (ns ??= n) != n)
                    return false;
                return true;
            });
        }).ToList();
        const string rule = "pointer column, a different object for every task and thread, starting with refcount_t count >= 1 and unsigned int level <= MAX_PID_NS_LEVEL, holding at one offset (numbers[0].nr) the task's own pid followed by one namespace pointer (numbers[0].ns) shared by all";
        int? threadPid = _report.Add(Task, "thread_pid", pairs.Select(x => x.Column).Distinct().ToList(), rule);
        int? numbersNr = threadPid is { } tp ? _report.Add("pid", "numbers", pairs.Where(x => x.Column == tp).Select(x => x.Numbers - abi.UpidNr).ToList(), rule) : null;
        if (threadPid is null || numbersNr is null)
        {
            if (threadPid is null) _report.AddUnknown("pid", "numbers", "needs task_struct.thread_pid");
            _report.AddUnknown("upid", "nr", "needs pid.numbers");
            return null;
        }
        _report.AddStructural("upid", "nr", abi.UpidNr, "struct upid declares int nr first (checked: numbers[0].nr is every task's pid)");
        var tasks = all.Select(x => (x.Task, x.Pid, Ptr(x.Task + (ulong)threadPid.Value))).ToList();
        return new PidEvidence { Tasks = tasks, ThreadPid = threadPid.Value, NumbersNr = numbersNr.Value + abi.UpidNr };
    }
}
