using Periscope.Linux.Inference;

namespace Periscope.UnitTests;

/// <summary>
/// The lsof offset rules' data facts (<see cref="OpenFileRule"/>) on synthetic memory, 64-bit and i386: an embedded or grown
/// fdtable is recognised and everything else (bad pointers, self loops, absurd max_fds, arrays outside the files_struct)
/// is not; OPEN_FMODE; the socket back links.
/// </summary>
public class InferenceOpenFileTests
{
    private const ulong Kernel = 0xffff_8880_0000_0000;
    private const ulong Kernel32 = 0xc000_0000;

    private sealed class Memory(int pointerSize)
    {
        public readonly Dictionary<ulong, ulong> Words = [];
        public readonly Dictionary<ulong, uint> U32s = [];
        public ulong? Word(ulong va) => Words.TryGetValue(va, out ulong v) ? v : null;
        public uint? U32(ulong va) => U32s.TryGetValue(va, out uint v) ? v : null;
        public bool IsKernel(ulong va) => va >= (pointerSize == 8 ? Kernel : Kernel32);

        /// <summary>A files_struct at <paramref name="files"/> whose fdt (at fdtOffset) points to its embedded fdtab, laid out as
        /// the kernel lays it out: fdtab { max_fds, fd, close_on_exec, open_fds, full_fds_bits, rcu }, then the initial arrays.</summary>
        public void EmbeddedFiles(ulong files, int fdtOffset)
        {
            ulong p = (ulong)pointerSize, fdtab = files + (ulong)fdtOffset + p, init = fdtab + 8 * p;
            Words[files + (ulong)fdtOffset] = fdtab;
            U32s[fdtab] = 8 * (uint)pointerSize;
            Words[fdtab + p] = init + 3 * p;       // fd -> fd_array
            Words[fdtab + 2 * p] = init;           // close_on_exec -> close_on_exec_init
            Words[fdtab + 3 * p] = init + p;       // open_fds -> open_fds_init
            Words[fdtab + 4 * p] = init + 2 * p;   // full_fds_bits -> full_fds_bits_init
        }
    }

    private static FdtableShape Classify(Memory m, ulong files, int fdtOffset, int pointerSize) =>
        OpenFileRule.Classify(files, fdtOffset, pointerSize, m.Word, m.U32, m.IsKernel);

    [Theory]
    [InlineData(8, 0x20)]
    [InlineData(4, 0x14)]
    public void An_embedded_fdtable_is_recognised_at_its_offset_only(int pointerSize, int fdtOffset)
    {
        var m = new Memory(pointerSize);
        ulong files = (pointerSize == 8 ? Kernel : Kernel32) + 0x1000;
        m.EmbeddedFiles(files, fdtOffset);
        Assert.Equal(FdtableShape.Embedded, Classify(m, files, fdtOffset, pointerSize));
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, fdtOffset + pointerSize, pointerSize));
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, fdtOffset - pointerSize, pointerSize));
    }

    [Fact]
    public void An_embedded_fdtable_with_a_wrong_max_fds_or_arrays_elsewhere_is_invalid()
    {
        var m = new Memory(8);
        ulong files = Kernel + 0x1000, fdtab = files + 0x28;
        m.EmbeddedFiles(files, 0x20);
        m.U32s[fdtab] = 128; // an embedded table always has NR_OPEN_DEFAULT == BITS_PER_LONG slots
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
        m.U32s[fdtab] = 64;
        m.Words[fdtab + 8] = files + 0x100_0000; // fd array far outside the files_struct
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
        m.EmbeddedFiles(files, 0x20);
        m.Words[fdtab + 24] = m.Words[fdtab + 16]; // open_fds must follow close_on_exec
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
    }

    [Fact]
    public void A_grown_fdtable_needs_a_multiple_of_bits_per_long_and_kernel_arrays()
    {
        var m = new Memory(8);
        ulong files = Kernel + 0x1000, fdt = Kernel + 0x8000;
        m.Words[files + 0x20] = fdt;
        m.U32s[fdt] = 256;
        for (ulong i = 1; i <= 4; i++) m.Words[fdt + 8 * i] = Kernel + 0x10000 * i;
        Assert.Equal(FdtableShape.Grown, Classify(m, files, 0x20, 8));
        m.U32s[fdt] = 0xffff_fff0; // hostile: 2^32 - 16 descriptors is no multiple of 64 (and a classification never allocates)
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
        m.U32s[fdt] = 256;
        m.Words[fdt + 8] = 0x4141_4141; // fd array is not a kernel pointer
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
    }

    [Fact]
    public void Unreadable_or_user_pointers_and_self_loops_are_invalid()
    {
        var m = new Memory(8);
        ulong files = Kernel + 0x1000;
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8)); // nothing readable
        m.Words[files + 0x20] = 0x7fff_0000_0000; // a user address
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
        m.Words[files + 0x20] = files + 0x20; // points at itself: its "max_fds" is a pointer's low half
        m.U32s[files + 0x20] = 0x1020;
        for (ulong i = 1; i <= 4; i++) m.Words[files + 0x20 + 8 * i] = files + 0x20;
        Assert.Equal(FdtableShape.Invalid, Classify(m, files, 0x20, 8));
    }

    [Theory]
    [InlineData(0u, 1u, true)]          // O_RDONLY -> FMODE_READ
    [InlineData(1u, 2u, true)]          // O_WRONLY -> FMODE_WRITE
    [InlineData(2u, 3u, true)]          // O_RDWR -> both
    [InlineData(0x8002u, 0x4e03u, true)] // O_RDWR|O_LARGEFILE, with FMODE_LSEEK|PREAD|PWRITE|...
    [InlineData(0u, 3u, false)]
    [InlineData(2u, 1u, false)]
    [InlineData(0x0100_0000u, 1u, false)] // no f_flags bit at or above 1 << 23: a pointer half or a counter
    public void Open_fmode_relates_access_flags_and_mode(uint flags, uint mode, bool agree) =>
        Assert.Equal(agree, OpenFileRule.AccessModesAgree(flags, mode));

    [Fact]
    public void O_path_and_ioctl_only_opens_prove_nothing() =>
        Assert.All(new[] { (0x200000u, 0u), (3u, 0u) }, x => Assert.Null(OpenFileRule.AccessModesAgree(x.Item1, x.Item2)));

    [Fact]
    public void An_empty_list_head_points_to_itself_twice()
    {
        var m = new Memory(8);
        ulong node = Kernel + 0x100;
        m.Words[node] = node;
        Assert.False(OpenFileRule.IsEmptyList(node, 8, m.Word));
        m.Words[node + 8] = node;
        Assert.True(OpenFileRule.IsEmptyList(node, 8, m.Word));
        m.Words[node + 8] = node + 8;
        Assert.False(OpenFileRule.IsEmptyList(node, 8, m.Word));
    }

    [Fact]
    public void A_socket_file_links_back_through_socket_and_sock_only_with_the_right_offsets()
    {
        var m = new Memory(8);
        ulong file = Kernel + 0x1000, socketAlloc = Kernel + 0x2000, inode = socketAlloc + 0x80, sock = Kernel + 0x3000;
        m.Words[socketAlloc + 0x10] = file;
        m.Words[socketAlloc + 0x18] = sock;
        m.Words[sock + 0x120] = socketAlloc;
        Assert.True(OpenFileRule.LinksBack(file, inode, socketAlloc, 0x80, 0x10, 0x18, 0x120, m.Word, m.IsKernel));
        Assert.False(OpenFileRule.LinksBack(file, inode, socketAlloc, 0x78, 0x10, 0x18, 0x120, m.Word, m.IsKernel)); // not the inode's socket_alloc
        Assert.False(OpenFileRule.LinksBack(file, inode, socketAlloc, 0x80, 0x18, 0x10, 0x120, m.Word, m.IsKernel)); // file and sk swapped
        Assert.False(OpenFileRule.LinksBack(file, inode, socketAlloc, 0x80, 0x10, 0x18, 0x128, m.Word, m.IsKernel)); // sk_socket elsewhere
        // Hostile: the sock's back link points to itself, and a zero vfs_inode distance.
        m.Words[sock + 0x120] = sock;
        Assert.False(OpenFileRule.LinksBack(file, inode, socketAlloc, 0x80, 0x10, 0x18, 0x120, m.Word, m.IsKernel));
        Assert.False(OpenFileRule.LinksBack(file, inode, inode, 0, 0x10, 0x18, 0x120, m.Word, m.IsKernel));
    }
}
