using Iced.Intel;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.Linux.Inference;

/// <summary>
/// The integrity evidence's table bounds on a kernel whose kallsyms has no data symbols (Debian's i386 kernels): each is
/// read from a kernel function (a text symbol, present either way) that uses it, as an immediate or an absolute/RIP-relative
/// memory operand, and every candidate is checked against the data it must describe; exactly one must fit, else null.
/// <list type="bullet">
/// <item>__start___jump_table / __stop___jump_table: jump_label_text_reserved() (kernel/jump_label.c, not __init) passes
/// both to __jump_label_text_reserved. Checked: the span is a whole number of jump entries whose code lies in kernel text
/// (or the freed init text), each in text starting a jmp or NOP, with its target in text.</item>
/// <item>ftrace_pages_start: ftrace_location_range() walks it (lookup_rec, out of line on i386: its direct callees are
/// searched too). Checked: it points to a chain of ftrace_page as the kernel builds it (a non-empty first page whose
/// first ip lies in kernel text, every page's sorted records within its block, later pages' ips kernel addresses); of
/// several such chains, the one holding the others' heads.</item>
/// <item>ftrace_ops_list / ftrace_list_end: arch_ftrace_ops_list_func() walks the one until the other. Checked: from the
/// list, next (the second word) reaches the sentinel, whose func (first word) is code.</item>
/// </list>
/// </summary>
public static class PatchTableDataSearch
{
    /// <summary>Every kernel address <paramref name="function"/>'s code refers to: immediates, and absolute or RIP-relative
    /// memory operands (IsLoad set), decoded up to <see cref="IntrospectionLimits.MaxDataFinderCodeBytes"/> or the first ret.</summary>
    public static List<(ulong Address, bool IsLoad)> References(GuestReader r, KernelSymbols symbols, string function, IntrospectionLimits limits)
    {
        var found = new List<(ulong, bool)>();
        if (!symbols.TryGetAddress(function, out ulong at)) return found;
        var code = new byte[limits.MaxDataFinderCodeBytes];
        int n = r.Space.Read(at, code);
        if (n < 16) return found;
        return References(code.AsSpan(0, n).ToArray(), at, r.PointerSize, r.IsKernelPointer);
    }

    /// <summary>The code at <paramref name="at"/> (a callee found by <see cref="Callees"/>), as <see cref="References(GuestReader, KernelSymbols, string, IntrospectionLimits)"/>.</summary>
    private static List<(ulong Address, bool IsLoad)> References(GuestReader r, ulong at, IntrospectionLimits limits)
    {
        var code = new byte[limits.MaxDataFinderCodeBytes];
        int n = r.Space.Read(at, code);
        return n < 16 ? [] : References(code.AsSpan(0, n).ToArray(), at, r.PointerSize, r.IsKernelPointer);
    }

    /// <summary>The targets of the first <see cref="MaxCallees"/> direct calls in <paramref name="function"/>'s code, up to its first ret.</summary>
    private static List<ulong> Callees(GuestReader r, KernelSymbols symbols, string function, IntrospectionLimits limits)
    {
        var found = new List<ulong>();
        if (!symbols.TryGetAddress(function, out ulong at)) return found;
        var code = new byte[limits.MaxDataFinderCodeBytes];
        int n = r.Space.Read(at, code);
        if (n < 16) return found;
        var decoder = Decoder.Create(r.PointerSize * 8, new ByteArrayCodeReader(code, 0, n), at);
        while (decoder.IP < at + (ulong)n && found.Count < MaxCallees)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid || ins.FlowControl == FlowControl.Return) break;
            if (ins.FlowControl == FlowControl.Call && ins.Op0Kind is OpKind.NearBranch32 or OpKind.NearBranch64 && r.IsKernelPointer(ins.NearBranchTarget))
                found.Add(ins.NearBranchTarget);
        }
        return found;
    }

    /// <summary>Direct callees of a function whose references are also searched (the helper a compiler left out of line).</summary>
    private const int MaxCallees = 4;

    public static List<(ulong Address, bool IsLoad)> References(byte[] code, ulong ip, int pointerSize, Func<ulong, bool> isKernel)
    {
        var found = new List<(ulong, bool)>();
        int bitness = pointerSize * 8;
        ulong mask = pointerSize == 8 ? ulong.MaxValue : uint.MaxValue;
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code), ip);
        while (decoder.IP < ip + (ulong)code.Length)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) break;
            for (int i = 0; i < ins.OpCount; i++)
            {
                var kind = ins.GetOpKind(i);
                // A %fs:/%gs: operand is a per-CPU variable (i386's stack protector canary and preempt count, x86-64's
                // since percpu stopped being zero-based): its address is only the offset into each CPU's area, and on
                // i386 it lies in the init section, freed after boot and reused, so reading it there gives junk.
                if (kind == OpKind.Memory && ins.MemoryIndex == Register.None && ins.MemoryBase is Register.None or Register.RIP or Register.EIP
                    && ins.SegmentPrefix is not (Register.FS or Register.GS))
                {
                    ulong a = ins.MemoryDisplacement64 & mask;
                    if (isKernel(a)) found.Add((a, true));
                }
                else if (kind is OpKind.Immediate32 or OpKind.Immediate32to64 or OpKind.Immediate64)
                {
                    ulong a = ins.GetImmediate(i) & mask;
                    if (isKernel(a)) found.Add((a, false));
                }
            }
            if (ins.FlowControl == FlowControl.Return) break;
        }
        return found;
    }

    public static (ulong Start, ulong Stop)? JumpTable(GuestReader r, KernelSymbols symbols, IntrospectionLimits limits)
    {
        if (!symbols.TryGetAddress("_stext", out ulong textStart) || !symbols.TryGetAddress("_etext", out ulong textEnd)) return null;
        var refs = References(r, symbols, "jump_label_text_reserved", limits).Select(x => x.Address).Distinct().ToList();
        int size = X86PatchTableAbi.JumpEntrySize(r.PointerSize);
        var fits = new List<(ulong, ulong)>();
        foreach (ulong s in refs)
            foreach (ulong e in refs)
                if (e > s && (e - s) % (ulong)size == 0 && (e - s) / (ulong)size <= (ulong)limits.MaxEvidenceEntries
                    && JumpEntriesFit(r, s, (int)((e - s) / (ulong)size), size, textStart, textEnd, limits)) fits.Add((s, e));
        return fits.Count == 1 ? fits[0] : null;
    }

    /// <summary>The first and last entries (at most MaxInferencePatchEntriesPerModule of each end) are jump entries.</summary>
    private static bool JumpEntriesFit(GuestReader r, ulong table, int count, int size, ulong textStart, ulong textEnd, IntrospectionLimits limits)
    {
        int check = Math.Min(count, limits.MaxInferencePatchEntriesPerModule);
        var buffer = new byte[size];
        bool inText = false;
        foreach (int i in Enumerable.Range(0, check).Concat(Enumerable.Range(Math.Max(check, count - check), count - Math.Max(check, count - check))))
        {
            ulong entry = table + (ulong)i * (ulong)size;
            if (r.Read(entry, buffer) != size) return false;
            int rc = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(buffer);
            int rt = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(X86PatchTableAbi.JumpEntryTarget));
            if (rc == 0) return false;
            ulong code = Wrap(r, entry + (ulong)(long)rc), target = Wrap(r, entry + X86PatchTableAbi.JumpEntryTarget + (ulong)(long)rt);
            if (!r.IsKernelPointer(code)) return false;
            if (code < textStart || code >= textEnd) continue; // init text, freed after boot
            // A jump, or the first byte of a 2- or 5-byte NOP: 66 90 / 0f 1f 44 00 00 on x86-64, 89 f6 / 3e 8d 74 26 00 on i386.
            if (target < textStart || target >= textEnd || !r.TryU8(code, out byte first)
                || !(first is 0xeb or 0xe9 or 0x66 or 0x0f or 0x3e || (r.PointerSize == 4 && first == 0x89))) return false;
            inText = true;
        }
        return inText;
    }

    private static ulong Wrap(GuestReader r, ulong va) => r.PointerSize == 8 ? va : va & uint.MaxValue;

    public static ulong? FtracePagesStart(GuestReader r, KernelSymbols symbols, IntrospectionLimits limits) => FtracePagesStart(r, symbols, limits, out _);

    /// <summary>ftrace_pages_start: among the variables ftrace_location_range's code (and its direct callees': i386's gcc
    /// leaves lookup_rec() out of line) loads, the one heading a chain of ftrace pages as the kernel builds it
    /// (<see cref="FtracePageChainFault"/>). A variable pointing into the list also heads a chain (ftrace_pages, the last
    /// page, does), a suffix of the start's: the start is the one chain holding every fitting chain's head. Null when no
    /// chain fits or no single one holds the others; <paramref name="why"/> says what each candidate heads or why it failed.</summary>
    public static ulong? FtracePagesStart(GuestReader r, KernelSymbols symbols, IntrospectionLimits limits, out string why)
    {
        if (!symbols.TryGetAddress("_stext", out ulong textStart) || !symbols.TryGetAddress("_etext", out ulong textEnd))
        {
            why = "no _stext or _etext in kallsyms";
            return null;
        }
        var loads = References(r, symbols, "ftrace_location_range", limits)
            .Concat(Callees(r, symbols, "ftrace_location_range", limits).SelectMany(c => References(r, c, limits)))
            .Where(x => x.IsLoad).Select(x => x.Address).Distinct().ToList();
        var chains = new List<(ulong Variable, ulong Head, HashSet<ulong> Pages)>();
        var verdicts = new List<string>();
        foreach (ulong v in loads)
        {
            if (FtracePageChainFault(r, v, textStart, textEnd, limits, out ulong head, out var pages, out long records) is { } fault)
                verdicts.Add($"0x{v:x}: {fault}");
            else
            {
                chains.Add((v, head, pages));
                verdicts.Add($"0x{v:x}: heads {pages.Count} pages, {records} records");
            }
        }
        var starts = chains.Where(c => chains.All(o => c.Pages.Contains(o.Head))).ToList();
        string each = $"{loads.Count} variables loaded by ftrace_location_range and its callees: {string.Join("; ", verdicts)}";
        if (starts.Count == 1)
        {
            why = each;
            return starts[0].Variable;
        }
        why = (chains.Count == 0 ? "no variable heads a chain of ftrace pages"
            : starts.Count == 0 ? $"{chains.Count} variables head chains of ftrace pages, none holding the others' heads"
            : $"{starts.Count} variables head the same chain of ftrace pages") + $" ({each})";
        return null;
    }

    /// <summary>
    /// Null when <paramref name="variable"/> points to a chain of struct ftrace_page as kernel/trace/ftrace.c (6.1..7.x)
    /// leaves it, else what does not fit. ftrace_process_locs() fills the kernel's own pages first from its sorted
    /// mcount locations (the NULL ones sort first and are skipped, so the first page is never empty and its first ip is
    /// the lowest traced one, in kernel text; ftrace_free_mem() unlinks any page it empties), then each module appends its
    /// own, their ips in module code. Within a page the records are sorted and fill at most the 4 KiB &lt;&lt; order
    /// block ftrace_allocate_pages() got; a later page may be empty (its records skipped).
    /// </summary>
    private static string? FtracePageChainFault(GuestReader r, ulong variable, ulong textStart, ulong textEnd, IntrospectionLimits limits,
        out ulong head, out HashSet<ulong> pages, out long records)
    {
        pages = [];
        records = 0;
        int p = r.PointerSize, size = X86PatchTableAbi.DynFtraceSize(p);
        if (!r.TryPointer(variable, out head)) return "unreadable";
        for (ulong page = head; page != 0;)
        {
            if (pages.Count >= limits.MaxFtraceNodes) return $"more than {limits.MaxFtraceNodes} pages";
            if (!pages.Add(page)) return $"loops at 0x{page:x}";
            string at = $"page {pages.Count} at 0x{page:x}";
            if (!r.IsKernelPointer(page)) return $"{at}: not a kernel address";
            if (!r.TryPointer(page + (ulong)X86PatchTableAbi.FtracePageRecords(p), out ulong table) || !r.TryI32(page + (ulong)X86PatchTableAbi.FtracePageIndex(p), out int index)
                || !r.TryI32(page + (ulong)X86PatchTableAbi.FtracePageOrder(p), out int order) || !r.TryPointer(page + X86PatchTableAbi.FtracePageNext, out ulong next))
                return $"{at}: unreadable";
            if (order is < 0 or > KernelMacros.MAX_PAGE_ORDER) return $"{at}: order {order}";
            if (index < 0 || (long)index * size > 1L << (KernelMacros.PAGE_SHIFT + order)) return $"{at}: {index} records in an order-{order} block";
            if (index == 0)
            {
                if (pages.Count == 1) return $"{at}: empty, as the kernel's first page never is";
            }
            else
            {
                if (!r.IsKernelPointer(table) || !r.TryPointer(table + X86PatchTableAbi.DynFtraceIp, out ulong first)
                    || !r.TryPointer(table + (ulong)((long)(index - 1) * size) + X86PatchTableAbi.DynFtraceIp, out ulong last))
                    return $"{at}: records at 0x{table:x} unreadable";
                if (first > last) return $"{at}: records not sorted (first ip 0x{first:x}, last 0x{last:x})";
                if (pages.Count == 1 && (first < textStart || first >= textEnd)) return $"{at}: first ip 0x{first:x} not in kernel text";
                if (!r.IsKernelPointer(first)) return $"{at}: first ip 0x{first:x} not a kernel address";
                records += index;
            }
            page = next;
        }
        return pages.Count == 0 ? "null" : null;
    }

    public static (ulong List, ulong End)? FtraceOpsList(GuestReader r, KernelSymbols symbols, IntrospectionLimits limits)
    {
        if (!symbols.TryGetAddress("_stext", out ulong textStart) || !symbols.TryGetAddress("_etext", out ulong textEnd)) return null;
        int p = r.PointerSize;
        var refs = References(r, symbols, "arch_ftrace_ops_list_func", limits);
        var fits = new List<(ulong, ulong)>();
        foreach (ulong list in refs.Where(x => x.IsLoad).Select(x => x.Address).Distinct())
            foreach (ulong end in refs.Select(x => x.Address).Distinct())
            {
                if (end == list || !r.TryPointer(end, out ulong endFunc) || endFunc < textStart || endFunc >= textEnd) continue;
                if (!r.TryPointer(list, out ulong op)) continue;
                var seen = new HashSet<ulong>();
                while (op != end && op != 0 && seen.Count < limits.MaxFtraceNodes && seen.Add(op) && r.TryPointer(op + (ulong)p, out ulong next)) op = next;
                if (op == end) fits.Add((list, end));
            }
        return fits.Count == 1 ? fits[0] : null;
    }

    /// <summary>One of the five objects above for <see cref="KernelDataAddresses"/>, with how it was found; null when the
    /// code or the data does not settle it, and <paramref name="why"/> says why.</summary>
    public static DataAddress? Find(LinuxKernel kernel, string name, out string why)
    {
        var (r, symbols, limits) = (kernel.Reader, kernel.Symbols, kernel.Limits);
        why = "no single candidate in the code fits the data";
        return name switch
        {
            "__start___jump_table" or "__stop___jump_table" => JumpTable(r, symbols, limits) is { } t
                ? new DataAddress(name, name == "__start___jump_table" ? t.Start : t.Stop, "the one pair of addresses in jump_label_text_reserved's code bounding valid jump entries") : null,
            "ftrace_pages_start" => FtracePagesStart(r, symbols, limits, out why) is { } f
                ? new DataAddress(name, f, $"the one variable ftrace_location_range's code loads that heads a chain of ftrace pages holding every other such chain ({why})") : null,
            "ftrace_ops_list" or "ftrace_list_end" => FtraceOpsList(r, symbols, limits) is { } o
                ? new DataAddress(name, name == "ftrace_ops_list" ? o.List : o.End, "the one (list, sentinel) pair in arch_ftrace_ops_list_func's code whose next chain reaches the sentinel") : null,
            _ => null,
        };
    }
}
