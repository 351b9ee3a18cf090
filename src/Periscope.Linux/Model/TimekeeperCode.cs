using Iced.Intel;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// tk_core (the timekeeper and its seqcount; kernel/time/timekeeping.c) on a kernel whose kallsyms has no data symbols,
/// found by the code of <c>ktime_get()</c> (a text symbol, exported): it reads <c>tk_core.seq</c> and the timekeeper's
/// tkr_mono members at absolute (i386) or RIP-relative (x86-64) addresses. Each address it loads from is only a
/// candidate: the one whose bytes hold a timekeeper (<see cref="TimelineRules.InferTimekeeper"/>) is tk_core. Since 6.17
/// tk_core is <c>timekeeper_data[TIMEKEEPER_CORE]</c>, which the same code names. None or several: null, never a guess.
/// </summary>
public static class TimekeeperCode
{
    public const string Function = "ktime_get";
    /// <summary>Bytes of ktime_get decoded at most: its seqcount loop is a few dozen instructions.</summary>
    private const int MaxCodeBytes = 256;
    private const int MaxInstructions = 80;

    /// <summary>The data addresses <paramref name="code"/> (ktime_get's first bytes at <paramref name="fn"/>) loads from.</summary>
    public static IReadOnlyList<ulong> LoadedAddresses(byte[] code, ulong fn, int pointerSize)
    {
        int bitness = pointerSize * 8;
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code, 0, Math.Min(code.Length, MaxCodeBytes)), fn);
        var found = new List<ulong>();
        for (int i = 0; i < MaxInstructions && decoder.IP < fn + (ulong)Math.Min(code.Length, MaxCodeBytes); i++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid || ins.FlowControl is FlowControl.Return or FlowControl.IndirectBranch) break;
            for (int op = 0; op < ins.OpCount; op++)
            {
                if (ins.GetOpKind(op) != OpKind.Memory) continue;
                ulong? address = ins.IsIPRelativeMemoryOperand ? ins.IPRelativeMemoryAddress
                    : ins.MemoryBase == Register.None && ins.MemoryIndex == Register.None && ins.SegmentPrefix == Register.None
                        ? (bitness == 32 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64) : null;
                if (address is { } a && !found.Contains(a)) found.Add(a);
            }
        }
        return found;
    }

    /// <summary>tk_core's address, or null with the reason.</summary>
    public static DataAddress? Find(LinuxKernel kernel, string name)
    {
        var r = kernel.Reader;
        if (!kernel.Symbols.TryGetAddress(Function, out ulong fn))
        {
            kernel.Log.Warn($"{name}: kallsyms has no {Function} to find it by");
            return null;
        }
        var code = new byte[MaxCodeBytes];
        int n = r.Space.Read(fn, code);
        if (n < 16) return null;
        var hits = new List<ulong>();
        var window = new byte[TimelineRules.TimekeeperWindow];
        foreach (ulong a in LoadedAddresses(code.AsSpan(0, n).ToArray(), fn, r.PointerSize))
        {
            if (!r.IsKernelPointer(a) || r.Read(a, window) != window.Length) continue;
            if (TimelineRules.InferTimekeeper(window, r.PointerSize, r.IsKernelPointer, out _) is not null) hits.Add(a);
        }
        if (hits.Count != 1)
        {
            kernel.Log.Warn($"{name}: {hits.Count} of the addresses {Function} loads from hold a timekeeper ({string.Join(", ", hits.Select(h => $"0x{h:x}"))}); one expected");
            return null;
        }
        return new DataAddress(name, hits[0], $"by code: the one address {Function} loads from that holds a timekeeper (tkr_mono.base_real = base + offs_real)");
    }
}
