using System.Text;
using Periscope.Linux.Objects;
using Periscope.X86;

namespace Periscope.Linux.Model;

/// <summary>The namespaces /proc/PID/ns lists, in its order.</summary>
public enum NamespaceType
{
    Cgroup, Ipc, Mnt, Net, Pid, PidForChildren, Time, TimeForChildren, User, Uts,
}

/// <summary>One namespace link: its type and inode number, as <c>readlink /proc/PID/ns/TYPE</c> shows them.</summary>
public readonly record struct NamespaceLink(NamespaceType Type, ulong Inode, ulong Address)
{
    /// <summary>The file name under /proc/PID/ns: cgroup, ipc, mnt, net, pid, pid_for_children, time, time_for_children, user, uts.</summary>
    public string ProcName => ProcNameOf(Type);

    public static string ProcNameOf(NamespaceType type) => type switch
    {
        NamespaceType.PidForChildren => "pid_for_children",
        NamespaceType.TimeForChildren => "time_for_children",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>The link text: <c>net:[4026531840]</c> (pid_for_children and time_for_children show pid and time).</summary>
    public override string ToString()
    {
        string kind = Type switch { NamespaceType.PidForChildren => "pid", NamespaceType.TimeForChildren => "time", _ => ProcName };
        return $"{kind}:[{Inode}]";
    }
}

/// <summary>Credentials as /proc/PID/status shows them (Uid, Gid lines: real, effective, saved, fs; Cap* lines).</summary>
public sealed record ProcessCredentials(uint Uid, uint Euid, uint Suid, uint Fsuid, uint Gid, uint Egid, uint Sgid, uint Fsgid,
    ulong CapInheritable, ulong CapPermitted, ulong CapEffective, ulong CapBounding, ulong CapAmbient);

/// <summary>
/// Bytes of a process's own memory between two addresses the kernel recorded (mm->arg_start..arg_end,
/// env_start..env_end), read through the process's page tables. Pages that are not resident (swapped out, never
/// touched, or not in the dump) are listed in <see cref="Missing"/>, never guessed.
/// </summary>
public sealed record ProcessMemoryText(byte[] Bytes, IReadOnlyList<(int Offset, int Length)> Missing, long DeclaredLength)
{
    /// <summary>Marker put where bytes were not resident.</summary>
    public const string NotResidentMarker = "[not resident]";

    /// <summary>True when every byte was read and nothing was cut by MaxProcessArgBytes.</summary>
    public bool IsComplete => Missing.Count == 0 && DeclaredLength == Bytes.Length;

    /// <summary>The NUL-separated strings (as /proc/PID/cmdline and environ hold them), the trailing NUL dropped;
    /// a run of missing bytes becomes <see cref="NotResidentMarker"/> inside the string it falls in.</summary>
    public IReadOnlyList<string> Strings()
    {
        var result = new List<string>();
        var current = new StringBuilder();
        int missingIndex = 0;
        var pending = new List<byte>();
        void Flush() { if (pending.Count > 0) { current.Append(Encoding.UTF8.GetString(pending.ToArray())); pending.Clear(); } }
        for (int i = 0; i < Bytes.Length; i++)
        {
            if (missingIndex < Missing.Count && i == Missing[missingIndex].Offset)
            {
                Flush();
                current.Append(NotResidentMarker);
                i += Missing[missingIndex].Length - 1;
                missingIndex++;
                continue;
            }
            if (Bytes[i] == 0)
            {
                Flush();
                result.Add(current.ToString());
                current.Clear();
            }
            else pending.Add(Bytes[i]);
        }
        Flush();
        if (current.Length > 0) result.Add(current.ToString());
        if (DeclaredLength > Bytes.Length) result.Add($"[cut at {Bytes.Length} of {DeclaredLength} bytes]");
        return result;
    }
}

/// <summary>What `ps --full` shows of one process beyond the task list: its command line and environment from its own
/// memory, start time, credentials and capabilities, namespaces, cgroup and container id.</summary>
public sealed record ProcessDetails
{
    public required LinuxTask Task { get; init; }
    public ProcessMemoryText? CommandLine { get; init; }
    public ProcessMemoryText? Environment { get; init; }
    /// <summary>task->start_time: CLOCK_MONOTONIC ns when the task started.</summary>
    public ulong? StartTimeNs { get; init; }
    /// <summary>task->start_boottime: CLOCK_BOOTTIME ns (includes suspend); /proc/PID/stat field 22 is this in clock ticks.</summary>
    public ulong? StartBootTimeNs { get; init; }
    public ProcessCredentials? Credentials { get; init; }
    public IReadOnlyList<NamespaceLink> Namespaces { get; init; } = [];
    /// <summary>The cgroup v2 path, as /proc/PID/cgroup's "0::PATH" line shows it (from the root cgroup namespace).</summary>
    public string? CgroupPath { get; init; }
    /// <summary>A container runtime's id found in the cgroup path (64 hex digits: docker, containerd, CRI-O, podman).</summary>
    public string? ContainerId { get; init; }
    /// <summary>What could not be read, one line each.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>USER_HZ on x86 (the unit of /proc/PID/stat times): a fixed part of the ABI, not in BTF.</summary>
    public const int UserHz = 100;

    /// <summary>/proc/PID/stat field 22 (starttime): start_boottime in clock ticks of 1/USER_HZ s.</summary>
    public ulong? StartTicks => StartBootTimeNs / (1_000_000_000UL / UserHz);

    public static string? ContainerIdOf(string? cgroupPath)
    {
        if (cgroupPath is null) return null;
        foreach (var component in cgroupPath.Split('/'))
        {
            // docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, or a bare <id>.
            string c = component.EndsWith(".scope", StringComparison.Ordinal) ? component[..^6] : component;
            int dash = c.LastIndexOf('-');
            string candidate = dash >= 0 ? c[(dash + 1)..] : c;
            if (candidate.Length == 64 && candidate.All(char.IsAsciiHexDigitLower)) return candidate;
        }
        return null;
    }
}

/// <summary>Reads <see cref="ProcessDetails"/> through the typed object API (every layout from BTF).</summary>
public sealed class ProcessDetailsReader(LinuxKernel kernel)
{
    private const int PageSize = 4096;
    /// <param name="withEnvironment">Read the environment too (it may hold secrets; read only when asked for).</param>
    public ProcessDetails Read(LinuxTask task, bool withEnvironment)
    {
        var problems = new List<string>();
        var t = kernel.Object("task_struct", task.Address);
        T? Try<T>(string what, Func<T?> read) where T : class
        {
            try { return read(); }
            catch (ObjectFaultException e) { problems.Add($"{what}: {e.Message}"); return null; }
        }
        ulong? Num(string member) => t.HasMember(member) ? Try(member, () => (object)t[member].ReadUInt64()) as ulong? : null;

        ProcessMemoryText? cmdline = null, environ = null;
        if (task.Mm != 0 && !task.IsKernelThread && kernel.GetAddressSpace(task) is { } space)
        {
            var mm = kernel.Object("mm_struct", task.Mm);
            cmdline = Try("cmdline", () => ReadRange(space, mm["arg_start"].ReadUInt64(), mm["arg_end"].ReadUInt64()));
            if (withEnvironment) environ = Try("environ", () => ReadRange(space, mm["env_start"].ReadUInt64(), mm["env_end"].ReadUInt64()));
        }
        var creds = Try("credentials", () => Credentials(t["real_cred"].Deref()));
        var namespaces = Namespaces(task);
        string? cgroup = Try<string>("cgroup", () => CgroupPath(t));
        return new ProcessDetails
        {
            Task = task, CommandLine = cmdline, Environment = environ,
            StartTimeNs = Num("start_time"), StartBootTimeNs = Num("start_boottime") ?? Num("real_start_time"),
            Credentials = creds, Namespaces = namespaces, CgroupPath = cgroup, ContainerId = ProcessDetails.ContainerIdOf(cgroup),
            Problems = problems,
        };
    }

    /// <summary>[start, end) of the process's memory, page by page, capped by MaxProcessArgBytes before allocating.</summary>
    private ProcessMemoryText ReadRange(AddressSpace space, ulong start, ulong end)
    {
        long declared = end > start ? (long)Math.Min(end - start, (ulong)long.MaxValue) : 0;
        int length = (int)Math.Min(declared, kernel.Limits.MaxProcessArgBytes);
        var bytes = new byte[length];
        var missing = new List<(int, int)>();
        var reader = new GuestReader(space, kernel.Limits, kernel.Budget);
        for (int off = 0; off < length;)
        {
            ulong at = start + (ulong)off;
            int chunk = (int)Math.Min(length - off, PageSize - (int)(at % PageSize));
            int got = reader.Read(at, bytes.AsSpan(off, chunk));
            if (got != chunk)
            {
                if (missing.Count > 0 && missing[^1].Item1 + missing[^1].Item2 == off)
                    missing[^1] = (missing[^1].Item1, missing[^1].Item2 + chunk);
                else missing.Add((off, chunk));
            }
            off += chunk;
        }
        return new ProcessMemoryText(bytes, missing, declared);
    }

    private static ProcessCredentials Credentials(KernelObject cred)
    {
        uint Id(string member) => (uint)cred[member]["val"].ReadUInt64();
        // kernel_cap_t is { __u32 cap[2] } up to 6.2 and { u64 val } since 6.3: 8 bytes, low word first, either way.
        ulong Cap(string member)
        {
            var bytes = cred[member].ReadBytes();
            return bytes.Length >= 8 ? BitConverter.ToUInt64(bytes, 0) : bytes.Length >= 4 ? BitConverter.ToUInt32(bytes, 0) : 0;
        }
        return new ProcessCredentials(Id("uid"), Id("euid"), Id("suid"), Id("fsuid"), Id("gid"), Id("egid"), Id("sgid"), Id("fsgid"),
            Cap("cap_inheritable"), Cap("cap_permitted"), Cap("cap_effective"), Cap("cap_bset"),
            cred.HasMember("cap_ambient") ? Cap("cap_ambient") : 0);
    }

    /// <summary>The task's namespace links as /proc/PID/ns shows them (only pid and user for an exited task).</summary>
    public IReadOnlyList<NamespaceLink> Namespaces(LinuxTask task) => NamespaceLinks.Read(task.Address);

    /// <summary>The namespace links' reader (BTF or inferred offsets).</summary>
    public NamespaceReader NamespaceLinks => _namespaces ??= new NamespaceReader(kernel);
    private NamespaceReader? _namespaces;

    /// <summary>task->cgroups->dfl_cgrp->kn, names joined up to the root (whose kernfs name is empty), as "/a/b".</summary>
    private string? CgroupPath(KernelObject task)
    {
        if (!task.HasMember("cgroups") || !task["cgroups"].TryDeref(out var cssSet) || !cssSet.HasMember("dfl_cgrp")) return null;
        if (!cssSet["dfl_cgrp"].TryDeref(out var cgroup) || !cgroup["kn"].TryDeref(out var kn)) return null;
        var names = new List<string>();
        // kernfs_node.parent became __parent in 6.15 (RCU-protected since; the same pointer).
        string parentMember = kn.HasMember("parent") ? "parent" : "__parent";
        for (int depth = 0; depth < kernel.Limits.MaxPathComponents; depth++)
        {
            if (!kn[parentMember].TryDeref(out var parent)) // the root: its name is the hierarchy's, not part of the path
                return "/" + string.Join('/', Enumerable.Reverse(names));
            names.Add(kn["name"].ReadString(kernel.Limits.MaxStringLength));
            kn = parent;
        }
        throw new ObjectFaultException($"cgroup path of task 0x{task.Address:x}: more than MaxPathComponents = {kernel.Limits.MaxPathComponents} levels (a cycle?)", task.Address);
    }
}
