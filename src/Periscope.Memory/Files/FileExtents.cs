using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Periscope.Memory.Files;

/// <summary>
/// Where a file holds data, found with lseek(SEEK_DATA/SEEK_HOLE) so a sparse file (a raw image full of holes, QEMU's
/// RAM file of a guest that has not touched most of its memory) is scanned for what it stores, not for its length.
/// </summary>
public static partial class FileExtents
{
    private const int SeekData = 3, SeekHole = 4;

    /// <summary>Data extents (file offset, length), sorted. A fully allocated file is one extent without any lseek;
    /// past <see cref="IntrospectionLimits.MaxFileDataExtents"/> extents the rest of the file counts as data.</summary>
    public static IReadOnlyList<(ulong Start, ulong Length)> Data(string path, SafeFileHandle handle, ulong length, DumpFileInfo info, IntrospectionLimits limits)
    {
        if (length > limits.MaxDumpFileBytes)
            ThrowHelper.Format(path, $"file is 0x{length:x} bytes, more than the limit of 0x{limits.MaxDumpFileBytes:x} bytes (MaxDumpFileBytes)");
        if (info.AllocatedBytes >= length || !OperatingSystem.IsLinux()) return [(0, length)];
        var extents = new List<(ulong, ulong)>();
        long fd = handle.DangerousGetHandle();
        ulong pos = 0;
        while (pos < length)
        {
            if (extents.Count >= limits.MaxFileDataExtents)
            {
                extents.Add((pos, length - pos)); // conservative: scanning zeros is slow, never wrong
                break;
            }
            long data = LSeek((int)fd, (long)pos, SeekData);
            if (data < 0)
            {
                // ENXIO: no data after pos. EINVAL: the file system does not support SEEK_DATA; then all of it is data.
                if (Marshal.GetLastPInvokeError() != 6 /* ENXIO */) extents.Add((pos, length - pos));
                break;
            }
            if ((ulong)data >= length) break;
            long hole = LSeek((int)fd, data, SeekHole);
            ulong end = hole < 0 || (ulong)hole > length ? length : (ulong)hole;
            if (end <= (ulong)data) end = length; // a file system reporting nonsense: take the rest as data
            extents.Add(((ulong)data, end - (ulong)data));
            pos = end;
        }
        return extents;
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);
}
