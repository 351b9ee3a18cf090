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
}
