namespace Periscope.Linux.Inference;

/// <summary>How a files_struct's fdt pointer relates to the files_struct (the fdtable rule's verdict on one process).</summary>
public enum FdtableShape
{
    /// <summary>Not an fdtable: a bad pointer, an impossible max_fds, or arrays that are not where the kernel puts them.</summary>
    Invalid,
    /// <summary>fdt == &amp;files->fdtab, with fd, close_on_exec, open_fds and full_fds_bits pointing into the files_struct's
    /// own initial arrays and max_fds == BITS_PER_LONG (NR_OPEN_DEFAULT): every process that never had more than
    /// BITS_PER_LONG descriptors.</summary>
    Embedded,
    /// <summary>A grown table (expand_fdtable): a separate fdtable whose max_fds is a multiple of BITS_PER_LONG.</summary>
    Grown,
}

/// <summary>
/// The data facts behind the lsof offsets without BTF, as pure checks over a reader (unit-tested on synthetic memory).
/// Kernel facts used (include/linux/fdtable.h, unchanged in declaration order since 2.6.x): struct fdtable is
/// { unsigned int max_fds; struct file **fd; unsigned long *close_on_exec; unsigned long *open_fds;
/// unsigned long *full_fds_bits; ... }, and a files_struct embeds one (fdtab) right after its fdt pointer, followed by
/// its close_on_exec_init, open_fds_init, full_fds_bits_init words and its fd_array.
/// </summary>
public static class OpenFileRule
{
    /// <summary>fdtable member offsets in pointer-sized words: max_fds (padded to a word), fd, close_on_exec, open_fds, full_fds_bits.</summary>
    public const int FdtFdWord = 1, FdtCloseOnExecWord = 2, FdtOpenFdsWord = 3, FdtFullFdsBitsWord = 4;
    /// <summary>How far past the files_struct its initial arrays may lie: sizeof(struct files_struct) is 704 bytes on 6.x x86-64.</summary>
    public const int MaxFilesStructBytes = 1024;
    /// <summary>O_ACCMODE and O_PATH (include/uapi/asm-generic/fcntl.h); f_flags uses no bit at or above 1 &lt;&lt; 23.</summary>
    public const uint OAccMode = 3, OPath = 0x200000, FlagsLimit = 1u << 23;

    /// <summary>What <paramref name="files"/> + <paramref name="fdtOffset"/> holds: the embedded fdtable, a grown one, or nothing valid.</summary>
    public static FdtableShape Classify(ulong files, int fdtOffset, int pointerSize, Func<ulong, ulong?> word, Func<ulong, uint?> u32, Func<ulong, bool> isKernel)
    {
        ulong p = (ulong)pointerSize;
        if (word(files + (ulong)fdtOffset) is not { } fdt || !isKernel(fdt)) return FdtableShape.Invalid;
        if (u32(fdt) is not { } maxFds || word(fdt + FdtFdWord * p) is not { } fd || word(fdt + FdtCloseOnExecWord * p) is not { } coe
            || word(fdt + FdtOpenFdsWord * p) is not { } open || word(fdt + FdtFullFdsBitsWord * p) is not { } full)
            return FdtableShape.Invalid;
        uint bitsPerLong = 8 * (uint)pointerSize;
        ulong fdtab = files + (ulong)fdtOffset + p;
        if (fdt == fdtab)
        {
            // The initial arrays follow fdtab inside the files_struct: close_on_exec_init, open_fds_init, full_fds_bits_init, fd_array.
            ulong end = files + MaxFilesStructBytes;
            bool ok = maxFds == bitsPerLong && coe > fdtab + FdtFullFdsBitsWord * p && open == coe + p && full == open + p && fd > full && fd < end;
            return ok ? FdtableShape.Embedded : FdtableShape.Invalid;
        }
        bool grown = maxFds > bitsPerLong && maxFds % bitsPerLong == 0 && isKernel(fd) && isKernel(coe) && isKernel(open) && isKernel(full);
        return grown ? FdtableShape.Grown : FdtableShape.Invalid;
    }

    /// <summary>OPEN_FMODE: an open file's f_mode read/write bits are its f_flags access mode plus one (O_RDONLY → FMODE_READ,
    /// O_WRONLY → FMODE_WRITE, O_RDWR → both). O_PATH files (neither) and O_ACCMODE (3, ioctl-only opens) prove nothing.</summary>
    public static bool? AccessModesAgree(uint flags, uint mode)
    {
        if (flags >= FlagsLimit) return false;
        if ((flags & OPath) != 0 || (flags & OAccMode) == OAccMode) return null;
        return ((flags & OAccMode) + 1 & OAccMode) == (mode & OAccMode);
    }

    /// <summary>An empty list_head (next == prev == itself): an unlocked mutex's wait_list.</summary>
    public static bool IsEmptyList(ulong node, int pointerSize, Func<ulong, ulong?> word) =>
        word(node) == node && word(node + (ulong)pointerSize) == node;

    /// <summary>
    /// A socket file's links: private_data is a struct socket at the start of the socket_alloc whose vfs_inode is the
    /// file's inode (socket = inode - vfsInode), socket.file points back to the file, socket.sk is a sock whose sk_socket
    /// points back to the socket.
    /// </summary>
    public static bool LinksBack(ulong file, ulong inode, ulong socket, int vfsInode, int socketFile, int socketSk, int sockSocket,
        Func<ulong, ulong?> word, Func<ulong, bool> isKernel)
    {
        if (vfsInode <= 0 || socket != inode - (ulong)vfsInode || !isKernel(socket)) return false;
        if (word(socket + (ulong)socketFile) != file) return false;
        return word(socket + (ulong)socketSk) is { } sk && isKernel(sk) && word(sk + (ulong)sockSocket) == socket;
    }
}
