using Periscope.Integrity.Checks;

namespace Periscope.UnitTests.Checks;

public sealed class TaskFlagBitsTests
{
    [Theory]
    [InlineData("6.1.0-57-amd64", 6, 1)]
    [InlineData("6.12.113+deb12-amd64", 6, 12)]
    [InlineData("7.0.0-rc3", 7, 0)]
    [InlineData("6.19-amd64", 6, 19)]
    public void Release_strings_give_major_and_minor(string release, int major, int minor)
    {
        Assert.True(TaskFlagBits.TryParseRelease(release, out int a, out int b));
        Assert.Equal((major, minor), (a, b));
    }

    [Theory]
    [InlineData("?")]
    [InlineData("")]
    [InlineData("six.one")]
    [InlineData("99999999999.1")]
    public void Release_without_a_version_is_refused(string release) => Assert.False(TaskFlagBits.TryParseRelease(release, out _, out _));

    [Fact]
    public void Linux_6_1_holes_are_the_PF_HOLE_lines_of_its_header()
    {
        Assert.True(TaskFlagBits.TryGetUndefined(6, 1, out uint holes));
        Assert.Equal(0x00004000u | 0x00010000 | 0x01000000 | 0x02000000 | 0x20000000 | 0x40000000, holes);
        Assert.Equal(0u, holes & TaskFlagBits.Kthread);
        Assert.Equal(0u, holes & TaskFlagBits.Idle);
        Assert.Equal(0u, holes & 0x10000000); // PF_MEMALLOC_PIN: defined, though Diamorphine reuses it as PF_INVISIBLE
    }

    [Fact]
    public void Bits_defined_later_are_not_holes_in_6_12()
    {
        Assert.True(TaskFlagBits.TryGetUndefined(6, 12, out uint holes));
        Assert.Equal(0u, holes & 0x00004000); // PF_USER_WORKER
        Assert.Equal(0u, holes & 0x00010000); // PF_KCOMPACTD
        Assert.Equal(0u, holes & 0x20000000); // PF_BLOCK_TS
        Assert.NotEqual(0u, holes & 0x40000000);
    }

    /// <summary>Stable updates defined PF_NO_NOTIFY_SIGNAL in a hole (6.1.192, 6.12.117, 7.3.4): no era may call it
    /// undefined, or a clean kernel's task using it would be reported as marked by a rootkit.</summary>
    [Theory]
    [InlineData(6, 1)]
    [InlineData(6, 12)]
    [InlineData(7, 2)]
    [InlineData(7, 3)]
    public void A_bit_a_stable_update_defined_is_never_a_hole(int major, int minor)
    {
        Assert.True(TaskFlagBits.TryGetUndefined(major, minor, out uint holes));
        Assert.Equal(0u, holes & 0x00800000);
        Assert.Equal(0x01000000u | 0x02000000 | 0x40000000, holes & (0x01000000u | 0x02000000 | 0x40000000));
        Assert.Equal(0u, holes & (TaskFlagBits.Kthread | TaskFlagBits.Idle));
    }

    [Theory]
    [InlineData(6, 5)]
    [InlineData(5, 10)]
    [InlineData(7, 1)]
    [InlineData(7, 4)]
    public void Unlisted_versions_get_no_guess(int major, int minor) => Assert.False(TaskFlagBits.TryGetUndefined(major, minor, out _));

    [Fact]
    public void Bits_are_named_by_value_and_number()
    {
        Assert.Equal("0x40000000 (bit 30)", TaskFlagBits.Describe(0x40000000));
        Assert.Equal("0x00004000 (bit 14), 0x20000000 (bit 29)", TaskFlagBits.Describe(0x20004000));
        Assert.Equal("", TaskFlagBits.Describe(0));
    }
}
