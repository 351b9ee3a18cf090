using System.Buffers.Binary;
using Periscope.Linux.Discovery;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>
/// Member offsets without BTF, VMOffset-style: every rule enumerates all offsets of its window that the live data
/// satisfies, so an ambiguity shows up as several candidates (settled only by a tie-break the rule names, otherwise the
/// member stays unknown). The evidence is the guest's own objects: init_task and the task list, user mms and their
/// VMAs, the files they map, the module list and init_cred. Objects are read once into windows; the whole search is
/// bounded by <see cref="IntrospectionLimits.MaxInferenceSteps"/> and reads through its own work budget.
/// </summary>
public sealed partial class OffsetInference
{
    private readonly GuestReader _r;
    private readonly KernelSymbols _symbols;
    private readonly KernelLayout _layout;
    private readonly IntrospectionLimits _limits;
    private readonly VirtualRange _moduleArea;
    private readonly InferenceReport _report = new();
    private readonly Dictionary<ulong, byte[]?> _taskWindows = [];
    private readonly Dictionary<ulong, byte[]?> _structWindows = [];
    private readonly Dictionary<ulong, byte[]?> _smallWindows = [];
    private readonly int _taskBytes, _structBytes, _smallBytes;
    /// <summary>The guest's pointer and unsigned long size (4 on i386) and the structural offsets that follow from it.</summary>
    private readonly WordLayout _w;
    private readonly int _p;
    private long _steps;

    /// <summary>kernfs_node's parent member under this kernel's name (<see cref="KernelMacros.KernfsParentMember"/>).</summary>
    private readonly string _kernfsParent;

    private OffsetInference(GuestReader reader, KernelSymbols symbols, KernelLayout layout, IntrospectionLimits limits, VirtualRange moduleArea,
        Version? release = null)
    {
        _kernfsParent = KernelMacros.KernfsParentMember(release ?? new Version(0, 0));
        // Its own budget: the search must not spend what the model's walks are allowed.
        _r = new GuestReader(reader.Space, limits, new WorkBudget(limits));
        _symbols = symbols;
        _layout = layout;
        _limits = limits;
        _moduleArea = moduleArea;
        _w = WordLayout.For(reader.PointerSize);
        _p = _w.PointerSize;
        _report.PointerSize = _p;
        _taskBytes = limits.MaxInferenceTaskBytes;
        _structBytes = limits.MaxInferenceStructBytes;
        _smallBytes = Math.Min(limits.MaxInferenceSmallStructBytes, _structBytes);
    }

    /// <summary>
    /// Infers the offsets the model uses. Throws <see cref="KernelModelException"/> (one line) when a member nothing
    /// works without (task list, comm, pid, tgid) cannot be settled, or when the search exceeds its step budget.
    /// <paramref name="release"/> is the kernel's major.minor (from its banner), for members a version renamed; 0.0 when unknown.
    /// </summary>
    public static (KernelOffsets Offsets, InferenceReport Report) Infer(GuestReader reader, KernelSymbols symbols, KernelLayout layout,
        IntrospectionLimits limits, VirtualRange moduleArea, Version release)
    {
        var search = new OffsetInference(reader, symbols, layout, limits, moduleArea, release);
        try
        {
            var offsets = search.Run();
            search._report.Steps = search._steps;
            return (offsets, search._report);
        }
        catch (StepBudgetExhausted)
        {
            throw new KernelModelException(
                $"offset inference stopped after {search._steps} candidate tests (IntrospectionLimits.MaxInferenceSteps = {limits.MaxInferenceSteps})");
        }
    }

    private sealed class StepBudgetExhausted : Exception;

    /// <summary>One family of rules alone, on its own step budget, reading neither the kernel's layout nor the module
    /// area (for tests and tools that need only those members).</summary>
    /// <exception cref="KernelModelException">The search exceeded MaxInferenceSteps.</exception>
    private static InferenceReport RulesAlone(GuestReader reader, KernelSymbols symbols, IntrospectionLimits limits, string family, Action<OffsetInference> rules)
    {
        var search = new OffsetInference(reader, symbols, layout: null!, limits, default);
        try
        {
            rules(search);
        }
        catch (StepBudgetExhausted)
        {
            throw new KernelModelException($"{family} inference stopped after {search._steps} candidate tests (IntrospectionLimits.MaxInferenceSteps = {limits.MaxInferenceSteps})");
        }
        search._report.Steps = search._steps;
        return search._report;
    }

    /// <summary>The tie-break of rules whose window reaches past a slab object into its neighbour, an object of the same kind.</summary>
    private const string SlabNeighbourTieBreak = "lowest offset (a higher one is the same member of the next object in the slab)";

    private void Step(long n = 1)
    {
        _steps += n;
        if (_steps > _limits.MaxInferenceSteps) throw new StepBudgetExhausted();
    }

    // ---- windows: each object is read once, zero-filled past the first unreadable byte ----

    private byte[]? Window(Dictionary<ulong, byte[]?> cache, ulong va, int size)
    {
        if (cache.TryGetValue(va, out var w)) return w;
        Step(size / 64 + 1);
        byte[]? bytes = null;
        if (_r.IsKernelPointer(va))
        {
            bytes = new byte[size];
            if (_r.Read(va, bytes) < 16) bytes = null;
        }
        cache[va] = bytes;
        return bytes;
    }

    private byte[]? TaskWindow(ulong va) => Window(_taskWindows, va, _taskBytes);
    private byte[]? StructWindow(ulong va) => Window(_structWindows, va, _structBytes);
    private byte[]? SmallWindow(ulong va) => Window(_smallWindows, va, _smallBytes);

    private static ulong U64(byte[] w, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(w.AsSpan(offset, 8));
    /// <summary>A pointer or unsigned long in a window: the guest's word (4 bytes on i386), zero-extended.</summary>
    private ulong Word(byte[] w, int offset) => WordLayout.ReadWord(w, offset, _p);
    private static uint U32(byte[] w, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(offset, 4));
    private static int I32(byte[] w, int offset) => BinaryPrimitives.ReadInt32LittleEndian(w.AsSpan(offset, 4));

    private bool IsKernel(ulong va) => va > 0xfff && _r.IsKernelPointer(va);

    private ulong Ptr(ulong va) => _r.TryPointer(va, out ulong v) ? v : 0;

    /// <summary>A word of the guest read as one step of the search's budget; null when unreadable (for the rules that
    /// take a word reader, MountRule's).</summary>
    private ulong? SteppedWord(ulong va)
    {
        Step();
        return _r.TryPointer(va, out ulong v) ? v : null;
    }

    private static List<int> FindAll(byte[] w, ReadOnlySpan<byte> needle)
    {
        var hits = new List<int>();
        for (int at = 0; at <= w.Length - needle.Length;)
        {
            int i = w.AsSpan(at).IndexOf(needle);
            if (i < 0) break;
            hits.Add(at + i);
            at += i + 1;
        }
        return hits;
    }

    /// <summary>
    /// A task comm: 1..15 ASCII bytes (control characters included: a process may name itself with escapes), then NUL
    /// padding to TASK_COMM_LEN (set_task_comm pads with strscpy_pad). Kernel pointers and counters fail on their 0xff
    /// or non-zero high bytes.
    /// </summary>
    private static bool IsComm(ReadOnlySpan<byte> b)
    {
        int n = b.IndexOf((byte)0);
        if (n <= 0 || n >= TaskCommLength) return false;
        foreach (byte c in b[..n]) if (c >= 0x80) return false;
        foreach (byte c in b[n..]) if (c != 0) return false;
        return true;
    }

    private bool ReadsComm(ulong task, int comm)
    {
        Span<byte> b = stackalloc byte[TaskCommLength];
        Step();
        return _r.Read(task + (ulong)comm, b) == TaskCommLength && IsComm(b);
    }

    private static string Hex(int offset) => $"0x{offset:x}";

    private int Required(int? offset, string name) =>
        offset ?? throw new OffsetInferenceException(_report, 
            $"offset inference: {name} could not be settled ({Describe(_report.Members[^1])}); without BTF the model cannot run");

    internal static string Describe(InferredMember m) => m.Decision switch
    {
        InferenceDecision.NotFound => "no candidate satisfies: " + m.Rule,
        InferenceDecision.Ambiguous => $"{m.Candidates.Count} candidates {string.Join(", ", m.Candidates.Select(Hex))} satisfy: {m.Rule}",
        _ => $"{Hex(m.Offset!.Value)} ({m.Decision}): {m.Rule}",
    };
}
