using System.Buffers.Binary;
using Periscope.Linux.Inference;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Formats;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// ftrace_pages_start without data symbols (Debian's i386 kernels), on a synthetic non-PAE i386 guest: the variables
/// ftrace_location_range's code loads are the candidates. What the i386 guest showed: lookup_rec's stack-protector
/// canary and preempt count are %fs: per-CPU operands whose link addresses lie in the freed init section, so the word
/// there is whatever reused the page, and once in a few boots it pointed at memory that passed for a chain of ftrace
/// pages (an empty page did), leaving two fits and no answer. Also a variable pointing into the list (ftrace_pages, the
/// last page) heads a chain of its own, a suffix of the start's.
/// </summary>
public class FtracePagesStartTests
{
    private const ulong Text = 0xC010_0000, TextEnd = 0xC018_0000, Code = Text;
    private const ulong PerCpuCanary = 0xC020_0000, PagesStart = 0xC020_0100, LastPage = 0xC020_0104, Other = 0xC020_0108;
    private const ulong PageA = 0xC021_0000, PageB = 0xC021_0040, Junk = 0xC021_0080, RecordsA = 0xC023_0000, RecordsB = 0xC023_1000, RecordsJunk = 0xC023_2000;
    private const ulong ModuleIp = 0xF800_0000;

    private sealed class Guest
    {
        public readonly byte[] Image = new byte[4 << 20];
        private readonly List<byte> _code = [];

        public void U32(ulong va, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Image.AsSpan((int)(va - 0xC000_0000)), value);

        /// <summary>mov eax, [variable], with an %fs: prefix when <paramref name="perCpu"/>.</summary>
        public void Load(ulong variable, bool perCpu = false)
        {
            if (perCpu) _code.Add(0x64);
            _code.Add(0xa1);
            _code.AddRange(BitConverter.GetBytes((uint)variable));
        }

        /// <summary>struct ftrace_page { next; records; int index; int order; } and its records' ips (dyn_ftrace { ip; flags; }).</summary>
        public void Page(ulong page, ulong next, ulong records, uint[] ips, int index = -1, int order = 0)
        {
            U32(page, (uint)next);
            U32(page + 4, (uint)records);
            U32(page + 8, (uint)(index < 0 ? ips.Length : index));
            U32(page + 12, (uint)order);
            for (int i = 0; i < ips.Length; i++) U32(records + (ulong)i * 8, ips[i]);
        }

        public (ulong? Start, string Why) Search()
        {
            _code.Add(0xc3); // ret
            _code.ToArray().CopyTo(Image, (int)(Code - 0xC000_0000));
            // Non-PAE page directory at 0x300000: PDE 0x300 maps 0xC0000000 onto physical 0 as one 4 MiB page.
            BinaryPrimitives.WriteUInt32LittleEndian(Image.AsSpan(0x300000 + 0x300 * 4), 0x0 | 0x1 | 0x2 | 0x80);
            using var file = new Support.TempFile(Image);
            using var memory = MemoryImage.Open(file.Path);
            var reader = new GuestReader(new Periscope.X86.AddressSpace(memory, 0x300000, Periscope.X86.PagingMode.Legacy32));
            var symbols = new KernelSymbols([new(Text, 'T', "_stext"), new(Code, 'T', "ftrace_location_range"), new(TextEnd, 'T', "_etext")]);
            ulong? start = PatchTableDataSearch.FtracePagesStart(reader, symbols, IntrospectionLimits.Default, out string why);
            return (start, why);
        }
    }

    /// <summary>The kernel's two pages (A, B) then a module's (M), ftrace_pages_start → A.</summary>
    private static Guest WithList()
    {
        var g = new Guest();
        g.Page(PageA, PageB, RecordsA, [0xC010_0010, 0xC010_0020, 0xC010_0030]);
        g.Page(PageB, Junk + 0x100, RecordsB, [0xC010_0040, 0xC010_0050]);
        g.Page(Junk + 0x100, 0, RecordsB + 0x100, [(uint)ModuleIp, (uint)ModuleIp + 0x40]);
        g.U32(PagesStart, (uint)PageA);
        g.Load(PagesStart);
        return g;
    }

    [Fact]
    public void The_one_fitting_chain_is_the_start()
    {
        var (start, why) = WithList().Search();
        Assert.Equal(PagesStart, start);
        Assert.Contains("heads 3 pages, 7 records", why);
    }

    [Fact]
    public void Of_a_chain_and_its_suffix_the_start_is_the_chain_holding_the_others_head()
    {
        // ftrace_pages, the last page the kernel filled, heads a chain too (its first ip in kernel text when no module
        // has appended pages yet): a suffix of the start's chain, not a second answer.
        var g = WithList();
        g.Page(Junk + 0x100, 0, RecordsB + 0x100, [0xC010_0060]);
        g.U32(LastPage, (uint)(Junk + 0x100));
        g.Load(LastPage);
        var (start, why) = g.Search();
        Assert.True(start == PagesStart, why);
    }

    [Fact]
    public void A_per_cpu_operand_is_no_candidate()
    {
        // lookup_rec's stack-protector canary: mov eax, %fs:__stack_chk_guard. Its link address lies in i386's freed init
        // section; here the word there points at a chain that fits on its own.
        var g = WithList();
        g.Page(Junk, 0, RecordsJunk, [0xC010_0100]);
        g.U32(PerCpuCanary, (uint)Junk);
        g.Load(PerCpuCanary, perCpu: true);
        var (start, why) = g.Search();
        Assert.True(start == PagesStart, why);
        Assert.DoesNotContain($"0x{PerCpuCanary:x}", why);
        Assert.Equal([(PerCpuCanary + 0x10, true)],
            PatchTableDataSearch.References([0x64, 0xa1, 0x00, 0x00, 0x20, 0xc0, 0x65, 0xa1, 0x04, 0x00, 0x20, 0xc0, 0xa1, 0x10, 0x00, 0x20, 0xc0, 0xc3],
                Code, 4, a => a >= 0xC000_0000));
    }

    [Theory]
    [InlineData("empty", "empty, as the kernel's first page never is")]
    [InlineData("overfull", "600 records in an order-0 block")]
    [InlineData("order", "order 11")]
    [InlineData("unsorted", "records not sorted")]
    [InlineData("outside text", "not in kernel text")]
    [InlineData("bad next", "page 2 at 0x1234: not a kernel address")]
    public void Memory_that_is_no_chain_of_ftrace_pages_does_not_fit(string shape, string fault)
    {
        // The word another load reads points at memory shaped like a page the kernel never leaves behind.
        var g = WithList();
        switch (shape)
        {
            case "empty": break; // zeroed: next NULL, index 0
            case "overfull": g.Page(Junk, 0, RecordsJunk, [0xC010_0100], index: 600); break; // 600 × 8 bytes > 4 KiB
            case "order": g.Page(Junk, 0, RecordsJunk, [0xC010_0100], order: 11); break;
            case "unsorted": g.Page(Junk, 0, RecordsJunk, [0xC010_0200, 0xC010_0100]); break;
            case "outside text": g.Page(Junk, 0, RecordsJunk, [0xC020_0000]); break;
            case "bad next": g.Page(Junk, 0x1234, RecordsJunk, [0xC010_0100]); break;
        }
        g.U32(Other, (uint)Junk);
        g.Load(Other);
        var (start, why) = g.Search();
        Assert.True(start == PagesStart, why);
        Assert.Contains($"0x{Other:x}: ", why);
        Assert.Contains(fault, why);
    }

    [Fact]
    public void Two_chains_neither_holding_the_other_are_ambiguous_and_say_so()
    {
        var g = WithList();
        g.Page(Junk, 0, RecordsJunk, [0xC010_0100]);
        g.U32(Other, (uint)Junk);
        g.Load(Other);
        var (start, why) = g.Search();
        Assert.Null(start);
        Assert.Contains("2 variables head chains of ftrace pages, none holding the others' heads", why);
        Assert.Contains($"0x{PagesStart:x}: heads 3 pages", why);
        Assert.Contains($"0x{Other:x}: heads 1 pages", why);
    }
}
