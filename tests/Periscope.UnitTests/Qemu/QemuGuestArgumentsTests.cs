using Periscope.Qemu;

namespace Periscope.UnitTests.Qemu;

public class QemuGuestArgumentsTests
{
    [Fact]
    public void Ram_is_a_shared_file_and_qmp_has_two_sockets()
    {
        var args = QemuGuest.Arguments(new QemuGuestOptions { Kernel = "/k", Initrd = "/i", MemoryMiB = 512 }, "/w", "/dev/shm/x");
        string line = string.Join(' ', args);
        Assert.Contains("-machine q35,memory-backend=mem", line);
        Assert.Contains("memory-backend-file,id=mem,size=512M,mem-path=/dev/shm/x,share=on", line);
        Assert.Contains("-accel tcg", line);
        Assert.Contains("unix:/w/qmp.sock,server=on,wait=off", line);
        Assert.Contains("unix:/w/qmp-tools.sock,server=on,wait=off", line);
        Assert.Contains("-serial file:/w/data.log", line);
    }

    [Fact]
    public void Third_serial_port_is_the_command_socket()
    {
        var args = QemuGuest.Arguments(new QemuGuestOptions { Kernel = "/k", Initrd = "/i" }, "/w", "/dev/shm/x").ToList();
        // Serial ports are numbered in order: console.log is ttyS0, data.log ttyS1, the command socket ttyS2.
        var serials = args.Select((a, i) => (a, i)).Where(p => p.a == "-serial").Select(p => args[p.i + 1]).ToList();
        Assert.Equal(["file:/w/console.log", "file:/w/data.log", "chardev:cmd"], serials);
        int chardev = args.IndexOf("-chardev");
        Assert.Equal("socket,id=cmd,path=/w/cmd.sock,server=on,wait=off", args[chardev + 1]);
        Assert.True(chardev < args.IndexOf("chardev:cmd"), "the chardev must be defined before the serial port uses it");
    }
}
