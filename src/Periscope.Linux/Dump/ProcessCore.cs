using System.Buffers.Binary;
using System.Text;
using Periscope.Linux.Model;
using Periscope.X86;

namespace Periscope.Linux.Dump;

/// <summary>What was written: segments, bytes of process memory, threads with registers, and what could not be.</summary>
public sealed record ProcessCoreResult(int Segments, long MemoryBytes, int Threads, int ThreadsWithRegisters, IReadOnlyList<string> Gaps);

/// <summary>
/// Writes one process as an ELF core file that gdb loads: a PT_LOAD per run of resident pages of each mapping (from the
/// process's own page tables; pages that are not resident are left out, so gdb reads them as absent rather than as
/// zeros), NT_PRSTATUS per thread with the user registers the kernel saved in the pt_regs at the top of the thread's
/// kernel stack (plus fs_base/gs_base from task->thread), NT_PRPSINFO, NT_AUXV (mm->saved_auxv) and NT_FILE for the
/// file mappings. Layouts come from BTF; total bytes are capped by IntrospectionLimits.MaxProcessCoreBytes.
/// </summary>
public sealed class ProcessCore(LinuxKernel kernel)
{
    /// <summary>THREAD_SIZE on x86-64 (PAGE_SIZE << THREAD_SIZE_ORDER, order 2 without KASAN, arch/x86/include/asm/page_64_types.h),
    /// used when BTF has no union thread_union to measure it by (see <see cref="KernelStackTop"/>).</summary>
    public const ulong ThreadSize = 16 * 1024;
    /// <summary>__USER_CS and __USER_DS (arch/x86/include/asm/segment.h, 64-bit): a user thread's saved cs and ss.</summary>
    private const ulong UserCs = 0x33, UserDs = 0x2b;
    private const uint NT_PRSTATUS = 1, NT_PRPSINFO = 3, NT_AUXV = 6, NT_FILE = 0x46494c45;
    private const int PrStatusSize = 336, PrStatusPid = 32, PrStatusPpid = 36, PrStatusRegs = 112, PrPsInfoSize = 136;
    /// <summary>user_regs_struct order (27 registers) and the pt_regs member each comes from (null: 0 or filled separately).</summary>
    private static readonly string?[] UserRegs =
        ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
         null /* fs_base */, null /* gs_base */, null, null, null, null];
    private const int PageSize = 4096;

    private readonly GuestReader _r = kernel.Reader;
    private readonly List<string> _gaps = [];

    public ProcessCoreResult Write(LinuxTask process, Stream output)
    {
        var b = kernel.Btf is { } btf ? new MemberOffsets(btf) : throw new KernelModelException("dump process needs the kernel's BTF (pt_regs, thread_struct)");
        var space = kernel.GetAddressSpace(process) ?? throw new KernelModelException($"pid {process.Pid} has no user address space (a kernel thread or a zombie)");
        var vmas = kernel.GetVmas(process);

        // Segments: runs of resident pages inside each mapping.
        var segments = new List<(ulong Start, ulong Length, uint Flags)>();
        // The same bytes as runs contiguous in guest physical memory too, in file order: what is copied.
        var pieces = new List<(ulong Va, ulong Pa, ulong Length)>();
        long total = 0;
        foreach (var vma in vmas)
        {
            uint flags = ((vma.Flags & Vma.VmRead) != 0 ? 4u : 0) | ((vma.Flags & Vma.VmWrite) != 0 ? 2u : 0) | ((vma.Flags & Vma.VmExec) != 0 ? 1u : 0);
            (ulong s, ulong e)? run = null;
            foreach (var m in space.EnumerateMappings(vma.Start, vma.End))
            {
                ulong s = Math.Max(m.VirtualAddress, vma.Start), e = Math.Min(m.VirtualEnd, vma.End);
                if (e <= s) continue;
                pieces.Add((s, m.PhysicalAddress + (s - m.VirtualAddress), e - s));
                if (run is { } r && r.e == s) run = (r.s, e);
                else { if (run is { } done) segments.Add((done.s, done.e - done.s, flags)); run = (s, e); }
            }
            if (run is { } last) segments.Add((last.s, last.e - last.s, flags));
        }
        foreach (var seg in segments) total += (long)seg.Length;
        if (total > kernel.Limits.MaxProcessCoreBytes)
            throw new KernelModelException($"pid {process.Pid}: {total} resident bytes exceed MaxProcessCoreBytes = {kernel.Limits.MaxProcessCoreBytes}");

        var notes = new MemoryStream();
        int withRegs = 0;
        var threads = process.Threads.OrderBy(t => t.Address == process.Address ? 0 : 1).ToList();
        foreach (var t in threads)
        {
            var status = new byte[PrStatusSize];
            BinaryPrimitives.WriteInt32LittleEndian(status.AsSpan(PrStatusPid), t.Tid);
            BinaryPrimitives.WriteInt32LittleEndian(status.AsSpan(PrStatusPpid), process.ParentPid);
            if (ReadRegisters(b, t, status.AsSpan(PrStatusRegs, 27 * 8))) withRegs++;
            Note(notes, NT_PRSTATUS, status);
        }
        var psinfo = new byte[PrPsInfoSize];
        // struct elf_prpsinfo: pr_state, pr_sname, pr_zomb, pr_nice, pr_flag (8), pr_uid 16, pr_gid 20, pr_pid 24, pr_ppid 28, pr_fname 40, pr_psargs 56.
        psinfo[1] = (byte)process.State;
        BinaryPrimitives.WriteUInt32LittleEndian(psinfo.AsSpan(16), process.Uid ?? 0);
        BinaryPrimitives.WriteUInt32LittleEndian(psinfo.AsSpan(20), process.Gid ?? 0);
        BinaryPrimitives.WriteInt32LittleEndian(psinfo.AsSpan(24), process.Pid);
        BinaryPrimitives.WriteInt32LittleEndian(psinfo.AsSpan(28), process.ParentPid);
        Encoding.UTF8.GetBytes(process.Comm.AsSpan(0, Math.Min(process.Comm.Length, 15)), psinfo.AsSpan(40, 16));
        Encoding.UTF8.GetBytes((process.ExePath ?? process.Comm).AsSpan(0, Math.Min((process.ExePath ?? process.Comm).Length, 79)), psinfo.AsSpan(56, 80));
        Note(notes, NT_PRPSINFO, psinfo);
        if (ReadAuxv(b, process) is { } auxv) Note(notes, NT_AUXV, auxv);
        Note(notes, NT_FILE, FileNote(vmas));

        // Layout: ELF header, program headers, notes, then page-aligned segment data.
        int phnum = 1 + segments.Count;
        if (phnum >= 0xFFFF) throw new KernelModelException($"pid {process.Pid}: {segments.Count} segments exceed what an ELF header counts");
        long noteOffset = 64 + 56L * phnum;
        long dataOffset = (noteOffset + notes.Length + PageSize - 1) / PageSize * PageSize;
        var header = new byte[noteOffset];
        var h = header.AsSpan();
        "\x7f"u8.CopyTo(h); "ELF"u8.CopyTo(h[1..]);
        h[4] = 2; h[5] = 1; h[6] = 1; // ELFCLASS64, little-endian, EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], 4);   // ET_CORE
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], 62);  // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], 64);  // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], 64);  // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], 56);  // e_phentsize
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], (ushort)phnum);
        var ph = h[64..];
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 4);        // PT_NOTE
        BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], (ulong)noteOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)notes.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], 4);
        long at = dataOffset;
        for (int i = 0; i < segments.Count; i++)
        {
            var p = ph[(56 * (i + 1))..];
            var (start, length, flags) = segments[i];
            BinaryPrimitives.WriteUInt32LittleEndian(p, 1);     // PT_LOAD
            BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
            BinaryPrimitives.WriteUInt64LittleEndian(p[8..], (ulong)at);
            BinaryPrimitives.WriteUInt64LittleEndian(p[16..], start);
            BinaryPrimitives.WriteUInt64LittleEndian(p[32..], length);
            BinaryPrimitives.WriteUInt64LittleEndian(p[40..], length);
            BinaryPrimitives.WriteUInt64LittleEndian(p[48..], PageSize);
            at += (long)length;
        }
        output.Write(header);
        notes.Position = 0;
        notes.CopyTo(output);
        output.Write(new byte[dataOffset - noteOffset - notes.Length]);
        // Copied straight from the memory source's own mapping where it has one (a dump or a RAM file: one copy, as dd
        // makes), else read through the address space. The translation is the one the segments were built from: on a
        // paused guest or a dump the same as now; a running guest's pages can change under any reader.
        var direct = space.Physical as Periscope.Memory.IDirectPhysicalMemory;
        var buffer = new byte[1 << 20];
        foreach (var (start, pa, length) in pieces)
            for (ulong off = 0; off < length; off += (ulong)buffer.Length)
            {
                int n = (int)Math.Min((ulong)buffer.Length, length - off);
                if (direct is not null)
                {
                    var mapped = direct.GetSpan(pa + off, n);
                    if (mapped.Length == n) { output.Write(mapped); continue; }
                }
                var chunk = buffer.AsSpan(0, n);
                int read = space.Read(start + off, chunk);
                if (read < n)
                {
                    chunk[Math.Max(read, 0)..].Clear();
                    _gaps.Add($"0x{start + off + (ulong)Math.Max(read, 0):x}: {n - read} bytes no longer readable (the guest changed while it was written); zeros written");
                }
                output.Write(chunk);
            }
        return new ProcessCoreResult(segments.Count, total, threads.Count, withRegs, _gaps);
    }

    /// <summary>The user registers the kernel saved at syscall or interrupt entry: pt_regs at the top of the kernel stack
    /// (task_pt_regs: task->stack + THREAD_SIZE − TOP_OF_KERNEL_STACK_PADDING − sizeof(pt_regs)).</summary>
    private bool ReadRegisters(MemberOffsets b, LinuxThread thread, Span<byte> regs)
    {
        if (b.Offset("task_struct", "stack") is not { } stackOff || b.StructSize("pt_regs") is not { } ptSize
            || !_r.TryPointer(thread.Address + (ulong)stackOff, out ulong stack) || !_r.IsKernelPointer(stack))
        {
            _gaps.Add($"tid {thread.Tid}: no kernel stack (task->stack) to read its registers from");
            return false;
        }
        var top = KernelStackTop.From(b.Btf!);
        ulong pt = stack + top.ThreadSize - top.Padding - (ulong)ptSize;
        var raw = new byte[ptSize];
        if (_r.Read(pt, raw) != raw.Length) { _gaps.Add($"tid {thread.Tid}: pt_regs at 0x{pt:x} are unreadable"); return false; }
        for (int i = 0; i < UserRegs.Length; i++)
        {
            if (UserRegs[i] is not { } name) continue;
            if (b.Offset("pt_regs", name) is not { } o) { _gaps.Add($"tid {thread.Tid}: BTF has no pt_regs.{name}"); return false; }
            BinaryPrimitives.WriteUInt64LittleEndian(regs[(i * 8)..], BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(o)));
        }
        ulong cs = BinaryPrimitives.ReadUInt64LittleEndian(regs[(17 * 8)..]) & 0xFFFF, ss = BinaryPrimitives.ReadUInt64LittleEndian(regs[(20 * 8)..]) & 0xFFFF;
        if (cs != UserCs || ss != UserDs)
        {
            _gaps.Add($"tid {thread.Tid}: pt_regs at 0x{pt:x} hold cs 0x{cs:x} ss 0x{ss:x}, not the user segments: registers left out");
            regs.Clear();
            return false;
        }
        if (b.Offset("task_struct", "thread") is { } thr)
        {
            if (b.Offset("thread_struct", "fsbase") is { } fs && _r.TryU64(thread.Address + (ulong)(thr + fs), out ulong fsBase)) BinaryPrimitives.WriteUInt64LittleEndian(regs[(21 * 8)..], fsBase);
            if (b.Offset("thread_struct", "gsbase") is { } gs && _r.TryU64(thread.Address + (ulong)(thr + gs), out ulong gsBase)) BinaryPrimitives.WriteUInt64LittleEndian(regs[(22 * 8)..], gsBase);
        }
        return true;
    }

    /// <summary>mm->saved_auxv (AT_VECTOR_SIZE words, from BTF), up to and including the AT_NULL pair.</summary>
    private byte[]? ReadAuxv(MemberOffsets b, LinuxTask process)
    {
        if (b.Offset("mm_struct", "saved_auxv") is not { } off || b.Size("mm_struct", "saved_auxv") is not { } size || size is <= 0 or > 4096) return null;
        var raw = new byte[size];
        if (_r.Read(process.Mm + (ulong)off, raw) != raw.Length) { _gaps.Add("mm->saved_auxv is unreadable"); return null; }
        for (int i = 0; i + 16 <= raw.Length; i += 16)
            if (BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i)) == 0) return raw[..(i + 16)];
        return raw;
    }

    /// <summary>NT_FILE: count, page size, then (start, end, offset in pages) per file mapping, then the names.</summary>
    private static byte[] FileNote(IReadOnlyList<Vma> vmas)
    {
        var files = vmas.Where(v => v.File != 0 && v.Path.StartsWith('/')).ToList();
        var s = new MemoryStream();
        var w = new byte[8];
        void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(w, v); s.Write(w); }
        U64((ulong)files.Count);
        U64(PageSize);
        foreach (var f in files) { U64(f.Start); U64(f.End); U64(f.Offset / PageSize); }
        foreach (var f in files) { s.Write(Encoding.UTF8.GetBytes(f.Path)); s.WriteByte(0); }
        return s.ToArray();
    }

    private static void Note(Stream s, uint type, ReadOnlySpan<byte> desc)
    {
        Span<byte> head = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(head, 5);
        BinaryPrimitives.WriteUInt32LittleEndian(head[4..], (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], type);
        s.Write(head);
        s.Write("CORE\0\0\0\0"u8);
        s.Write(desc);
        int pad = (4 - desc.Length % 4) % 4;
        for (int i = 0; i < pad; i++) s.WriteByte(0);
    }
}

/// <summary>
/// Where a task's saved user registers sit below the top of its kernel stack, measured from BTF (x86-64's task_pt_regs):
/// THREAD_SIZE is the size of union thread_union (its stack member is THREAD_SIZE bytes: 16 KiB, 32 KiB with KASAN), and
/// TOP_OF_KERNEL_STACK_PADDING is what a FRED kernel (CONFIG_X86_FRED, 6.9+) reserves above pt_regs for the rest of its
/// entry frame, struct fred_frame (pt_regs then fred_info: 16 bytes) — 0 where BTF has no fred_frame. A kernel built with
/// FRED keeps the padding whether or not the CPU runs FRED. The result is checked per thread by the caller: the saved cs
/// and ss must be the user segments.
/// </summary>
public readonly record struct KernelStackTop(ulong ThreadSize, ulong Padding)
{
    public static KernelStackTop From(Btf.BtfTypes btf)
    {
        ulong threadSize = btf.StructSizeOrNull("thread_union") is int t && t >= 4096 && (t & (t - 1)) == 0 ? (ulong)t : ProcessCore.ThreadSize;
        ulong padding = btf.StructSizeOrNull("fred_frame") is int f && btf.StructSizeOrNull("pt_regs") is int p && f > p && f - p <= 64 ? (ulong)(f - p) : 0;
        return new(threadSize, padding);
    }
}
