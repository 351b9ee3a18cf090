using System.Text;
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

/// <summary>Reads <see cref="ProcessDetails"/> through <see cref="MemberOffsets"/> (BTF, or the offsets inferred without
/// it) and the guest reader: one code path for both. What this kernel's offsets cannot give is listed once in
/// <see cref="Unavailable"/>; what one process's data does not give is in its <see cref="ProcessDetails.Problems"/>.</summary>
public sealed class ProcessDetailsReader(LinuxKernel kernel)
{
    private const int PageSize = 4096;
    // ProcessCredentials' order: uid, euid, suid, fsuid, gid, egid, sgid, fsgid; then the capability sets.
    private static readonly string[] IdMembers = ["uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid"];
    private static readonly string[] CapMembers = ["cap_inheritable", "cap_permitted", "cap_effective", "cap_bset"];

    private GuestReader R => kernel.Reader;
    private Layout L => _layout ??= Layout.Of(kernel);
    private Layout? _layout;

    /// <summary>The parts of `ps --full` this kernel's offsets cannot give (empty with BTF), one line each.</summary>
    public IReadOnlyList<string> Unavailable => L.Unavailable;

    /// <summary>The offsets every process's details are read with, looked up once.</summary>
    private sealed record Layout(int? ArgStart, int? ArgEnd, int? EnvStart, int? EnvEnd, int? RealCred, int[]? Ids, int[]? Caps, int? CapAmbient,
        int? StartTime, int? StartBootTime, int? Cgroups, int? DflCgrp, int? Kn, int? KnName, int? KnParent, IReadOnlyList<string> Unavailable)
    {
        public static Layout Of(LinuxKernel kernel)
        {
            var layouts = kernel.Layouts;
            var unavailable = new List<string>();
            MemberOffsets b = new(layouts);
            void Check(string area, MemberOffsets m) { if (m.Missing.Count > 0) unavailable.Add($"{area}: {MemberOffsets.Lacks(m)}"); }

            var mm = new MemberOffsets(layouts);
            int? argStart = mm.Offset("mm_struct", "arg_start"), argEnd = mm.Offset("mm_struct", "arg_end");
            int? envStart = mm.Offset("mm_struct", "env_start"), envEnd = mm.Offset("mm_struct", "env_end");
            Check("cmdline and environ", mm);
            var cred = new MemberOffsets(layouts);
            int? realCred = cred.Offset("task_struct", "real_cred");
            var ids = IdMembers.Select(n => cred.Offset("cred", n)).ToArray();
            var caps = CapMembers.Select(n => cred.Offset("cred", n)).ToArray();
            Check("credentials", cred);
            // start_boottime since 5.5 (real_start_time before); a member only some kernels have is no gap with BTF.
            int? startTime = b.Optional("task_struct", "start_time");
            int? bootTime = b.Optional("task_struct", "start_boottime") ?? b.Optional("task_struct", "real_start_time");
            if (!layouts.FromBtf)
            {
                // Without BTF the start times are inferred only when asked (timeline's rules: attach does not pay for them).
                var inferred = TimelineLayout.For(kernel);
                (startTime, bootTime) = (inferred.StartTime, inferred.StartTimeEvidence?.StartBootTime);
                if (startTime is null || bootTime is null)
                    unavailable.Add($"start time: {inferred.StartTimeMissing ?? "task_struct.start_boottime not inferred (no BTF)"}");
            }
            // The cgroup v2 path: task->cgroups->dfl_cgrp->kn; kernels without CONFIG_CGROUPS have no task->cgroups.
            int? cgroups = b.Optional("task_struct", "cgroups"), dfl = b.Optional("css_set", "dfl_cgrp"), kn = b.Optional("cgroup", "kn");
            int? knName = b.Optional("kernfs_node", "name");
            // kernfs_node.parent became __parent in 6.15 (KernelMacros.KernfsParentRenamedSince: RCU-protected since, the same
            // pointer). The release names the member; BTF, when the kernel has it, is taken at its word for a kernel that
            // backported the rename (KernelMacros.ConfirmKernfsParent warns about that at open).
            string parentName = KernelMacros.KernfsParentMember(LinuxKernel.ReleaseVersion(kernel.Release));
            int? knParent = b.Optional("kernfs_node", parentName) ?? (layouts.FromBtf ? b.Optional("kernfs_node", KernelMacros.OtherKernfsParentMember(parentName)) : null);
            if (!layouts.FromBtf && (cgroups is null || dfl is null || kn is null || knName is null || knParent is null))
            {
                var missing = new (string Name, int? Offset)[] { ("task_struct.cgroups", cgroups), ("css_set.dfl_cgrp", dfl), ("cgroup.kn", kn), ("kernfs_node.name", knName), ($"kernfs_node.{parentName}", knParent) };
                unavailable.Add($"cgroup: not inferred (no BTF): {string.Join(", ", missing.Where(m => m.Offset is null).Select(m => m.Name))}");
            }
            return new Layout(argStart, argEnd, envStart, envEnd, realCred,
                ids.All(i => i is not null) ? ids.Select(i => i!.Value).ToArray() : null, caps.All(c => c is not null) ? caps.Select(c => c!.Value).ToArray() : null,
                b.Optional("cred", "cap_ambient"), startTime, bootTime, cgroups, dfl, kn, knName, knParent, unavailable);
        }
    }

    /// <param name="withEnvironment">Read the environment too (it may hold secrets; read only when asked for).</param>
    public ProcessDetails Read(LinuxTask task, bool withEnvironment)
    {
        var problems = new List<string>();
        var l = L;
        ulong? U64(string what, int? offset)
        {
            if (offset is not { } o) return null;
            if (R.TryU64(task.Address + (ulong)o, out ulong v)) return v;
            problems.Add($"{what}: task 0x{task.Address:x} is unreadable at +0x{o:x}");
            return null;
        }

        ProcessMemoryText? cmdline = null, environ = null;
        if (task.Mm != 0 && !task.IsKernelThread && kernel.GetAddressSpace(task) is { } space)
        {
            cmdline = Range("cmdline", space, task.Mm, l.ArgStart, l.ArgEnd, problems);
            if (withEnvironment) environ = Range("environ", space, task.Mm, l.EnvStart, l.EnvEnd, problems);
        }
        var creds = Credentials(task.Address, l, problems);
        var namespaces = Namespaces(task);
        string? cgroup = CgroupPath(task.Address, l, problems);
        return new ProcessDetails
        {
            Task = task, CommandLine = cmdline, Environment = environ,
            StartTimeNs = U64("start_time", l.StartTime), StartBootTimeNs = U64("start_boottime", l.StartBootTime),
            Credentials = creds, Namespaces = namespaces, CgroupPath = cgroup, ContainerId = ProcessDetails.ContainerIdOf(cgroup),
            Problems = problems,
        };
    }

    /// <summary>mm->start..mm->end of the process's memory; null (the offsets unknown, or the mm unreadable: a problem).</summary>
    private ProcessMemoryText? Range(string what, AddressSpace space, ulong mm, int? startAt, int? endAt, List<string> problems)
    {
        if (startAt is not { } s || endAt is not { } e) return null;
        if (!R.TryULong(mm + (ulong)s, out ulong start) || !R.TryULong(mm + (ulong)e, out ulong end))
        {
            problems.Add($"{what}: mm_struct 0x{mm:x} is unreadable");
            return null;
        }
        return ReadRange(space, start, end);
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

    private ProcessCredentials? Credentials(ulong task, Layout l, List<string> problems)
    {
        if (l.RealCred is not { } rc || l.Ids is not { } ids || l.Caps is not { } caps) return null;
        if (!R.TryPointer(task + (ulong)rc, out ulong cred) || cred == 0)
        {
            problems.Add($"credentials: task 0x{task:x}: real_cred is unreadable or NULL");
            return null;
        }
        var id = new uint[ids.Length];
        // kernel_cap_t is { __u32 cap[2] } up to 6.2 and { u64 val } since 6.3: 8 bytes, low word first, either way.
        var cap = new ulong[caps.Length + 1];
        bool ok = true;
        for (int i = 0; i < ids.Length; i++) ok &= R.TryU32(cred + (ulong)ids[i], out id[i]);
        for (int i = 0; i < caps.Length; i++) ok &= R.TryU64(cred + (ulong)caps[i], out cap[i]);
        if (l.CapAmbient is { } amb) ok &= R.TryU64(cred + (ulong)amb, out cap[^1]);
        if (!ok)
        {
            problems.Add($"credentials: cred 0x{cred:x} is unreadable");
            return null;
        }
        return new ProcessCredentials(id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], cap[0], cap[1], cap[2], cap[3], cap[4]);
    }

    /// <summary>The task's namespace links as /proc/PID/ns shows them (only pid and user for an exited task).</summary>
    public IReadOnlyList<NamespaceLink> Namespaces(LinuxTask task) => NamespaceLinks.Read(task.Address);

    /// <summary>The namespace links' reader (BTF or inferred offsets).</summary>
    public NamespaceReader NamespaceLinks => _namespaces ??= new NamespaceReader(kernel);
    private NamespaceReader? _namespaces;

    /// <summary>task->cgroups->dfl_cgrp->kn, names joined up to the root (whose kernfs name is empty), as "/a/b".</summary>
    private string? CgroupPath(ulong task, Layout l, List<string> problems)
    {
        if (l.Cgroups is not { } cgroups || l.DflCgrp is not { } dfl || l.Kn is not { } knAt || l.KnName is not { } nameAt || l.KnParent is not { } parentAt)
            return null;
        if (!R.TryPointer(task + (ulong)cgroups, out ulong cssSet) || cssSet == 0 || !R.TryPointer(cssSet + (ulong)dfl, out ulong cgroup) || cgroup == 0
            || !R.TryPointer(cgroup + (ulong)knAt, out ulong kn) || kn == 0)
            return null;
        var path = KernfsPath.Read(R, kn, parentAt, nameAt, kernel.Limits.MaxPathComponents);
        if (path.Problem is { } problem) problems.Add($"cgroup path of task 0x{task:x}: {problem}");
        return path.Path;
    }
}
