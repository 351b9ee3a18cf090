using Periscope.Linux.Model;

namespace Periscope.UnitTests.Objects;

/// <summary>The pure parts of the views: command-line text with pages that were not resident, container ids in cgroup
/// paths, kernel log lines as the syslog interface prints them, mountinfo lines.</summary>
public class ViewModelTests
{
    [Fact]
    public void Command_line_strings_split_at_NULs_and_mark_bytes_that_were_not_resident()
    {
        var bytes = "sleep\0100003\0"u8.ToArray();
        Assert.Equal(["sleep", "100003"], new ProcessMemoryText(bytes, [], bytes.Length).Strings());
        Assert.True(new ProcessMemoryText(bytes, [], bytes.Length).IsComplete);

        var gap = new ProcessMemoryText(bytes, [(2, 6)], bytes.Length); // "sl" + 6 missing bytes + "0003\0"
        Assert.Equal(["sl[not resident]0003"], gap.Strings());
        Assert.False(gap.IsComplete);

        var cut = new ProcessMemoryText(bytes, [], 1 << 30);
        Assert.False(cut.IsComplete);
        Assert.Equal($"[cut at {bytes.Length} of {1 << 30} bytes]", cut.Strings()[^1]);
    }

    [Theory]
    [InlineData("/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("/kubepods/besteffort/pod1/cri-containerd-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("/docker/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")]
    [InlineData("/user.slice/user-1000.slice/session-2.scope", null)]
    [InlineData("/", null)]
    [InlineData("/docker/0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", null)] // runtimes write lower case
    public void Container_ids_are_64_lower_case_hex_digits_in_a_cgroup_path_component(string path, string? id) =>
        Assert.Equal(id, ProcessDetails.ContainerIdOf(path));

    [Fact]
    public void Log_records_print_as_the_syslog_interface_does_one_prefix_per_line()
    {
        var r = new LogRecord(5, 12_345_678_901, LogLevel.Warn, 0, 1, "first\nsecond");
        Assert.Equal(["<4>[   12.345678] first", "<4>[   12.345678] second"], r.SyslogLines());
        Assert.Equal("<14>[    0.000001] user", new LogRecord(6, 1_000, LogLevel.Info, 1, 0, "user").SyslogLines().Single());
    }

    [Fact]
    public void Mountinfo_lines_carry_optional_fields_only_when_there_are_some()
    {
        Assert.Equal("22 1 0:20 / /proc rw,relatime - proc proc rw",
            new MountInfo(22, 1, 0, 20, "/", "/proc", "rw,relatime", "", "proc", "proc", "rw", 0).ToMountInfoLine());
        Assert.Equal("30 22 0:25 / /a\\040b rw shared:1 - tmpfs none rw",
            new MountInfo(30, 22, 0, 25, "/", "/a\\040b", "rw", "shared:1", "tmpfs", "none", "rw", 0).ToMountInfoLine());
    }
}
