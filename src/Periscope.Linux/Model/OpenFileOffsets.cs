using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// What `lsof` reads (include/linux/fdtable.h, fs.h, dcache.h): task->files->fdt, the fdtable's arrays, struct file's
/// flags, mode and position, inode.i_mode and the dentry operations that name pseudo files. From BTF, or inferred from
/// the data without it (<see cref="Inference.OffsetInference"/>, OpenFileRules). Null as a group when a member is unknown.
/// </summary>
public sealed record OpenFileOffsets
{
    public int TaskFiles { get; init; }
    public int FilesFdt { get; init; }
    public int FdtMaxFds { get; init; }
    public int FdtFd { get; init; }
    public int FdtCloseOnExec { get; init; }
    public int FileFlags { get; init; }
    public int FileMode { get; init; }
    public int FilePos { get; init; }
    /// <summary>struct path { mnt, dentry } (the layout <see cref="PathOffsets"/> uses too).</summary>
    public int PathMnt { get; init; }
    public int PathDentry { get; init; }
    public int InodeMode { get; init; }
    public int DentryOp { get; init; }
    public int DentryOpsDname { get; init; }
    /// <summary>dentry.d_hash.pprev: NULL once the dentry is unhashed (deleted files); optional.</summary>
    public int? DentryHashPprev { get; init; }

    /// <summary>From BTF; null when a struct or required member is missing.</summary>
    public static OpenFileOffsets? FromBtf(BtfTypes btf) => From((structName, path) => btf.FindStruct(structName)?.OffsetInside(path));

    /// <summary>From the inference report's known members (inferred now, or loaded from the offsets cache).</summary>
    public static OpenFileOffsets? FromReport(Inference.InferenceReport report) => From((structName, path) => report.Find(structName, path)?.Offset);

    /// <summary>From a source of member offsets by the kernel's names; null when a required member is unknown.</summary>
    private static OpenFileOffsets? From(Func<string, string, int?> O)
    {
        if (O("task_struct", "files") is not { } files || O("files_struct", "fdt") is not { } fdt || O("fdtable", "max_fds") is not { } maxFds
            || O("fdtable", "fd") is not { } fd || O("fdtable", "close_on_exec") is not { } coe || O("file", "f_flags") is not { } flags
            || O("file", "f_mode") is not { } mode || O("file", "f_pos") is not { } pos || O("path", "mnt") is not { } mnt
            || O("path", "dentry") is not { } dentry || O("inode", "i_mode") is not { } imode || O("dentry", "d_op") is not { } dop
            || O("dentry_operations", "d_dname") is not { } dname)
            return null;
        return new OpenFileOffsets
        {
            TaskFiles = files, FilesFdt = fdt, FdtMaxFds = maxFds, FdtFd = fd, FdtCloseOnExec = coe, FileFlags = flags, FileMode = mode, FilePos = pos,
            PathMnt = mnt, PathDentry = dentry, InodeMode = imode, DentryOp = dop, DentryOpsDname = dname, DentryHashPprev = O("dentry", "d_hash.pprev"),
        };
    }

    /// <summary>Every member under the kernel's struct and member names (<see cref="Inference.OffsetTable"/>).</summary>
    public void List(Action<string, string, int?> add)
    {
        add("task_struct", "files", TaskFiles); add("files_struct", "fdt", FilesFdt);
        add("fdtable", "max_fds", FdtMaxFds); add("fdtable", "fd", FdtFd); add("fdtable", "close_on_exec", FdtCloseOnExec);
        add("file", "f_flags", FileFlags); add("file", "f_mode", FileMode); add("file", "f_pos", FilePos);
        add("path", "mnt", PathMnt); add("path", "dentry", PathDentry); add("inode", "i_mode", InodeMode);
        add("dentry", "d_op", DentryOp); add("dentry_operations", "d_dname", DentryOpsDname); add("dentry", "d_hash.pprev", DentryHashPprev);
    }
}

/// <summary>
/// The links from an open socket file to its socket and sock (include/linux/net.h, net/sock.h): file->private_data is
/// the struct socket, which sits at the start of a socket_alloc whose vfs_inode is the file's inode; socket->sk is the
/// sock, whose sk_socket points back. From BTF, or inferred without it; null when a member is unknown.
/// </summary>
public sealed record SocketFileOffsets
{
    public int FilePrivateData { get; init; }
    public int SocketState { get; init; }
    public int SocketFile { get; init; }
    public int SocketSk { get; init; }
    public int SocketAllocSocket { get; init; }
    public int SocketAllocVfsInode { get; init; }
    public int SockSkSocket { get; init; }

    public static SocketFileOffsets? FromBtf(BtfTypes btf) => From((structName, path) => btf.FindStruct(structName)?.OffsetInside(path));

    /// <summary>From the inference report's known members (inferred now, or loaded from the offsets cache).</summary>
    public static SocketFileOffsets? FromReport(Inference.InferenceReport report) => From((structName, path) => report.Find(structName, path)?.Offset);

    private static SocketFileOffsets? From(Func<string, string, int?> O)
    {
        if (O("file", "private_data") is not { } pd || O("socket", "state") is not { } state || O("socket", "file") is not { } file
            || O("socket", "sk") is not { } sk || O("socket_alloc", "socket") is not { } socket || O("socket_alloc", "vfs_inode") is not { } inode
            || O("sock", "sk_socket") is not { } skSocket)
            return null;
        return new SocketFileOffsets
        {
            FilePrivateData = pd, SocketState = state, SocketFile = file, SocketSk = sk, SocketAllocSocket = socket, SocketAllocVfsInode = inode,
            SockSkSocket = skSocket,
        };
    }

    public void List(Action<string, string, int?> add)
    {
        add("file", "private_data", FilePrivateData); add("socket", "state", SocketState); add("socket", "file", SocketFile);
        add("socket", "sk", SocketSk); add("socket_alloc", "socket", SocketAllocSocket); add("socket_alloc", "vfs_inode", SocketAllocVfsInode);
        add("sock", "sk_socket", SockSkSocket);
    }
}
