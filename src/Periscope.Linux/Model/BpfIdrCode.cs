using Iced.Intel;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>
/// prog_idr, map_idr and link_idr on kernels whose kallsyms has no data symbols (CONFIG_KALLSYMS_ALL=n, Debian's i386
/// kernels), read from the code of the small kernel/bpf/syscall.c functions that look an object up by id or walk the
/// list: each passes &amp;X_idr as the first argument (rdi on x86-64, eax with i386's regparm) of its call to idr_find or
/// idr_get_next (bpf_prog_by_id, bpf_prog_get_curr_or_next; bpf_map_get_curr_or_next; bpf_link_by_id,
/// bpf_link_get_curr_or_next). Every function that yields an address must yield the same one, past _etext, whose
/// xa_head (at <paramref name="xaHead"/>) is empty or a root xa_node naming that xarray; otherwise nothing is returned.
/// </summary>
public static class BpfIdrCode
{
    private const int MaxCodeBytes = 512;
    private const int MaxInstructions = 160;
    /// <summary>ROOT_IS_IDR (include/linux/radix-tree.h): the xa_flags bit that marks an IDR's xarray.</summary>
    public const uint RootIsIdr = 4;

    public static readonly IReadOnlyDictionary<string, string[]> Sources = new Dictionary<string, string[]>
    {
        ["prog_idr"] = ["bpf_prog_by_id", "bpf_prog_get_curr_or_next"],
        ["map_idr"] = ["bpf_map_get_curr_or_next"],
        ["link_idr"] = ["bpf_link_by_id", "bpf_link_get_curr_or_next"],
    };

    /// <summary>The IDR's address, or null (with the reason) when no function yields one agreed address.</summary>
    public static ulong? Find(GuestReader reader, KernelSymbols symbols, string name, int xaHead, out string how)
    {
        var symbol = KernelCodeBytes.Symbols(symbols);
        ulong textEnd = symbol("_etext") ?? 0;
        return Find(name, symbol, KernelCodeBytes.Reader(reader, MaxCodeBytes), reader.PointerSize, a => a > textEnd && reader.IsKernelPointer(a) && IsIdr(reader, a, xaHead), out how);
    }

    /// <summary>The decoding alone (unit-tested on synthetic code).</summary>
    public static ulong? Find(string name, Func<string, ulong?> symbol, Func<ulong, byte[]?> read, int word, Func<ulong, bool> accept, out string how)
    {
        var lookups = new[] { "idr_find", "idr_get_next" }.Select(symbol).OfType<ulong>().ToHashSet();
        var found = new List<(string Function, ulong Address)>();
        foreach (string function in Sources.TryGetValue(name, out var s) ? s : [])
        {
            if (symbol(function) is not { } at || read(at) is not { Length: > 0 } code) continue;
            foreach (ulong a in FirstArguments(code.Length > MaxCodeBytes ? code[..MaxCodeBytes] : code, at, word, lookups).Where(accept).Distinct())
                found.Add((function, a));
        }
        var addresses = found.Select(f => f.Address).Distinct().ToList();
        if (addresses.Count == 1)
        {
            how = $"{string.Join(", ", found.Select(f => f.Function).Distinct())} pass it to idr_find/idr_get_next";
            return addresses[0];
        }
        how = addresses.Count == 0 ? $"no function of {string.Join(", ", Sources.GetValueOrDefault(name) ?? [])} passes an IDR to idr_find/idr_get_next"
            : $"the functions pass {addresses.Count} different addresses ({string.Join(", ", addresses.Select(a => $"0x{a:x}"))})";
        return null;
    }

    /// <summary>The constants in the first-argument register at each call to one of <paramref name="targets"/>.</summary>
    private static IEnumerable<ulong> FirstArguments(byte[] code, ulong at, int word, HashSet<ulong> targets)
    {
        var decoder = Decoder.Create(word * 8, new ByteArrayCodeReader(code), at);
        var first = word == 8 ? Register.RDI : Register.EAX;
        ulong? value = null;
        for (int n = 0; n < MaxInstructions && decoder.IP < at + (ulong)code.Length; n++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) yield break;
            if (ins.Mnemonic == Mnemonic.Call)
            {
                if (value is { } v && ins.IsCallNear && targets.Contains(ins.NearBranchTarget)) yield return v;
                value = null; // the argument registers are caller-saved
                continue;
            }
            if (ins.OpCount > 0 && ins.Op0Kind == OpKind.Register && ins.Op0Register.GetFullRegister() == first.GetFullRegister())
            {
                value = null;
                if (ins.Mnemonic == Mnemonic.Mov && ins.Op1Kind is OpKind.Immediate32 or OpKind.Immediate32to64 or OpKind.Immediate64
                    && ins.Op0Register.GetSize() == word)
                    value = word == 4 ? ins.GetImmediate(1) & 0xffff_ffff : ins.GetImmediate(1);
                else if (ins.Mnemonic == Mnemonic.Lea && ins.IsIPRelativeMemoryOperand) value = ins.IPRelativeMemoryAddress;
                else if (ins.Mnemonic == Mnemonic.Lea && ins.MemoryBase == Register.None && ins.MemoryIndex == Register.None)
                    value = word == 4 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64;
            }
            if (ins.FlowControl == FlowControl.Return) yield break;
        }
    }

    /// <summary>xa_flags carries ROOT_IS_IDR in every IDR (IDR_RT_MARKER; idr_init_base). It is the gfp_t right after
    /// xa_lock: right before xa_head, or on x86-64 four bytes earlier when spinlock_t's size is a multiple of 8
    /// (PREEMPT_RT's rt_mutex-based lock, 32 bytes), the padding before xa_head then being zero.</summary>
    private static bool HasIdrFlags(GuestReader r, ulong idr, int xaHead)
    {
        if (xaHead < 4 || !r.TryU32(idr + (ulong)xaHead - 4, out uint before)) return false;
        if ((before & RootIsIdr) != 0) return true;
        return before == 0 && r.PointerSize == 8 && xaHead >= 8 && r.TryU32(idr + (ulong)xaHead - 8, out uint flags) && (flags & RootIsIdr) != 0;
    }

    /// <summary>An idr's xa_head is NULL (an empty IDR) or a root xa_node (parent NULL) whose array pointer names the idr
    /// (struct idr starts with its xarray); the ids start at 1, so a non-empty IDR never holds its one entry in the head.</summary>
    internal static bool IsIdr(GuestReader r, ulong idr, int xaHead)
    {
        if (!HasIdrFlags(r, idr, xaHead)) return false;
        if (!r.TryPointer(idr + (ulong)xaHead, out ulong head)) return false;
        if (head == 0) return true;
        if (!PidAbi.IsNode(head)) return false;
        var abi = PidAbi.For(r.PointerSize);
        ulong node = PidAbi.NodeOf(head);
        return r.TryPointer(node + (ulong)abi.XaNodeArray, out ulong array) && array == idr
            && r.TryPointer(node + (ulong)abi.XaNodeParent, out ulong parent) && parent == 0;
    }
}
