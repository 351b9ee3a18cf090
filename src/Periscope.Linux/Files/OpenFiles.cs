using System.Buffers.Binary;
using System.Globalization;
using Periscope.Linux.Model;

namespace Periscope.Linux.Files;

/// <summary>What an open file is, from its inode's type bits and the pseudo filesystem that made it.</summary>
public enum OpenFileKind
{
    Unknown,
    Regular,
    Directory,
    CharDevice,
    BlockDevice,
    /// <summary>A named pipe (S_IFIFO on a real filesystem).</summary>
    Fifo,
    Symlink,
    /// <summary>A socket (sockfs): shown as socket:[INODE].</summary>
    Socket,
    /// <summary>An anonymous pipe (pipefs): shown as pipe:[INODE].</summary>
    Pipe,
    /// <summary>An anon_inodefs file (eventfd, epoll, timerfd, signalfd, bpf-prog, ...): shown as anon_inode:NAME.</summary>
    AnonInode,
}

/// <summary>One open file descriptor of a process, as /proc/PID/fd and /proc/PID/fdinfo show it.</summary>
/// <param name="Path">The link target /proc/PID/fd/N shows (d_path, or a pseudo filesystem's d_dname name).</param>
/// <param name="Flags">fdinfo's flags: file->f_flags, with O_CLOEXEC when the descriptor's close-on-exec bit is set.</param>
/// <param name="Mode">file->f_mode (FMODE_READ, FMODE_WRITE, ...).</param>
public sealed record OpenFile(int Pid, int Fd, ulong File, string Path, OpenFileKind Kind, uint Flags, uint Mode, long Position, ulong Inode, int? MountId)
{
    public bool Readable => (Mode & OpenFiles.FMODE_READ) != 0;
    public bool Writable => (Mode & OpenFiles.FMODE_WRITE) != 0;
    /// <summary>lsof's access letter: r, w or u (both).</summary>
    public char Access => Readable && Writable ? 'u' : Writable ? 'w' : Readable ? 'r' : ' ';
}

/// <summary>One process's open files, and whether its file table could be read completely.</summary>
public sealed record ProcessFiles(LinuxTask Process, IReadOnlyList<OpenFile> Files, string? Gap);

/// <summary>
/// Open files per process from task->files->fdt: fd[0..max_fds) (max_fds is guest data, capped by
/// <see cref="Memory.IntrospectionLimits.MaxOpenFilesPerProcess"/>, all processes together by MaxOpenFilesTotal),
/// each struct file named as /proc/PID/fd names it: d_path for files on mounted filesystems, and for pseudo
/// filesystems the name their d_dname operation builds (sockfs_dname "socket:[INO]", pipefs_dname "pipe:[INO]",
/// anon_inodefs_dname "anon_inode:NAME"), recognised by the d_dname pointer's kallsyms name. Layouts come from BTF.
/// </summary>
public sealed class OpenFiles
{
    /// <summary>FMODE_READ and FMODE_WRITE (include/linux/fs.h, macros BTF does not carry; unchanged since 2.6).</summary>
    public const uint FMODE_READ = 0x1, FMODE_WRITE = 0x2;
    /// <summary>O_CLOEXEC on x86 (include/uapi/asm-generic/fcntl.h, 02000000 octal); fdinfo ORs it in from the fdtable.</summary>
    public const uint O_CLOEXEC = 0x80000;
    /// <summary>S_IFMT and the file types (include/uapi/linux/stat.h, POSIX values).</summary>
    private const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000, S_IFBLK = 0x6000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;
    /// <summary>Descriptors read per fd-array chunk.</summary>
    private const int Chunk = 512;

    private readonly LinuxKernel _kernel;
    private readonly GuestReader _r;
    private readonly Layout? _l;
    private readonly PathResolver _paths;
    private readonly Dictionary<ulong, OpenFileKind> _dnames = [];
    private long _total;

    public OpenFiles(LinuxKernel kernel)
    {
        _kernel = kernel;
        _r = kernel.Reader;
        _paths = new PathResolver(_r, kernel.Offsets, kernel.Limits, kernel.Diagnostics);
        var b = new MemberOffsets(kernel.Layouts);
        _l = Layout.From(b);
        Unavailable = _l is null ? $"open files: {MemberOffsets.Lacks(b)}" : null;
        foreach (var (name, kind) in new[] { ("sockfs_dname", OpenFileKind.Socket), ("pipefs_dname", OpenFileKind.Pipe), ("anon_inodefs_dname", OpenFileKind.AnonInode) })
            if (kernel.Symbols.TryGetAddress(name, out ulong va)) _dnames[va] = kind;
    }

    /// <summary>Why open files cannot be read on this kernel at all; null when they can.</summary>
    public string? Unavailable { get; }

    /// <summary>The open files of <paramref name="process"/> (its file table is shared by its threads).</summary>
    public ProcessFiles Read(LinuxTask process)
    {
        if (_l is not { } l) return new(process, [], Unavailable);
        if (!_r.TryPointer(process.Address + l.TaskFiles, out ulong files)) return new(process, [], $"pid {process.Pid}: task->files is unreadable");
        if (files == 0) return new(process, [], null); // a kernel thread or an exited process
        if (!_r.IsKernelPointer(files) || !_r.TryPointer(files + l.FilesFdt, out ulong fdt) || !_r.IsKernelPointer(fdt)
            || !_r.TryU32(fdt + l.FdtMaxFds, out uint maxFds) || !_r.TryPointer(fdt + l.FdtFd, out ulong fdArray)
            || !_r.TryPointer(fdt + l.FdtCloseOnExec, out ulong cloexec))
            return new(process, [], $"pid {process.Pid}: files_struct 0x{files:x} or its fdtable is unreadable");
        string? gap = null;
        long slots = maxFds;
        if (slots > _kernel.Limits.MaxOpenFilesPerProcess)
        {
            gap = $"pid {process.Pid}: fdtable max_fds = {maxFds}: only the first {_kernel.Limits.MaxOpenFilesPerProcess} read (MaxOpenFilesPerProcess)";
            slots = _kernel.Limits.MaxOpenFilesPerProcess;
        }
        var result = new List<OpenFile>();
        // fd[] holds pointers and close_on_exec unsigned longs: the guest's word (4 bytes on i386).
        int word = _r.PointerSize;
        var buffer = new byte[Chunk * word];
        for (long start = 0; start < slots; start += Chunk)
        {
            int count = (int)Math.Min(Chunk, slots - start);
            if (_total + count > _kernel.Limits.MaxOpenFilesTotal)
            {
                gap = $"pid {process.Pid}: descriptors from {start} not read: MaxOpenFilesTotal = {_kernel.Limits.MaxOpenFilesTotal} reached";
                break;
            }
            _total += count;
            var bytes = buffer.AsSpan(0, count * word);
            if (_r.Read(fdArray + (ulong)start * (ulong)word, bytes) != bytes.Length)
            {
                gap = $"pid {process.Pid}: fd array 0x{fdArray:x} is unreadable at descriptor {start}";
                break;
            }
            for (int i = 0; i < count; i++)
            {
                ulong file = word == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * 8)..]) : BinaryPrimitives.ReadUInt32LittleEndian(bytes[(i * 4)..]);
                if (file == 0) continue;
                int fd = (int)(start + i);
                if (!_r.IsKernelPointer(file)) { gap = $"pid {process.Pid}: fd {fd} holds 0x{file:x}, not a kernel pointer"; continue; }
                result.Add(ReadFile(process.Pid, fd, file, cloexec));
            }
        }
        return new(process, result, gap);
    }

    private OpenFile ReadFile(int pid, int fd, ulong file, ulong cloexecBitmap)
    {
        var l = _l!;
        _r.TryU32(file + l.FileFlags, out uint flags);
        _r.TryU32(file + l.FileMode, out uint mode);
        _r.TryU64(file + l.FilePos, out ulong pos);
        int bitsPerWord = 8 * _r.PointerSize;
        if (cloexecBitmap != 0 && _r.TryULong(cloexecBitmap + (ulong)(fd / bitsPerWord * _r.PointerSize), out ulong word) && (word >> (fd % bitsPerWord) & 1) != 0)
            flags |= O_CLOEXEC;
        ulong ino = 0;
        uint imode = 0;
        if (_r.TryPointer(file + l.FileInode, out ulong inode) && _r.IsKernelPointer(inode))
        {
            _r.TryULong(inode + l.InodeIno, out ino); // unsigned long: 4 bytes on i386
            if (_r.TryU32(inode + l.InodeMode, out uint m)) imode = m & 0xFFFF;
        }
        var kind = (imode & S_IFMT) switch
        {
            S_IFREG => OpenFileKind.Regular, S_IFDIR => OpenFileKind.Directory, S_IFCHR => OpenFileKind.CharDevice, S_IFBLK => OpenFileKind.BlockDevice,
            S_IFIFO => OpenFileKind.Fifo, S_IFLNK => OpenFileKind.Symlink, S_IFSOCK => OpenFileKind.Socket, _ => OpenFileKind.Unknown,
        };
        int? mountId = null;
        string? path = null;
        _r.TryPointer(file + l.FilePath + l.PathDentry, out ulong dentry);
        if (dentry != 0 && _r.TryPointer(dentry + l.DentryOp, out ulong ops) && ops != 0 && _r.TryPointer(ops + l.DentryOpsDname, out ulong dname)
            && dname != 0 && _dnames.TryGetValue(dname, out var pseudo))
        {
            kind = pseudo;
            path = pseudo switch
            {
                OpenFileKind.Socket => $"socket:[{ino.ToString(CultureInfo.InvariantCulture)}]",
                OpenFileKind.Pipe => $"pipe:[{ino.ToString(CultureInfo.InvariantCulture)}]",
                _ => $"anon_inode:{_paths.DentryName(dentry) ?? "?"}",
            };
        }
        if (l.MountMnt is { } mountMnt && l.MountId is { } mountIdOff && _r.TryPointer(file + l.FilePath + l.PathMnt, out ulong vfsmount)
            && _r.IsKernelPointer(vfsmount) && _r.TryI32(vfsmount - mountMnt + mountIdOff, out int id))
            mountId = id;
        path ??= (_paths.FilePath(file) ?? "?") + (IsUnlinked(dentry) ? " (deleted)" : "");
        return new OpenFile(pid, fd, file, path, kind, flags, mode, unchecked((long)pos), ino, mountId);
    }

    /// <summary>d_unlinked(): a dentry that is not the root of its tree and is unhashed (d_hash.pprev == NULL) was deleted.</summary>
    private bool IsUnlinked(ulong dentry)
    {
        if (dentry == 0 || _l!.DentryHashPprev is not { } pprevOff) return false;
        if (!_r.TryPointer(dentry + (ulong)_kernel.Offsets.Path.DentryParent, out ulong parent) || parent == dentry) return false;
        return _r.TryPointer(dentry + pprevOff, out ulong pprev) && pprev == 0;
    }

    private sealed record Layout
    {
        public ulong TaskFiles, FilesFdt, FdtMaxFds, FdtFd, FdtCloseOnExec, FileFlags, FileMode, FilePos, FileInode, FilePath, PathDentry, PathMnt;
        public ulong InodeIno, InodeMode, DentryOp, DentryOpsDname;
        /// <summary>struct mount's embedded vfsmount and mnt_id: optional (the mount id column is empty without them).</summary>
        public ulong? MountMnt, MountId, DentryHashPprev;

        public static Layout? From(MemberOffsets b)
        {
            int?[] o =
            [
                b.Offset("task_struct", "files"), b.Offset("files_struct", "fdt"), b.Offset("fdtable", "max_fds"), b.Offset("fdtable", "fd"),
                b.Offset("fdtable", "close_on_exec"), b.Offset("file", "f_flags"), b.Offset("file", "f_mode"), b.Offset("file", "f_pos"),
                b.Offset("file", "f_inode"), b.Offset("file", "f_path"), b.Offset("path", "dentry"), b.Offset("path", "mnt"),
                b.Offset("inode", "i_ino"), b.Offset("inode", "i_mode"), b.Offset("dentry", "d_op"), b.Offset("dentry_operations", "d_dname"),
            ];
            if (o.Any(x => x is null)) return null;
            var v = o.Select(x => (ulong)x!.Value).ToArray();
            return new Layout
            {
                TaskFiles = v[0], FilesFdt = v[1], FdtMaxFds = v[2], FdtFd = v[3], FdtCloseOnExec = v[4], FileFlags = v[5], FileMode = v[6], FilePos = v[7],
                FileInode = v[8], FilePath = v[9], PathDentry = v[10], PathMnt = v[11], InodeIno = v[12], InodeMode = v[13], DentryOp = v[14],
                DentryOpsDname = v[15], MountMnt = (ulong?)b.Optional("mount", "mnt"), MountId = (ulong?)b.Optional("mount", "mnt_id"),
                DentryHashPprev = (ulong?)b.Optional("dentry", "d_hash.pprev"),
            };
        }
    }
}
