using Periscope.Events.Syscalls;

namespace Periscope.Events;

public enum ProcessEventKind
{
    /// <summary>fork/vfork/clone without CLONE_THREAD returned a child pid in the parent.</summary>
    Fork,
    /// <summary>execve/execveat returned 0: the process now runs <see cref="ProcessEvent.Path"/>.</summary>
    Exec,
    /// <summary>exit_group, or exit of a thread-group leader.</summary>
    Exit,
}

/// <summary>A process start, program change or end, as the syscall stream shows it.</summary>
/// <param name="ParentPid">For Exec, the kernel's real_parent of the process after the exec; for Fork, the forking process.</param>
public sealed record ProcessEvent(ProcessEventKind Kind, long Timestamp, uint Vcpu, int Pid, int ParentPid, uint? Uid, string Comm,
    string? Path, IReadOnlyList<string>? Argv, long? ExitCode, ulong Task);

/// <summary>
/// Process starts and ends from syscall events, and the process tree they imply: a fork adds a child under the forking
/// process, an exec renames it (its parent taken from the kernel's real_parent, so a fork from a thread lands under the
/// thread's process), an exit removes it. Bounded by MaxTracedTasks.
/// </summary>
public sealed class ProcessTracker(int maxProcesses, Tasks.TaskResolver? tasks = null)
{
    private const ulong CloneThread = 0x10000;   // CLONE_THREAD, the clone flag of the x86-64 ABI
    private readonly Dictionary<int, ProcessNode> _tree = [];

    public sealed record ProcessNode(int Pid, int ParentPid, string Name, string? Path, IReadOnlyList<string>? Argv);

    public IReadOnlyDictionary<int, ProcessNode> Tree => _tree;

    /// <summary>The syscalls this tracker needs to see.</summary>
    public static bool Wants(string? name) => name is "execve" or "execveat" or "exit" or "exit_group" or "clone" or "clone3" or "fork" or "vfork";

    public ProcessEvent? Observe(SyscallEvent e)
    {
        if (e.Task is not { } task) return null;
        switch (e.Name)
        {
            case "execve" or "execveat" when e.Return == 0:
            {
                var after = e.ExitTask ?? task;
                var pathArg = e.Arguments.FirstOrDefault(a => a.Kind == ArgumentKind.Path);
                // argv as the kernel copied it onto the new program's stack: the caller's own array is gone with its
                // old address space by the time we read it, and a process cannot fake what exec placed there.
                var argv = tasks?.ReadArgvFromMm(after.Mm) ?? e.Arguments.FirstOrDefault(a => a.Kind == ArgumentKind.Argv)?.Argv;
                string? path = pathArg?.Path ?? tasks?.ExePath(after.Mm);
                Set(new ProcessNode(after.Tgid, after.ParentTgid, after.Comm, path, argv));
                return new ProcessEvent(ProcessEventKind.Exec, e.Timestamp, e.Vcpu, after.Tgid, after.ParentTgid, after.Uid, after.Comm, path, argv, null, after.Address);
            }
            case "fork" or "vfork" or "clone" or "clone3" when e.Return is > 0:
            {
                if (e.Name == "clone" && (e.Raw.A0 & CloneThread) != 0) return null;   // a new thread, not a process
                int child = (int)e.Return.Value;
                _tree.TryGetValue(task.Tgid, out var parent);
                Set(new ProcessNode(child, task.Tgid, task.Comm, parent?.Path, parent?.Argv));
                return new ProcessEvent(ProcessEventKind.Fork, e.Timestamp, e.Vcpu, child, task.Tgid, task.Uid, task.Comm, parent?.Path, null, null, task.Address);
            }
            case "exit_group":
            case "exit" when task.Pid == task.Tgid:
                _tree.Remove(task.Tgid);
                return new ProcessEvent(ProcessEventKind.Exit, e.Timestamp, e.Vcpu, task.Tgid, task.ParentTgid, task.Uid, task.Comm, null, null, (int)e.Raw.A0, task.Address);
            default:
                return null;
        }
    }

    private void Set(ProcessNode node)
    {
        if (_tree.Count >= maxProcesses && !_tree.ContainsKey(node.Pid)) return;
        _tree[node.Pid] = node;
    }
}
