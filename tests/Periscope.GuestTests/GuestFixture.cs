using System.Diagnostics;
using Periscope.Qemu;
using Periscope.Targets;

namespace Periscope.GuestTests;

/// <summary>Locates (or builds, via guest/build.sh) the cached demo guest image.</summary>
public static class GuestImage
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Periscope.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Periscope.slnx)");
    }

    /// <summary>How long a boot may take before the fixture gives up: <paramref name="seconds"/>, or
    /// PERISCOPE_GUEST_BOOT_TIMEOUT (seconds) when set and longer. scripts/kernel-matrix sets it: a TCG boot of a kernel
    /// with a larger initramfs on a loaded machine can take longer than the default guest's, and the matrix waits for
    /// the guest's own @@DONE, whatever the load.</summary>
    public static TimeSpan BootTimeout(int seconds) =>
        TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("PERISCOPE_GUEST_BOOT_TIMEOUT"), out int s) && s > seconds ? s : seconds);

    public static string Directory()
    {
        if (Environment.GetEnvironmentVariable("PERISCOPE_GUEST_DIR") is { Length: > 0 } overridden) return overridden;
        string root = RepoRoot();
        string current = Path.Combine(root, ".cache", "guest", "current");
        if (File.Exists(Path.Combine(current, "initrd.gz"))) return current;
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "guest", "build.sh")]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"guest/build.sh failed with exit code {p.ExitCode}");
        return output.Split('\n')[^1];
    }
}

/// <summary>
/// One real guest for a whole test class: boots the demo image under QEMU, waits for its ground truth on ttyS1, takes
/// one ELF dump through QMP, and offers both the dump and the live guest as targets.
/// </summary>
public abstract class GuestFixture : IDisposable
{
    /// <param name="extraAppend">Words added to the kernel command line; guest/start.d scripts read them from /proc/cmdline
    /// to set up state only the guests that ask for it get (e.g. "periscope.bpf").</param>
    protected GuestFixture(string cpu, int cpus = 1, string? extraAppend = null)
    {
        string image = GuestImage.Directory();
        var options = new QemuGuestOptions
        {
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            Cpu = cpu,
            Cpus = cpus,
        };
        if (extraAppend is not null) options = options with { Append = options.Append + " " + extraAppend };
        Guest = QemuGuest.Start(options);
        try
        {
            var sw = Stopwatch.StartNew();
            Guest.WaitForDataMarker("@@DONE", GuestImage.BootTimeout(240));
            BootSeconds = sw.Elapsed.TotalSeconds;
            Truth = GroundTruth.Parse(ReadShared(Guest.DataLogPath));
            DumpPath = Path.Combine(Guest.WorkDirectory, "guest.core");
            sw.Restart();
            Guest.Qmp.DumpGuestMemory(DumpPath);
            DumpSeconds = sw.Elapsed.TotalSeconds;
            Dump = Target.OpenDump(DumpPath);
        }
        catch
        {
            Guest.Dispose();
            throw;
        }
    }

    public QemuGuest Guest { get; }
    public GroundTruth Truth { get; }
    public string DumpPath { get; }
    public Target Dump { get; }
    public double BootSeconds { get; }
    public double DumpSeconds { get; }

    /// <summary>A fresh live target (RAM file + its own QMP connection); the caller disposes it.</summary>
    public Target AttachLive(TargetOptions? options = null) => Target.AttachLive(Guest.RamFilePath, QmpVmControl.Connect(Guest.ToolQmpSocketPath), options);

    private static string ReadShared(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(fs).ReadToEnd();
    }

    public void Dispose()
    {
        Dump.Dispose();
        Guest.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>-cpu max under TCG: LA57, so 5-level paging; pti=on.</summary>
public sealed class FiveLevelGuest() : GuestFixture("max");

/// <summary>-cpu qemu64: 4-level paging; pti=on forces PTI even though qemu64 reports AMD.</summary>
public sealed class FourLevelGuest() : GuestFixture("qemu64");
