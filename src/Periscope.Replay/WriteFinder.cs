using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.Targets;

namespace Periscope.Replay;

/// <summary>The first write to a watched range, and what did it.</summary>
public sealed record WriteFound
{
    /// <summary>The first icount at which the bytes differ from their value at the start point.</summary>
    public required ulong Icount { get; init; }
    public required ulong PhysicalAddress { get; init; }
    public required byte[] Before { get; init; }
    public required byte[] After { get; init; }
    /// <summary>RIP at icount-1: the instruction that executed next and changed the bytes.</summary>
    public ulong? Rip { get; init; }
    public string? RipSymbol { get; init; }
    /// <summary>The module whose image holds RIP, when it lies in a module.</summary>
    public string? Module { get; init; }
    public int? Pid { get; init; }
    public string? Comm { get; init; }
    public int Sessions { get; init; }
    public int Stops { get; init; }
}

/// <summary>
/// Finds the first instruction count at which a watched physical range changed, by narrowing an interval with fresh
/// replays that only move forward: each session stops at <see cref="PointsPerRound"/> evenly spaced points; the first
/// point where the bytes differ bounds the interval, and the next round restarts from the nearest snapshot. Watching
/// physical memory catches a write through any alias (text_poke, a CR0.WP trick, the direct map).
/// </summary>
public sealed class WriteFinder(Recording recording, IntrospectionLimits limits, TextWriter? progress = null)
{
    public const int PointsPerRound = 32;
    private int _sessions, _stops;

    /// <summary>
    /// Resolves a kernel address ("0xffff...", "symbol" or "symbol+0x10") with the kernel's symbols and page tables at
    /// <paramref name="icount"/>, and translates it to the physical address to watch.
    /// </summary>
    public (ulong Virtual, ulong Physical) ResolveKernelAddress(string expression, ulong icount)
    {
        using var session = ReplaySession.StartNear(recording, icount, limits);
        _sessions++;
        session.RunTo(icount);
        using var target = Target.AttachLive(session.RamFile, null, new TargetOptions { Limits = limits });
        var k = target.Kernel;
        ulong va;
        if (ParseNumber(expression) is { } n) va = n;
        else
        {
            int plus = expression.IndexOf('+');
            string name = plus < 0 ? expression : expression[..plus];
            ulong offset = plus < 0 ? 0 : ParseNumber(expression[(plus + 1)..]) ?? throw new ArgumentException($"'{expression}': bad offset after '+'");
            if (!k.Symbols.TryGetAddress(name, out ulong symbol)) throw new ArgumentException($"'{name}': no such kernel symbol");
            va = symbol + offset;
        }
        if (!k.KernelSpace.TryTranslate(va, out ulong pa))
            throw new InvalidOperationException($"0x{va:x} is not mapped in the kernel's address space at icount {icount}");
        return (va, pa);
    }

    /// <summary>"0x..." hexadecimal or plain decimal.</summary>
    public static ulong? ParseNumber(string text) =>
        text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out ulong h) ? h : null
            : ulong.TryParse(text, out ulong d) ? d : null;

    /// <summary>Null when the bytes at <paramref name="to"/> equal those at <paramref name="from"/>.</summary>
    public WriteFound? Find(ulong physical, int length, ulong from, ulong to)
    {
        if (length < 1 || length > limits.MaxWatchedBytes) throw new ArgumentException($"--len {length}: expected 1..{limits.MaxWatchedBytes}");
        if (from >= to) throw new ArgumentException($"the start point {from} is not before the end point {to}");
        byte[] reference;
        ulong lo = from, hi = to;
        ReplaySession? session = Open(from);
        try
        {
            session.RunTo(from);
            reference = ReadBytes(session, physical, length);
            // Invariant: bytes at lo equal the reference; bytes at hi (once checked) differ from it.
            bool hiChecked = false;
            while (hi - lo > 1 || !hiChecked)
            {
                session ??= Open(lo);
                if (session.Icount < lo) session.RunTo(lo);
                ulong span = hi - lo;
                int points = (int)Math.Min((ulong)PointsPerRound, span);
                ulong prev = lo;
                bool changed = false;
                for (int i = 1; i <= points; i++)
                {
                    ulong p = i == points ? hi : lo + (ulong)((UInt128)span * (ulong)i / (ulong)points);
                    if (p <= prev) continue;
                    session.RunTo(p);
                    _stops++;
                    if (!ReadBytes(session, physical, length).AsSpan().SequenceEqual(reference))
                    {
                        lo = prev;
                        hi = p;
                        changed = true;
                        break;
                    }
                    prev = p;
                }
                hiChecked = true;
                if (!changed) return null; // the whole interval up to the end point kept the reference bytes
                progress?.WriteLine($"changed between icount {lo} and {hi}");
                session.Dispose();
                session = null;
            }
        }
        finally { session?.Dispose(); }
        return Describe(physical, length, reference, hi);
    }

    private WriteFound Describe(ulong physical, int length, byte[] before, ulong icount)
    {
        using var session = Open(icount - 1);
        session.RunTo(icount - 1);
        if (!ReadBytes(session, physical, length).AsSpan().SequenceEqual(before))
            throw new IOException($"replay is not deterministic here: the bytes at icount {icount - 1} differ from the first pass");
        ulong? rip = null;
        string? symbol = null, module = null, comm = null;
        int? pid = null;
        var cpus = session.Qmp.QueryRegisters();
        if (cpus.Count > 0) rip = cpus[0].Rip;
        try
        {
            using var target = Target.AttachLive(session.RamFile, null, new TargetOptions { Limits = limits });
            var k = target.Kernel;
            if (rip is { } r)
            {
                if (k.Symbols.TryFindContaining(r, out _, out _)) symbol = k.Symbols.Describe(r);
                foreach (var m in k.Modules)
                    if (r >= m.Base && r - m.Base < m.Size) { module = m.Name; symbol ??= $"{m.Name}+0x{r - m.Base:x}"; }
            }
            if (CurrentTask(k) is { } task) { pid = task.Pid; comm = task.Comm; }
        }
        catch (Exception e) when (e is IOException or Periscope.Linux.Discovery.KernelNotFoundException or KernelModelException)
        {
            progress?.WriteLine($"no kernel view at icount {icount - 1}: {e.Message}");
        }
        session.RunTo(icount);
        byte[] after = ReadBytes(session, physical, length);
        if (after.AsSpan().SequenceEqual(before))
            throw new IOException($"replay is not deterministic here: the bytes at icount {icount} equal the reference");
        return new WriteFound
        {
            Icount = icount, PhysicalAddress = physical, Before = before, After = after, Rip = rip, RipSymbol = symbol, Module = module,
            Pid = pid, Comm = comm, Sessions = _sessions, Stops = _stops,
        };
    }

    /// <summary>The task on CPU 0 (rq->curr of its run queue; recordings run one vCPU).</summary>
    private LinuxTask? CurrentTask(LinuxKernel k)
    {
        if (k.Offsets.RunQueue is not { } rq || !k.Symbols.TryGetAddress("runqueues", out ulong runqueues)) return null;
        var areas = PerCpuAreas.Read(k.Reader, k.Symbols, limits.MaxCpus, nameof(IntrospectionLimits.MaxCpus));
        if (areas.Cpus.Count == 0 || !k.Reader.TryPointer(areas.Cpus[0].Of(runqueues) + (ulong)rq.Curr, out ulong curr)) return null;
        foreach (var t in k.Tasks)
            if (t.Address == curr || t.Threads.Any(th => th.Address == curr)) return t;
        return null;
    }

    private ReplaySession Open(ulong icount)
    {
        _sessions++;
        return ReplaySession.StartNear(recording, icount, limits);
    }

    private static byte[] ReadBytes(ReplaySession session, ulong physical, int length)
    {
        using var ram = MemoryImage.OpenLiveRam(session.RamFile, RawLayout.Q35);
        var buffer = new byte[length];
        if (ram.Read(physical, buffer) != length) throw new IOException($"physical 0x{physical:x}+{length} is not guest RAM");
        return buffer;
    }
}
