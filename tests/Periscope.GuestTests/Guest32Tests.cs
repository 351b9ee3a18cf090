using System.Diagnostics;
using System.Globalization;
using System.Text;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.Qemu;
using Periscope.Targets;
using Periscope.X86;
using static Periscope.Tests.Shared.CliRun;

namespace Periscope.GuestTests;

/// <summary>
/// A booted i386 guest (guest/build-i386.sh: Debian's 686-pae or 686 kernel, i386 busybox and the 32-bit workload) and
/// one QMP dump of it. The guest's own view comes from its ttyS1 like the 64-bit guest's, parsed here for the parts
/// 32-bit tests compare with (banner and kallsyms lines of 8 hex digits).
/// </summary>
public abstract class Guest32Fixture : IDisposable
{
    protected Guest32Fixture(string flavour, string qemuBinary)
    {
        string image = ImageDirectory(flavour);
        Guest = QemuGuest.Start(new QemuGuestOptions
        {
            Kernel = Path.Combine(image, "vmlinuz"),
            Initrd = Path.Combine(image, "initrd.gz"),
            QemuBinary = qemuBinary,
            // no_timer_check: on a loaded host TCG can miss the IO-APIC timer check and the 686 kernel panics at boot.
            Append = "console=ttyS0 panic=-1 no_timer_check",
        });
        try
        {
            Guest.WaitForDataMarker("@@DONE", TimeSpan.FromSeconds(300));
            using (var fs = new FileStream(Guest.DataLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
                ParseTruth(new StreamReader(fs).ReadToEnd());
            DumpPath = Path.Combine(Guest.WorkDirectory, "guest.core");
            Guest.Qmp.DumpGuestMemory(DumpPath);
        }
        catch
        {
            Guest.Dispose();
            throw;
        }
    }

    public QemuGuest Guest { get; }
    public string DumpPath { get; } = "";
    public string Banner { get; private set; } = "";
    public Dictionary<string, ulong> Symbols { get; } = [];
    /// <summary>The core (non-module) lines of the guest's /proc/kallsyms, in its order.</summary>
    public List<(ulong Address, char Type, string Name)> KallsymsLines { get; } = [];
    public abstract PagingMode ExpectedMode { get; }

    private static string ImageDirectory(string flavour)
    {
        string root = GuestImage.RepoRoot();
        string cached = Path.Combine(root, ".cache", "guest-i386", flavour);
        if (File.Exists(Path.Combine(cached, "initrd.gz"))) return cached;
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "guest", "build-i386.sh")]) { RedirectStandardOutput = true };
        psi.Environment["FLAVOUR"] = flavour;
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"guest/build-i386.sh ({flavour}) failed with exit code {p.ExitCode}");
        return output.Split('\n')[^1];
    }

    private void ParseTruth(string text)
    {
        string section = "";
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                if (line == "@@DONE") break;
                section = line.Split(' ')[1];
                continue;
            }
            if (section == "banner" && line.Length > 0) Banner = line;
            else if (section == "kallsyms" && !line.Contains('\t'))
            {
                var f = line.Split(' ');
                if (f.Length != 3) continue;
                ulong address = ulong.Parse(f[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                Symbols.TryAdd(f[2], address);
                KallsymsLines.Add((address, f[1][0], f[2]));
            }
        }
    }

    public void Dispose()
    {
        Guest.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Debian's 686-pae kernel under qemu-system-x86_64 (-cpu max): PAE paging, NX.</summary>
public sealed class PaeGuest() : Guest32Fixture("686-pae", "qemu-system-x86_64")
{
    public override PagingMode ExpectedMode => PagingMode.Pae32;
}

/// <summary>Debian's 686 kernel under qemu-system-i386: 2-level paging with 4 MiB pages, no NX.</summary>
public sealed class NonPaeGuest() : Guest32Fixture("686", "qemu-system-i386")
{
    public override PagingMode ExpectedMode => PagingMode.Legacy32;
}

public abstract class Guest32Tests<TGuest>(TGuest guest) where TGuest : Guest32Fixture
{
    /// <summary>The layout must be the guest's own: _text from its /proc/kallsyms, PAGE_OFFSET 0xC0000000 (Debian's
    /// CONFIG_PAGE_OFFSET), and the guest's /proc/version line must be readable through the found page directory in the
    /// kernel image (Debian's 686 kernels have no KALLSYMS_ALL, so linux_banner has no kallsyms line to aim at).</summary>
    private void AssertLayoutMatchesGuest(IPhysicalMemory memory, KernelLayout layout)
    {
        Assert.Equal(guest.ExpectedMode, layout.Mode);
        Assert.Equal(guest.Symbols["_text"], layout.TextVa);
        Assert.Equal(PagingModes.DefaultI386PageOffset, layout.PageOffsetBase);
        Assert.Equal(layout.TextVa - layout.PageOffsetBase!.Value, layout.TextPa);
        var space = new AddressSpace(memory, layout.KernelPgd, layout.Mode);
        byte[] banner = Encoding.ASCII.GetBytes(guest.Banner);
        var chunk = new byte[1 << 20];
        bool found = false;
        for (ulong va = layout.TextVa; va < layout.TextVa + (48UL << 20) && !found; va += (ulong)chunk.Length - (ulong)banner.Length)
        {
            int n = space.Read(va, chunk);
            found = chunk.AsSpan(0, n).IndexOf(banner) >= 0;
        }
        Assert.True(found, $"the guest's banner '{guest.Banner}' is not in the 48 MiB from _text read through page directory 0x{layout.KernelPgd:x}");
    }

    [Fact]
    public void Dump_is_an_i386_core_with_vcpu_state()
    {
        using var h = File.OpenHandle(guest.DumpPath);
        var core = ElfCoreReader.Read(guest.DumpPath, h, IntrospectionLimits.Default);
        Assert.Equal(ElfMachine.I386, core.Machine);
        var cpu = Assert.Single(core.Cpus);
        Assert.True(cpu.Cr3 <= uint.MaxValue);
        Assert.Equal(guest.ExpectedMode == PagingMode.Pae32, (cpu.Cr4!.Value & 0x20) != 0);
        Assert.InRange(cpu.Rip, PagingModes.DefaultI386PageOffset, uint.MaxValue); // the guest idles in its kernel
    }

    [Theory]
    [InlineData(DiscoveryMethods.Cr3)]
    [InlineData(DiscoveryMethods.VmcoreInfo)]
    public void Dump_discovery_finds_the_guests_kernel(DiscoveryMethods method)
    {
        using var image = MemoryImage.Open(guest.DumpPath);
        var inputs = new DiscoveryInputs { Cpus = image.Cpus, VmcoreInfo = image.VmcoreInfo, Methods = method };
        var layout = KernelLocator.Locate(image, inputs, IntrospectionLimits.Default, new DiscoveryLog());
        Assert.Equal(method == DiscoveryMethods.Cr3 ? DiscoveryMethod.Cr3 : DiscoveryMethod.VmcoreInfo, layout.FoundBy);
        AssertLayoutMatchesGuest(image, layout);
    }

    [Fact]
    public void Live_discovery_from_QMP_registers_finds_the_guests_kernel()
    {
        using var live = Target.AttachLive(guest.Guest.RamFilePath, QmpVmControl.Connect(guest.Guest.ToolQmpSocketPath));
        Assert.Null(live.ControlWarning);
        Assert.NotEmpty(live.Cpus);
        var inputs = new DiscoveryInputs { Cpus = live.Cpus, Methods = DiscoveryMethods.Cr3 };
        var layout = KernelLocator.Locate(live.Memory, inputs, IntrospectionLimits.Default, new DiscoveryLog());
        AssertLayoutMatchesGuest(live.Memory, layout);
    }

    [Fact]
    public void Every_kallsyms_line_of_the_dump_is_identical()
    {
        using var image = MemoryImage.Open(guest.DumpPath);
        var layout = KernelLocator.Locate(image, new DiscoveryInputs { Cpus = image.Cpus, VmcoreInfo = image.VmcoreInfo }, IntrospectionLimits.Default, new DiscoveryLog());
        var diagnostics = new List<string>();
        var kallsyms = Kernel32Locator.DecodeKallsyms(image, layout, IntrospectionLimits.Default, diagnostics);
        Assert.True(kallsyms is not null, string.Join("; ", diagnostics));
        var ours = kallsyms.Symbols.All;
        var truth = guest.KallsymsLines;
        Assert.True(truth.Count > 30_000, $"ground truth holds only {truth.Count} symbols");
        Assert.Equal(truth.Count, ours.Count);
        for (int i = 0; i < truth.Count; i++)
        {
            var (address, type, name) = truth[i];
            if (ours[i].Address != address || ours[i].Type != type || ours[i].Name != name)
                Assert.Fail($"symbol {i}: guest says {address:x8} {type} {name}, Periscope says {ours[i].Address:x8} {ours[i].Type} {ours[i].Name}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Symbols_prints_the_guests_core_kallsyms_lines_from_dump_and_live(bool live)
    {
        string[] target = live ? ["--qemu", guest.Guest.RamFilePath, "--qmp", guest.Guest.ToolQmpSocketPath] : ["--dump", guest.DumpPath];
        var (code, output, error) = Run(["symbols", .. target]);
        Assert.Equal(3, code); // incomplete: no module symbols without the kernel model
        Assert.Contains("32-bit kernel: core kallsyms only", error);
        var expected = guest.KallsymsLines.Select(l => $"{l.Address:x8} {l.Type} {l.Name}").ToList();
        Assert.Equal(expected, output.TrimEnd('\n').Split('\n'));
    }

    [Theory]
    [InlineData("info")]
    [InlineData("ps")]
    [InlineData("check")]
    [InlineData("baseline create --db")]
    public void Commands_say_in_one_line_that_the_32_bit_model_is_not_supported(string command)
    {
        var args = command.Split(' ').ToList();
        string db = Path.Combine(guest.Guest.WorkDirectory, $"baseline-{Guid.NewGuid():n}.db");
        if (args[^1] == "--db") args.Add(db);
        var (code, output, error) = Run([.. args, "--dump", guest.DumpPath]);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        string line = Assert.Single(error.TrimEnd('\n').Split('\n'));
        Assert.Contains("32-bit Linux kernel found", line);
        Assert.Contains($"_text 0x{guest.Symbols["_text"]:x}", line);
        Assert.Contains("64-bit kernels only", line);
        Assert.Contains($"kallsyms: {guest.KallsymsLines.Count} symbols", line);
    }
}

[Collection("686-pae guest")]
public sealed class Guest32PaeTests(PaeGuest guest) : Guest32Tests<PaeGuest>(guest);

[Collection("686 guest")]
public sealed class Guest32NonPaeTests(NonPaeGuest guest) : Guest32Tests<NonPaeGuest>(guest);

[CollectionDefinition("686-pae guest")]
public sealed class PaeCollection : ICollectionFixture<PaeGuest>;

[CollectionDefinition("686 guest")]
public sealed class NonPaeCollection : ICollectionFixture<NonPaeGuest>;
