using Periscope.Events.Tasks;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Events.Measurement;

/// <summary>A resident code page whose content differs from its reference (same file, same offset).</summary>
public sealed record CodePageFinding(int Pid, string Comm, string File, ulong FileOffset, ulong VirtualAddress, ulong PhysicalAddress,
    byte[] Expected, byte[] Found, string ReferenceSource, long Timestamp);

/// <summary>Pages measured (hashed and compared or recorded), skipped (not resident when looked at), and caught up
/// (measured at a later syscall after being skipped).</summary>
public readonly record struct MeasurementCounts(long Measured, long Skipped, long CaughtUp, long FirstSeen, long Processes);

/// <summary>
/// Event-triggered measurement of process code (VMPMS, mission.md section 3): right after a process execs, and again at
/// each of its later syscalls, every page of its executable file mappings is looked up in its page tables; pages that
/// are resident and not yet measured at that physical address are hashed (the integrity layer's CodePageHasher) and
/// compared with the baseline's reference for (file, offset), or recorded on first use. A page that is not resident is
/// skipped and measured when a later syscall finds it resident; a page whose physical frame changes (copy-on-write by a
/// debugger-style write) is measured again. Mappings are re-read only after the process's own mmap/munmap/mprotect/
/// mremap/brk/execve calls return.
/// </summary>
public sealed class ExecCodeMeasurer : IDisposable
{
    private const ulong PageBytes = 4096;
    private readonly LinuxKernel _kernel;
    private readonly BaselineStore _store;
    private readonly IntrospectionLimits _limits;
    private readonly Dictionary<(string File, ulong Offset), (byte[] Sha256, string Source)> _references;
    private readonly CodePageHasher _hasher = new();
    private readonly Dictionary<int, ProcessState> _processes = [];
    private readonly List<(string File, ulong Offset, byte[] Sha256)> _firstSeen = [];
    private readonly byte[] _page = new byte[PageBytes];
    private long _measured, _skipped, _caughtUp, _firstSeenCount;

    private sealed class ProcessState(ulong task, ulong mm)
    {
        public ulong Task = task, Mm = mm;
        public IReadOnlyList<Vma>? Vmas;
        public AddressSpace? Space;
        /// <summary>Virtual page → the physical page it was measured at.</summary>
        public readonly Dictionary<ulong, ulong> Measured = [];
        /// <summary>Pages skipped (not resident) at least once and not measured since.</summary>
        public readonly HashSet<ulong> Skipped = [];
        /// <summary>Pages measured after having been skipped (at most the process's code pages).</summary>
        public readonly HashSet<ulong> CaughtUp = [];
    }

    public ExecCodeMeasurer(LinuxKernel kernel, BaselineStore store, IntrospectionLimits limits)
    {
        _kernel = kernel;
        _store = store;
        _limits = limits;
        _references = store.CodePages();
    }

    public MeasurementCounts Counts => new(_measured, _skipped, _caughtUp, _firstSeenCount, _processes.Count);

    /// <summary>The virtual pages of a measured process that were not resident when first looked at and were measured
    /// at a later syscall, once they had become resident; empty for a process not (or no longer) measured.</summary>
    public IReadOnlyCollection<ulong> CaughtUpPages(int tgid) => _processes.TryGetValue(tgid, out var state) ? [.. state.CaughtUp] : [];

    /// <summary>Starts measuring a process that has just exec'd (forgetting what its old program had).</summary>
    public IReadOnlyList<CodePageFinding> OnExec(TracedTask task, long timestamp)
    {
        _processes.Remove(task.Tgid);
        if (_processes.Count >= _limits.MaxTracedTasks) _processes.Clear();
        _processes[task.Tgid] = new ProcessState(task.Address, task.Mm);
        return Measure(task, timestamp);
    }

    /// <summary>At a later syscall of a measured process: pages that became resident or changed frame are measured.</summary>
    public IReadOnlyList<CodePageFinding> OnSyscall(SyscallEvent e)
    {
        if (e.Task is not { } task || !_processes.TryGetValue(task.Tgid, out var state)) return [];
        if (e.Name is "exit_group" || (e.Name is "exit" && task.Pid == task.Tgid))
        {
            _processes.Remove(task.Tgid);
            return [];
        }
        if (e.Name is "mmap" or "munmap" or "mprotect" or "mremap" or "brk" or "execve" or "execveat") state.Vmas = null;
        return Measure(e.ExitTask ?? task, e.Timestamp);
    }

    /// <summary>Writes first-use references to the store (trust on first use, like `verify`).</summary>
    public int Flush()
    {
        if (_firstSeen.Count == 0) return 0;
        int n = _store.AddCodePages(_firstSeen, "first use");
        _firstSeen.Clear();
        return n;
    }

    private List<CodePageFinding> Measure(TracedTask task, long timestamp)
    {
        var findings = new List<CodePageFinding>();
        if (!_processes.TryGetValue(task.Tgid, out var state) || task.Mm == 0) return findings;
        if (state.Mm != task.Mm || state.Space is null || state.Vmas is null)
        {
            if (state.Mm != task.Mm) { state.Measured.Clear(); state.Skipped.Clear(); state.CaughtUp.Clear(); }
            state.Mm = task.Mm;
            state.Task = task.Address;
            if (!_kernel.KernelSpace.TryReadUInt64(task.Mm + (ulong)_kernel.Offsets.Mm.Pgd, out ulong pgd) || !_kernel.KernelSpace.TryTranslate(pgd, out ulong pgdPa)) return findings;
            state.Space = new AddressSpace(_kernel.Physical, pgdPa, _kernel.Layout.Mode);
            var view = new LinuxTask
            {
                Address = task.Address, Pid = task.Pid, Tgid = task.Tgid, ParentPid = task.ParentTgid, Comm = task.Comm, Flags = 0, State = 'R',
                Uid = task.Uid, Gid = null, Mm = task.Mm, PgdPhysical = pgdPa, Threads = [],
            };
            state.Vmas = _kernel.GetVmas(view);
        }
        state.Space.FlushCache();   // page tables change under a running process
        long pagesLeft = _limits.MaxProcessCodePagesPerPass;   // one event's walk is bounded, whatever the mappings say
        foreach (var vma in state.Vmas)
        {
            if (!vma.IsExecutable || vma.File == 0 || vma.End <= vma.Start || ((vma.Start | vma.End) & (PageBytes - 1)) != 0) continue;
            ulong end = vma.Start + Math.Min(vma.End - vma.Start, _limits.MaxProcessCodeVmaBytes);
            for (ulong va = vma.Start; va < end && pagesLeft-- > 0; va += PageBytes)
            {
                if (!state.Space.TryTranslate(va, out ulong pa))
                {
                    if (state.Skipped.Add(va)) _skipped++;
                    continue;
                }
                pa &= ~(PageBytes - 1);
                if (state.Measured.TryGetValue(va, out ulong measuredAt) && measuredAt == pa) continue;
                if (_kernel.Physical.Read(pa, _page) != (int)PageBytes) continue;
                byte[] sha = _hasher.Sha256(_page);
                _measured++;
                if (state.Skipped.Remove(va)) { _caughtUp++; state.CaughtUp.Add(va); }
                state.Measured[va] = pa;
                ulong fileOffset = vma.Offset + (va - vma.Start);
                if (!_references.TryGetValue((vma.Path, fileOffset), out var reference))
                {
                    _references[(vma.Path, fileOffset)] = (sha, "first use");
                    _firstSeen.Add((vma.Path, fileOffset, sha));
                    _firstSeenCount++;
                    continue;
                }
                if (!reference.Sha256.AsSpan().SequenceEqual(sha))
                    findings.Add(new CodePageFinding(task.Tgid, task.Comm, vma.Path, fileOffset, va, pa, reference.Sha256, sha, reference.Source, timestamp));
            }
        }
        return findings;
    }

    public void Dispose()
    {
        Flush();
        _hasher.Dispose();
    }
}
