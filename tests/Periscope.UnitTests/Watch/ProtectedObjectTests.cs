using Periscope.Watch;

namespace Periscope.UnitTests.Watch;

/// <summary>`--protect` names, and how a changed address is named: as the sweep's findings name it, so the
/// watchpoint record and the sweep's finding of one change share their location.</summary>
public sealed class ProtectedObjectTests
{
    [Fact]
    public void ParsesTheListAndRejectsUnknownNames()
    {
        Assert.Equal([ProtectedObjectKind.SyscallTable, ProtectedObjectKind.InterruptTable, ProtectedObjectKind.SyscallDispatcher],
            ProtectedObjects.ParseList("syscall-table, idt,dispatcher,idt"));
        var e = Assert.Throws<ArgumentException>(() => ProtectedObjects.ParseList("syscall-table,gdt"));
        Assert.Contains("'gdt'", e.Message);
        Assert.Contains("dispatcher", e.Message);
        Assert.Throws<ArgumentException>(() => ProtectedObjects.ParseList(" , "));
    }

    [Fact]
    public void NamesChangedAddressesAsTheSweepDoes()
    {
        var table = new ProtectedObject(ProtectedObjectKind.SyscallTable, "sys_call_table", 0xffffffff8ca00360, 548 * 8);
        Assert.Equal("sys_call_table[139]", table.Location(0xffffffff8ca00360 + 139 * 8 + 3));
        Assert.Equal(0xffffffff8ca00360 + 139 * 8UL, table.EntryStart(0xffffffff8ca00360 + 139 * 8 + 3));
        Assert.True(table.Contains(table.End - 1) && !table.Contains(table.End));
        var idt = new ProtectedObject(ProtectedObjectKind.InterruptTable, "idt_table", 0xffffffff8dd13000, 4096);
        Assert.Equal("IDT vector 0x0e", idt.Location(0xffffffff8dd13000 + 14 * 16 + 8));
        var code = new ProtectedObject(ProtectedObjectKind.SyscallDispatcher, "x64_sys_call", 0xffffffff8ba03320, 0x2000);
        Assert.Equal("x64_sys_call+0x1f", code.Location(0xffffffff8ba0333f));
    }
}
