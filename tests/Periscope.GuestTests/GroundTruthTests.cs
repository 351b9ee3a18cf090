namespace Periscope.GuestTests;

/// <summary>The ground-truth parser itself, on text shaped like the guest's output (no guest needed).</summary>
public class GroundTruthTests
{
    [Fact]
    public void Stat_comm_with_spaces_and_parentheses()
    {
        var s = GroundTruth.ParseStat("123 (my (odd) name) S 1 123 123 0 -1 4194560 0 0");
        Assert.Equal(123, s.Pid);
        Assert.Equal("my (odd) name", s.Comm);
        Assert.Equal('S', s.State);
        Assert.Equal(1, s.ParentPid);
    }

    [Fact]
    public void Sections_are_parsed()
    {
        string text = string.Join("\r\n",
            "@@BEGIN banner", "Linux version 6.1.0-56-amd64 (x) #1",
            "@@BEGIN kallsyms", "ffffffff81000000 T _text", "ffffffffc0342000 t crc7_be\t[crc7]",
            "@@BEGIN modules", "crc7 16384 0 - Live 0xffffffffc0342000",
            "@@BEGIN stat 5", "5 (w) S 1 5", "5 (w) S 1 5", "6 (w) S 1 5",
            "@@BEGIN maps 5",
            "00400000-00401000 r--p 00000000 00:02 18                                 /bin/mt",
            "004bc000-004c1000 rw-p 00000000 00:00 0 ",
            "@@DONE", "@@BEGIN stat 9", "9 (late) S 1");
        var t = GroundTruth.Parse(text);
        Assert.Equal("Linux version 6.1.0-56-amd64 (x) #1", t.Banner);
        Assert.Equal((0xffffffff81000000UL, 'T', "_text"), Assert.Single(t.Symbols));
        Assert.Single(t.ModuleSymbolLines);
        Assert.Equal(0xffffffffc0342000UL, Assert.Single(t.Modules).Base);
        Assert.Equal([5, 6], t.Processes[5].Threads.Select(x => x.Pid));
        Assert.False(t.Processes.ContainsKey(9));
        Assert.Equal("/bin/mt", t.Maps[5][0].Path);
        Assert.Equal("", t.Maps[5][1].Path);
        Assert.Equal(18UL, t.Maps[5][0].Inode);
    }
}
