using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Memory.Files;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;

namespace Periscope.UnitTests.Memory;

/// <summary>Issue 6 items for opening dump files: PN_XNUM with a huge e_shoff, FIFOs and devices, sparse files.</summary>
public partial class DumpFileTests
{
    [Fact]
    public void PN_XNUM_with_section_header_offset_at_or_above_2_pow_63_is_a_format_error()
    {
        // Before: RandomAccess.Read got a negative offset and threw ArgumentOutOfRangeException (exit 134).
        var core = new ElfCoreBuilder { UsePnXNum = true }.Load(0, new byte[0x1000]).Build();
        foreach (ulong shoff in new[] { 1UL << 63, ulong.MaxValue, ulong.MaxValue - 63, (ulong)core.Length })
        {
            BinaryPrimitives.WriteUInt64LittleEndian(core.AsSpan(40), shoff);
            using var f = new TempFile(core);
            var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
            Assert.Contains(f.Path, e.Message);
            Assert.Contains("section header 0", e.Message);
        }
    }

    [Fact]
    public async Task A_FIFO_is_refused_without_blocking_in_open()
    {
        string path = Path.Combine(Path.GetTempPath(), $"periscope-fifo-{Guid.NewGuid():n}");
        Assert.Equal(0, MkFifo(path, 0x180));
        try
        {
            foreach (Func<MemoryImage> open in new Func<MemoryImage>[] { () => MemoryImage.Open(path), () => MemoryImage.OpenLiveRam(path) })
            {
                // Before: open() blocked until a writer appeared, so this task never finished.
                var task = Task.Run(open);
                Assert.Same(task, await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(60))));
                var e = Assert.IsType<MemoryFormatException>(task.Exception?.InnerException);
                Assert.Contains("FIFO", e.Message);
                Assert.Contains(path, e.Message);
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Devices_and_directories_are_refused_with_one_line()
    {
        var dev = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open("/dev/zero"));
        Assert.Equal("/dev/zero: is a character device, not a regular file; only regular files (a dump, or a live RAM file in /dev/shm) are opened", dev.Message);
        string dir = Path.GetTempPath();
        Assert.Contains("is a directory", Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(dir)).Message);
        Assert.Contains("is a directory", Assert.Throws<MemoryFormatException>(() => MemoryImage.OpenLiveRam(dir)).Message);
        Assert.Throws<FileNotFoundException>(() => MemoryImage.OpenLiveRam("/nonexistent/periscope.ram"));
        Assert.Equal(DumpFileKind.CharacterDevice, DumpFile.KindOf("/dev/null"));
    }

    [Fact]
    public void A_sparse_10_GiB_raw_file_costs_what_it_stores()
    {
        // Before: the page-table scan touched one qword of every page of all 10 GiB (41 s, 10.5 GB RSS).
        using var f = new TempFile([]);
        const long size = 10L << 30, dataAt = 5L << 30;
        using (var fs = new FileStream(f.Path, FileMode.Open, FileAccess.Write))
        {
            fs.SetLength(size);
            fs.Position = dataAt;
            fs.Write(Enumerable.Repeat((byte)0x5a, 8192).ToArray());
        }
        using var image = MemoryImage.Open(f.Path);
        Assert.Equal((ulong)size, image.Map.RamBytes);
        var allocated = image.AllocatedRam.ToArray();
        ulong stored = allocated.Aggregate(0UL, (s, r) => s + r.Length);
        Assert.InRange(stored, 8192UL, 4UL << 20); // file system blocks around the written bytes, not 10 GiB
        Assert.Contains(allocated, r => r.Contains((ulong)dataAt));
        Assert.Empty(PageTableScanner.FindTopLevelGroups(image));
        var buf = new byte[4];
        Assert.Equal(4, image.Read((ulong)dataAt + 100, buf));
        Assert.Equal(0x5a, buf[0]);
    }

    [Fact]
    public void Files_larger_than_the_limit_are_refused_with_the_numbers()
    {
        using var f = new TempFile(new byte[0x3000]);
        var limits = IntrospectionLimits.Default with { MaxDumpFileBytes = 0x2000 };
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path, limits));
        Assert.Contains("0x3000", e.Message);
        Assert.Contains("0x2000", e.Message);
        Assert.Throws<MemoryFormatException>(() => MemoryImage.OpenLiveRam(f.Path, RawLayout.Q35, limits));
    }

    [Fact]
    public void More_data_extents_than_the_limit_count_the_rest_as_data()
    {
        using var f = new TempFile([]);
        using (var fs = new FileStream(f.Path, FileMode.Open, FileAccess.Write))
        {
            fs.SetLength(64L << 20);
            for (long at = 0; at < 64L << 20; at += 8L << 20) { fs.Position = at; fs.WriteByte(1); }
        }
        using var image = MemoryImage.Open(f.Path, IntrospectionLimits.Default with { MaxFileDataExtents = 2 });
        var allocated = image.AllocatedRam.ToArray();
        Assert.Equal(3, allocated.Length);
        Assert.Equal(64UL << 20, allocated[^1].End);
        Assert.True(allocated[^1].Start <= 16UL << 20);
    }

    [Fact]
    public void Disposing_an_image_twice_is_harmless()
    {
        // Found by the dump-model fuzz target: the second Dispose released the view pointer again and threw
        // ObjectDisposedException from a process-exit handler.
        using var f = new TempFile(new byte[0x2000]);
        var image = MemoryImage.Open(f.Path);
        image.Dispose();
        image.Dispose();
        image.Memory.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MkFifo(string path, uint mode);
}
