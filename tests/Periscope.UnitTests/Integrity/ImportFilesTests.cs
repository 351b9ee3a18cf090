using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Tests.Shared;

namespace Periscope.UnitTests.Integrity;

/// <summary>`baseline import-files` reads only regular files, size-capped, never blocking (issue 6 #5 and #11):
/// /dev/zero once read until 4.2 GB RSS and a FIFO in a folder blocked the import.</summary>
public sealed class ImportFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-import-").FullName;
    private string Db => Path.Combine(_dir, "b.db");

    /// <summary>A minimal x86-64 ELF with one executable PT_LOAD of 200 bytes: one code page.</summary>
    private static byte[] TinyElf()
    {
        var b = new byte[256];
        "\u007fELF"u8.CopyTo(b);
        b[4] = 2; b[5] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(32), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(54), 56);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(56), 1);
        var ph = b.AsSpan(64);
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 5);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], 200);
        return b;
    }

    [Fact]
    public void Dev_zero_is_refused_at_once_with_one_line()
    {
        var (code, output, err) = CliRun.Run("baseline", "import-files", "--db", Db, "/dev/zero");
        Assert.Equal(2, code);
        Assert.Equal("periscope: /dev/zero: not a regular file (special), skipped", Assert.Single(err.Trim().Split('\n')));
        Assert.Contains("imported 0 code pages of 0 ELF files", output);
    }

    [Fact]
    public void Fifo_in_a_folder_is_skipped_and_the_rest_imported()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_dir, "root", "bin")).FullName;
        File.WriteAllBytes(Path.Combine(folder, "tiny"), TinyElf());
        string fifo = Path.Combine(folder, "pipe");
        Assert.Equal(0, MkFifo(fifo, 0x180));
        var (code, output, err) = CliRun.Run("baseline", "import-files", "--db", Db, "--root", Path.Combine(_dir, "root"), folder);
        Assert.Equal(0, code);
        Assert.Equal($"periscope: {fifo}: not a regular file (special), skipped", Assert.Single(err.Trim().Split('\n')));
        Assert.Contains("imported 1 code pages of 1 ELF files (1 new), 1 skipped", output);
        using var store = BaselineStore.Open(Db, BaselineOpenMode.Existing);
        Assert.Contains(("/bin/tiny", 0UL), store.CodePages().Keys);
    }

    [Fact]
    public void Import_files_speaks_json()
    {
        string elf = Path.Combine(_dir, "tiny");
        File.WriteAllBytes(elf, TinyElf());
        var (code, output, _) = CliRun.Run("baseline", "import-files", "--db", Db, "--json", elf, "/dev/null");
        Assert.Equal(2, code); // /dev/null was named and could not be imported
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.Equal(1, doc.RootElement.GetProperty("files").GetInt32());
        Assert.Equal(1, doc.RootElement.GetProperty("pages").GetInt32());
        Assert.Equal("/dev/null: not a regular file (special), skipped", Assert.Single(doc.RootElement.GetProperty("skipped").EnumerateArray().ToArray()).GetString());
    }

    [Fact]
    public void File_over_the_size_cap_is_not_read()
    {
        string big = Path.Combine(_dir, "big");
        File.WriteAllBytes(big, new byte[10_000]);
        Assert.Null(HostFile.TryReadRegular(big, 4096, out string? why));
        Assert.Equal($"{big}: 10000 bytes, more than the limit of 4096 bytes, skipped", why);
        string small = Path.Combine(_dir, "small");
        File.WriteAllBytes(small, TinyElf());
        Assert.Single(ElfCodePages.Read(HostFile.TryReadRegular(small, 4096, out _)!));
    }

    [Fact]
    public void File_kinds_come_from_statx_not_from_the_size()
    {
        string empty = Path.Combine(_dir, "empty");
        File.WriteAllBytes(empty, []);
        // Only statx can tell an empty regular file from a device (both have size 0).
        Assert.Equal((HostFileKind.Regular, 0L), HostFile.Stat(empty));
        Assert.Equal(HostFileKind.Special, HostFile.Stat("/dev/zero").Kind);
        Assert.Equal(HostFileKind.Directory, HostFile.Stat(_dir).Kind);
        Assert.Equal(HostFileKind.Missing, HostFile.Stat(Path.Combine(_dir, "none")).Kind);
        File.CreateSymbolicLink(Path.Combine(_dir, "link"), empty);
        Assert.Equal(HostFileKind.Symlink, HostFile.Stat(Path.Combine(_dir, "link"), followLinks: false).Kind);
        Assert.Equal(HostFileKind.Regular, HostFile.Stat(Path.Combine(_dir, "link")).Kind);
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
