using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// init_pid_ns without data symbols (CONFIG_KALLSYMS_ALL=n, Debian's i386 kernels): init_task->thread_pid is the static
/// init_struct_pid, whose numbers[0].ns is the initial namespace. Checked before it is believed: that pid's level is 0
/// (a pid's level is its namespace's), and the namespace's IDR holds the struct pid of pid 1. Reads a handful of words
/// and one bounded xarray walk; null rather than a guess.
/// </summary>
public static class InitPidNamespaceSearch
{
    public const string How = "init_task->thread_pid->numbers[0].ns (its level is 0 and its IDR holds pid 1's struct pid)";

    public static DataAddress? Find(LinuxKernel kernel)
    {
        var l = kernel.Layouts;
        var r = kernel.Reader;
        if (!l.TryOffset("task_struct", "thread_pid", out int threadPid) || !l.TryOffset("pid", "numbers", out int numbers)
            || !l.TryOffset("upid", "ns", out int upidNs) || !l.TryOffset("pid_namespace", "idr.idr_rt.xa_head", out int xaHead))
            return null;
        if (!r.TryPointer(kernel.InitTask + (ulong)threadPid, out ulong initPid) || !r.IsKernelPointer(initPid)
            || !r.TryU32(initPid + PidAbi.PidLevel, out uint level) || level != 0
            || !r.TryPointer(initPid + (ulong)(numbers + upidNs), out ulong ns) || !r.IsKernelPointer(ns))
            return null;
        // pid 1's struct pid, from the task list, must be in the namespace's IDR.
        var init = kernel.Tasks.FirstOrDefault(t => t.Pid == 1);
        if (init is null || !r.TryPointer(init.Address + (ulong)threadPid, out ulong pid1) || !r.TryPointer(ns + (ulong)xaHead, out ulong head))
            return null;
        var xa = kernel.Btf is { } btf ? XArrayReader.Create(r, btf, out _) : XArrayReader.FromAbi(r);
        if (xa is null) return null;
        var entries = xa.Read(head, kernel.Limits.MaxXarrayEntries, "init_pid_ns search", []);
        return entries.Any(e => e.Kind == XArrayEntryKind.Pointer && e.Entry == pid1) ? new DataAddress("init_pid_ns", ns, How) : null;
    }
}
