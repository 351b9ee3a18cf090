using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Periscope.Memory.Files;

/// <summary>What kind of file system object a dump path names. Only <see cref="Regular"/> is ever opened.</summary>
public enum DumpFileKind { Regular, Directory, Fifo, CharacterDevice, BlockDevice, Socket, Other }

/// <summary>Size and allocation of an opened dump file, taken from fstat on the opened descriptor.</summary>
public readonly record struct DumpFileInfo(ulong Length, ulong AllocatedBytes)
{
    /// <summary>Bytes of the file that are holes (read as zeros, take no disk or page cache until touched).</summary>
    public ulong UnallocatedBytes => AllocatedBytes >= Length ? 0 : Length - AllocatedBytes;
}

/// <summary>
/// Opens dump files and live RAM files without ever blocking: the path is checked with stat before open (a FIFO would
/// block open() until a writer appears; a device could be endless), then opened with O_NONBLOCK and checked again with
/// fstat on the descriptor, so a path swapped between the two calls is still caught.
/// </summary>
public static partial class DumpFile
{
    public static SafeFileHandle OpenRegular(string path, out DumpFileInfo info)
    {
        if (!OperatingSystem.IsLinux()) return OpenPortable(path, out info);
        if (Native.Stat(path, out var before) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Native.ENOENT or Native.ENOTDIR) throw new FileNotFoundException($"{path}: no such file", path);
            ThrowHelper.Format(path, $"cannot stat: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        RequireRegular(path, before.Mode);
        int fd = Native.Open(path, Native.O_RDONLY | Native.O_NONBLOCK | Native.O_CLOEXEC | Native.O_NOCTTY);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Native.ENOENT or Native.ENOTDIR) throw new FileNotFoundException($"{path}: no such file", path);
            if (errno is Native.EACCES or Native.EPERM) throw new UnauthorizedAccessException($"{path}: permission denied");
            ThrowHelper.Format(path, $"cannot open: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (Native.FStat(fd, out var after) != 0) ThrowHelper.Format(path, $"cannot fstat: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            RequireRegular(path, after.Mode);
            if (after.Device != before.Device || after.Inode != before.Inode) ThrowHelper.Format(path, "the file was replaced while it was being opened");
            info = new DumpFileInfo(after.Size < 0 ? 0 : (ulong)after.Size, after.Blocks < 0 ? 0 : (ulong)after.Blocks * 512);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A whole small regular file (a key, a config, a manifest), opened as <see cref="OpenRegular"/> opens it and read
    /// only when it holds at most <paramref name="maxBytes"/>; otherwise null, with its <paramref name="length"/>, so that
    /// the caller names its own limit. Bytes past a file that shrank while read are not returned.
    /// </summary>
    public static byte[]? ReadWholeIfAtMost(string path, long maxBytes, out ulong length)
    {
        using var handle = OpenRegular(path, out var info);
        length = info.Length;
        if (info.Length > (ulong)maxBytes) return null;
        var bytes = new byte[(int)info.Length];
        int total = 0;
        while (total < bytes.Length)
        {
            int n = RandomAccess.Read(handle, bytes.AsSpan(total), total);
            if (n <= 0) break;
            total += n;
        }
        return total == bytes.Length ? bytes : bytes[..total];
    }

    /// <summary>The kind of object at <paramref name="path"/> (following symlinks), or null when it does not exist.</summary>
    public static DumpFileKind? KindOf(string path)
    {
        if (!OperatingSystem.IsLinux()) return File.Exists(path) ? DumpFileKind.Regular : Directory.Exists(path) ? DumpFileKind.Directory : null;
        return Native.Stat(path, out var st) == 0 ? Classify(st.Mode) : null;
    }

    private static void RequireRegular(string path, uint mode)
    {
        var kind = Classify(mode);
        if (kind != DumpFileKind.Regular)
            ThrowHelper.Format(path, $"is a {Describe(kind)}, not a regular file; only regular files (a dump, or a live RAM file in /dev/shm) are opened");
    }

    private static DumpFileKind Classify(uint mode) => (mode & Native.S_IFMT) switch
    {
        Native.S_IFREG => DumpFileKind.Regular,
        Native.S_IFDIR => DumpFileKind.Directory,
        Native.S_IFIFO => DumpFileKind.Fifo,
        Native.S_IFCHR => DumpFileKind.CharacterDevice,
        Native.S_IFBLK => DumpFileKind.BlockDevice,
        Native.S_IFSOCK => DumpFileKind.Socket,
        _ => DumpFileKind.Other,
    };

    private static string Describe(DumpFileKind kind) => kind switch
    {
        DumpFileKind.Directory => "directory",
        DumpFileKind.Fifo => "FIFO (named pipe)",
        DumpFileKind.CharacterDevice => "character device",
        DumpFileKind.BlockDevice => "block device",
        DumpFileKind.Socket => "socket",
        _ => "special file",
    };

    private static SafeFileHandle OpenPortable(string path, out DumpFileInfo info)
    {
        if (Directory.Exists(path)) ThrowHelper.Format(path, "is a directory, not a regular file");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        ulong length = (ulong)RandomAccess.GetLength(handle);
        info = new DumpFileInfo(length, length);
        return handle;
    }

    /// <summary>
    /// glibc on x86-64 Linux. struct stat's layout is the kernel's x86-64 ABI (asm/stat.h), fixed since the
    /// architecture began: st_dev@0, st_ino@8, st_mode@24, st_size@48, st_blocks@64 (512-byte units), 144 bytes.
    /// </summary>
    private static partial class Native
    {
        public const int O_RDONLY = 0, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
        public const int EPERM = 1, ENOENT = 2, EACCES = 13, ENOTDIR = 20;
        public const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFREG = 0x8000, S_IFBLK = 0x6000, S_IFDIR = 0x4000,
            S_IFCHR = 0x2000, S_IFIFO = 0x1000;

        [StructLayout(LayoutKind.Explicit, Size = 144)]
        public struct StatBuffer
        {
            [FieldOffset(0)] public ulong Device;
            [FieldOffset(8)] public ulong Inode;
            [FieldOffset(24)] public uint Mode;
            [FieldOffset(48)] public long Size;
            [FieldOffset(64)] public long Blocks;
        }

        static Native()
        {
            if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
                throw new PlatformNotSupportedException("DumpFile's struct stat layout is the x86-64 one");
        }

        [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Stat(string path, out StatBuffer buffer);

        [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
        public static partial int FStat(int fd, out StatBuffer buffer);

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags);
    }
}
