using Periscope.Qemu;

namespace Periscope.Fuzz.Engine;

/// <summary>Boots the cached test guest (guest/build.sh output) under QEMU, waits for its ground truth, and writes one
/// ELF dump through QMP for the dump-model target. Takes 1–3 minutes under TCG.</summary>
public static class GuestDump
{
    public static int Make(string path)
    {
        string root = Targets.DumpModelTarget.RepoRoot();
        string image = Environment.GetEnvironmentVariable("PERISCOPE_GUEST_DIR") is { Length: > 0 } d ? d : Path.Combine(root, ".cache", "guest", "current");
        if (!File.Exists(Path.Combine(image, "initrd.gz"))) throw new ArgumentException($"no guest image in {image}: run guest/build.sh first");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var guest = QemuGuest.Start(new QemuGuestOptions
        {
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            Cpu = "qemu64",
        });
        guest.WaitForDataMarker("@@DONE", TimeSpan.FromSeconds(300));
        guest.Qmp.DumpGuestMemory(Path.GetFullPath(path));
        Console.WriteLine($"dump written: {path} ({new FileInfo(path).Length >> 20} MiB)");
        return 0;
    }
}
