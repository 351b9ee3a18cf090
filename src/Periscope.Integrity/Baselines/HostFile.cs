using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Periscope.Memory;
using Periscope.Memory.Files;

namespace Periscope.Integrity.Baselines;

public enum HostFileKind
{
    Missing,
    Regular,
    Directory,
    /// <summary>FIFO, socket, character or block device: opening or reading it can block or never end.</summary>
    Special,
    Symlink,
}

/// <summary>
/// What a path on the host is, asked without opening it (an open() of a FIFO blocks until a writer appears), and a
/// bounded read of regular files, opened the one way Periscope opens any file it did not write
/// (<see cref="DumpFile.OpenRegular"/>: non-blocking, and checked again on the open descriptor). Uses statx(2), whose
/// struct layout is the same on every Linux architecture (it can also tell symbolic links); elsewhere falls back to
/// what FileInfo can tell.
/// </summary>
public static partial class HostFile
{
    private const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100, StatxType = 0x1, StatxSize = 0x200;
    private const int StatxModeOffset = 28, StatxSizeOffset = 40, StatxBytes = 256;
    private const ushort SIfMt = 0xf000, SIfReg = 0x8000, SIfDir = 0x4000, SIfLnk = 0xa000;

    /// <summary>The kind and size of <paramref name="path"/>; symbolic links are followed unless <paramref name="followLinks"/> is false.</summary>
    public static (HostFileKind Kind, long Size) Stat(string path, bool followLinks = true)
    {
        if (OperatingSystem.IsLinux())
        {
            Span<byte> buffer = stackalloc byte[StatxBytes];
            try
            {
                if (Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType | StatxSize, ref MemoryMarshal.GetReference(buffer)) != 0)
                    return (HostFileKind.Missing, 0);
                ushort mode = BitConverter.ToUInt16(buffer[StatxModeOffset..]);
                long size = BitConverter.ToInt64(buffer[StatxSizeOffset..]);
                return ((mode & SIfMt) switch
                {
                    SIfReg => HostFileKind.Regular,
                    SIfDir => HostFileKind.Directory,
                    SIfLnk => HostFileKind.Symlink,
                    _ => HostFileKind.Special,
                }, size);
            }
            catch (EntryPointNotFoundException) { } // a C library without statx: fall through
        }
        var info = new FileInfo(path);
        if (!followLinks && info.LinkTarget is not null) return (HostFileKind.Symlink, 0);
        if (Directory.Exists(path)) return (HostFileKind.Directory, 0);
        if (!info.Exists) return (HostFileKind.Missing, 0);
        // Devices and FIFOs report size 0; an empty regular file holds nothing to read either.
        return (info.Length > 0 ? HostFileKind.Regular : HostFileKind.Special, info.Length);
    }

    /// <summary>
    /// Reads a whole regular file of at most <paramref name="maxBytes"/>, or explains in <paramref name="skipped"/> why
    /// not (not a regular file, too large, changed while read). Never blocks on a FIFO or device.
    /// </summary>
    public static byte[]? TryReadRegular(string path, long maxBytes, out string? skipped)
    {
        skipped = null;
        var (kind, size) = Stat(path);
        if (kind != HostFileKind.Regular) { skipped = $"{path}: not a regular file ({kind.ToString().ToLowerInvariant()}), skipped"; return null; }
        if (size > maxBytes) { skipped = $"{path}: {size} bytes, more than the limit of {maxBytes} bytes, skipped"; return null; }
        using var handle = OpenNonBlocking(path, out string? notOpened);
        if (handle is null) { skipped = $"{notOpened}, skipped"; return null; }
        // The path may have been swapped between the stat and the open: ask the open handle again.
        long length;
        try { length = RandomAccess.GetLength(handle); }
        catch (Exception e) when (e is IOException or NotSupportedException or UnauthorizedAccessException) { skipped = $"{path}: {e.Message}, skipped"; return null; }
        if (length != size) { skipped = $"{path}: changed while being read, skipped"; return null; }
        var bytes = new byte[size];
        int total = 0;
        try
        {
            while (total < bytes.Length)
            {
                int n = RandomAccess.Read(handle, bytes.AsSpan(total), total);
                if (n <= 0) break;
                total += n;
            }
        }
        catch (Exception e) when (e is IOException or NotSupportedException or UnauthorizedAccessException) { skipped = $"{path}: {e.Message}, skipped"; return null; }
        if (total != bytes.Length) { skipped = $"{path}: shrank while being read, skipped"; return null; }
        return bytes;
    }

    /// <summary>The first <paramref name="count"/> bytes (fewer if the file is shorter) of a regular file, or null with the reason.</summary>
    public static byte[]? TryReadPrefix(string path, int count, out string? why)
    {
        why = null;
        using var handle = OpenNonBlocking(path, out why);
        if (handle is null) return null;
        var buffer = new byte[count];
        int total = 0;
        try
        {
            while (total < count)
            {
                int n = RandomAccess.Read(handle, buffer.AsSpan(total), total);
                if (n <= 0) break;
                total += n;
            }
        }
        catch (Exception e) when (e is IOException or NotSupportedException or UnauthorizedAccessException) { why = $"{path}: {e.Message}"; return null; }
        return buffer[..total];
    }

    /// <summary>The file opened as a regular file, or null with why not (a FIFO, device or a path swapped since the stat).</summary>
    private static SafeFileHandle? OpenNonBlocking(string path, out string? why)
    {
        try
        {
            why = null;
            return DumpFile.OpenRegular(path, out _);
        }
        catch (Exception e) when (e is MemoryFormatException or IOException or UnauthorizedAccessException)
        {
            why = e.Message;
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, int mask, ref byte buffer);
}
