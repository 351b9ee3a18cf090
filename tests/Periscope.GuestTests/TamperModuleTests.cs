using System.Globalization;
using Periscope.Linux;
using Periscope.Qemu;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// A guest of its own (5-level, like <see cref="FiveLevelGuest"/>) for tamper/periscope_tamper.ko, so that its
/// attacks never disturb the guests the introspection tests compare with. The module is loaded once here, through the
/// guest's command port (ttyS2); each test performs one attack, checks that Periscope reads exactly what the module
/// reports, and restores.
/// </summary>
public sealed class TamperGuest : GuestFixture
{
    public const string Proc = "/proc/periscope_tamper";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    public TamperGuest() : base("max")
    {
        try
        {
            // "loaded module=0x... base=0x... kallsyms_lookup_name=0x..." then the /proc/modules line.
            var lines = Lines(Run("insmod /lib/modules/periscope_tamper.ko && cat " + Proc + " && grep '^periscope_tamper ' /proc/modules"));
            var loaded = TamperReport.Parse(lines[0], "loaded");
            ModuleAddress = loaded.Hex("module");
            ModuleBase = loaded.Hex("base");
            ModuleSize = ulong.Parse(lines[1].Split(' ')[1], CultureInfo.InvariantCulture);
            Assert.Equal(ModuleBase, ulong.Parse(lines[1].Split(' ')[5].AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public ulong ModuleAddress { get; }
    public ulong ModuleBase { get; }
    public ulong ModuleSize { get; }

    /// <summary>Runs a guest shell command that must succeed; returns its output.</summary>
    public string Run(string shellCommand)
    {
        var (code, output) = Guest.RunCommand(shellCommand, CommandTimeout);
        Assert.True(code == 0, $"guest command '{shellCommand}' exited with {code}: {output}");
        return output;
    }

    /// <summary>Writes one command to the module and returns its report (the lines read back from the proc file).</summary>
    public string[] Tamper(string command) => Lines(Run($"echo {command} > {Proc} && cat {Proc}"));

    public ulong Symbol(string name) => Truth.Symbols.Single(s => s.Name == name).Address;

    public int StartSleep(int seconds) =>
        int.Parse(Run($"sleep {seconds} > /dev/null 2>&1 & echo $!").Trim(), CultureInfo.InvariantCulture);

    public void Restore() => Run($"echo restore > {Proc}");

    /// <summary>The guest kernel logged no warning, BUG or oops (its console is ttyS0), and still runs commands.</summary>
    public void AssertKernelHealthy() => KernelHealth.Assert(Guest, Run);

    private static string[] Lines(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}

/// <summary>One report line of the module: a verb, positional words, and key=value fields.</summary>
public sealed class TamperReport
{
    private readonly Dictionary<string, string> _fields = [];

    public required string Line { get; init; }
    public List<string> Words { get; } = [];

    public static TamperReport Parse(string line, string verb)
    {
        var parts = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(parts.Length > 0 && parts[0] == verb, $"expected a '{verb}' report, got: {line}");
        var report = new TamperReport { Line = line };
        foreach (var p in parts.Skip(1))
        {
            int eq = p.IndexOf('=');
            if (eq < 0) report.Words.Add(p);
            else report._fields[p[..eq]] = p[(eq + 1)..];
        }
        return report;
    }

    public string this[string key] => _fields.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"no {key}= in: {Line}");

    public ulong Hex(string key)
    {
        string v = this[key];
        Assert.StartsWith("0x", v);
        return ulong.Parse(v.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    public byte[] Bytes(string key) => Convert.FromHexString(this[key]);
}

[CollectionDefinition("tamper guest")]
public sealed class TamperCollection : ICollectionFixture<TamperGuest>;

/// <summary>
/// Proves the attacks of periscope_tamper.ko really happen, at the addresses it reports, as Periscope sees them from
/// outside (live, through the RAM file). The integrity detectors that find these changes are tested elsewhere.
/// </summary>
[Collection("tamper guest")]
public sealed class TamperModuleTests(TamperGuest guest, ITestOutputHelper output)
{
    private LinuxKernel Fresh(Target live)
    {
        live.Kernel.Refresh();
        return live.Kernel;
    }

    private byte[] ReadKernel(LinuxKernel k, ulong va, int length)
    {
        var bytes = new byte[length];
        Assert.Equal(length, k.KernelSpace.Read(va, bytes));
        return bytes;
    }

    /// <summary>Starts a long sleep in the guest (reparented to init when the command's shell exits); returns its pid.</summary>



    [Fact]
    public void Module_is_loaded_but_not_at_boot()
    {
        Assert.DoesNotContain(guest.Truth.Modules, m => m.Name == "periscope_tamper");
        // struct module (THIS_MODULE) lives in the module's own core image.
        Assert.InRange(guest.ModuleAddress, guest.ModuleBase, guest.ModuleBase + guest.ModuleSize - 1);
        // The command port passes exit codes and output through unchanged.
        Assert.Equal((3, "x\n"), guest.Guest.RunCommand("echo x; exit 3", TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void Syscall_slot_overwrite_is_read_at_the_reported_slot_and_restored()
    {
        ulong table = guest.Symbol("sys_call_table");
        using var live = guest.AttachLive();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("syscall 139")[0], "syscall");
            output.WriteLine(r.Line);
            Assert.Equal("139", r.Words[0]);
            ulong slot = r.Hex("slot"), old = r.Hex("old"), now = r.Hex("new");
            Assert.Equal(table + 139 * 8, slot);
            Assert.Equal(guest.Symbol("__x64_sys_sysfs"), old);      // 139 is sysfs(2)
            Assert.InRange(now, guest.ModuleBase, guest.ModuleBase + guest.ModuleSize - 1);
            Assert.True(Fresh(live).Reader.TryU64(slot, out ulong seen));
            Assert.Equal(now, seen);

            var restored = guest.Tamper("restore");
            Assert.Contains($"restore syscall 139 slot=0x{slot:x} value=0x{old:x}", restored);
            Assert.True(Fresh(live).Reader.TryU64(slot, out seen));
            Assert.Equal(old, seen);
        }
        finally { guest.Restore(); }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Text_patch_is_read_at_the_reported_address_and_restored()
    {
        ulong function = guest.Symbol("__x64_sys_sysfs");
        using var live = guest.AttachLive();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("patch __x64_sys_sysfs 0")[0], "patch");
            output.WriteLine(r.Line);
            ulong addr = r.Hex("addr");
            Assert.Equal(function, addr);
            // The ftrace site of a traced function is a 5-byte NOP at rest (no ENDBR on this kernel).
            Assert.Equal(Convert.FromHexString("0f1f440000"), r.Bytes("old"));
            Assert.Equal(Convert.FromHexString("9090909090"), r.Bytes("new"));
            Assert.Equal(r.Bytes("new"), ReadKernel(Fresh(live), addr, 5));

            guest.Restore();
            Assert.Equal(r.Bytes("old"), ReadKernel(Fresh(live), addr, 5));
        }
        finally { guest.Restore(); }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Ftrace_hook_is_a_call_at_the_reported_site_and_counts_calls()
    {
        ulong function = guest.Symbol("__x64_sys_newuname");
        using var live = guest.AttachLive();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("ftrace __x64_sys_newuname")[0], "ftrace");
            output.WriteLine(r.Line);
            ulong site = r.Hex("site");
            Assert.Equal(function, r.Hex("func"));
            Assert.Equal(function, site);
            Assert.Equal(Convert.FromHexString("0f1f440000"), r.Bytes("old"));
            var seen = ReadKernel(Fresh(live), site, 5);
            Assert.Equal(r.Bytes("new"), seen);
            Assert.Equal(0xe8, seen[0]);   // call rel32 into the ftrace trampoline
            ulong target = site + 5 + (ulong)(long)BitConverter.ToInt32(seen, 1);
            Assert.Equal(r.Hex("call"), target);

            var status = TamperReport.Parse(guest.Tamper("status")[0], "status");
            long before = long.Parse(status["ftrace_hits"], CultureInfo.InvariantCulture);
            guest.Run("uname > /dev/null");
            status = TamperReport.Parse(guest.Tamper("status")[0], "status");
            Assert.True(long.Parse(status["ftrace_hits"], CultureInfo.InvariantCulture) > before, status.Line);

            guest.Restore();
            Assert.Equal(r.Bytes("old"), ReadKernel(Fresh(live), site, 5));
        }
        finally { guest.Restore(); }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Hidden_module_leaves_the_module_list_but_keeps_answering_until_unhidden()
    {
        using var live = guest.AttachLive();
        var listed = Assert.Single(Fresh(live).Modules, m => m.Name == "periscope_tamper");
        Assert.Equal(guest.ModuleAddress, listed.Address);
        Assert.Equal(guest.ModuleBase, listed.Base);
        var before = Fresh(live).Modules.Select(m => m.Name).ToList();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("hide")[0], "hide");
            output.WriteLine(r.Line);
            Assert.Equal(guest.ModuleAddress, r.Hex("module"));
            Assert.Equal(guest.ModuleBase, r.Hex("base"));

            var k = Fresh(live);
            Assert.DoesNotContain(k.Modules, m => m.Name == "periscope_tamper" || m.Address == guest.ModuleAddress);
            Assert.Equal(guest.Truth.Modules.Select(m => m.Name), k.Modules.Select(m => m.Name));
            Assert.Empty(k.Diagnostics.Items);
            // Hidden, not gone: the proc file answers, /proc/modules and /sys/module no longer show it.
            Assert.StartsWith("status ", guest.Tamper("status")[0]);
            Assert.Equal("", guest.Run("grep periscope_tamper /proc/modules; ls /sys/module | grep periscope_tamper; true"));
        }
        finally
        {
            var u = TamperReport.Parse(guest.Tamper("unhide")[0], "unhide");
            Assert.Equal(guest.ModuleAddress, u.Hex("module"));
        }
        // Back where it was loaded: the same list, in the same order, as before.
        Assert.Equal(before, Fresh(live).Modules.Select(m => m.Name));
        Assert.StartsWith("periscope_tamper ", guest.Run("grep '^periscope_tamper ' /proc/modules"));
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Renamed_module_is_listed_under_the_new_name_at_the_same_address()
    {
        using var live = guest.AttachLive();
        try
        {
            var r = TamperReport.Parse(guest.Tamper("rename dummy")[0], "rename");
            Assert.Equal(guest.ModuleAddress, r.Hex("module"));
            Assert.Equal("periscope_tamper", r["old"]);
            var dummies = Fresh(live).Modules.Where(m => m.Name == "dummy").ToList();
            Assert.Equal(2, dummies.Count);
            Assert.Contains(dummies, m => m.Address == guest.ModuleAddress && m.Base == guest.ModuleBase);
            Assert.Equal("2", guest.Run("grep -c '^dummy ' /proc/modules").Trim());
        }
        finally { guest.Tamper("rename periscope_tamper"); }
        Assert.Single(Fresh(live).Modules, m => m.Name == "periscope_tamper" && m.Address == guest.ModuleAddress);
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void Hidden_pid_leaves_the_task_list_and_comes_back_on_restore()
    {
        int pid = guest.StartSleep(3000);
        using var live = guest.AttachLive();
        try
        {
            var task = Assert.Single(Fresh(live).Tasks, t => t.Pid == pid);
            Assert.Equal("sleep", task.Comm);

            var r = TamperReport.Parse(guest.Tamper($"hidepid {pid}")[0], "hidepid");
            output.WriteLine(r.Line);
            Assert.Equal(pid.ToString(CultureInfo.InvariantCulture), r.Words[0]);
            Assert.Equal(task.Address, r.Hex("task"));
            Assert.Equal("sleep", r["comm"]);

            var k = Fresh(live);
            Assert.DoesNotContain(k.Tasks, t => t.Pid == pid || t.Address == task.Address);
            Assert.Empty(k.Diagnostics.Items);
            guest.Run($"kill -0 {pid}");   // still alive, still in the pid hash (so still in /proc)

            guest.Restore();
            Assert.Equal(task.Address, Assert.Single(Fresh(live).Tasks, t => t.Pid == pid).Address);
        }
        finally
        {
            guest.Restore();
            guest.Run($"kill {pid}");
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void User_code_byte_changes_in_the_process_private_copy_only()
    {
        int pid = guest.StartSleep(3001);
        int other = guest.StartSleep(3002);
        using var live = guest.AttachLive();
        try
        {
            var k = Fresh(live);
            var task = k.Tasks.Single(t => t.Pid == pid);
            var peer = k.Tasks.Single(t => t.Pid == other);
            var text = k.GetVmas(task).First(v => v.Permissions == "r-xp" && v.Path == "/bin/busybox");
            ulong addr = text.Start + 0x40;
            var space = k.GetAddressSpace(task)!;
            var peerSpace = k.GetAddressSpace(peer)!;
            var original = new byte[1];
            Assert.Equal(1, space.Read(addr, original));
            Assert.True(space.TryTranslate(addr, out ulong sharedPa));
            Assert.True(peerSpace.TryTranslate(addr, out ulong peerPa));
            Assert.Equal(peerPa, sharedPa);   // both processes map busybox's page-cache page

            var r = TamperReport.Parse(guest.Tamper($"usercode {pid} 0x{addr:x}")[0], "usercode");
            output.WriteLine(r.Line);
            Assert.Equal(pid.ToString(CultureInfo.InvariantCulture), r.Words[0]);
            Assert.Equal(addr, r.Hex("addr"));
            Assert.Equal(original[0], (byte)r.Hex("old"));
            byte changed = (byte)r.Hex("new");
            Assert.NotEqual(original[0], changed);

            k = Fresh(live);
            space = k.GetAddressSpace(k.Tasks.Single(t => t.Pid == pid))!;
            peerSpace = k.GetAddressSpace(k.Tasks.Single(t => t.Pid == other))!;
            var now = new byte[1];
            Assert.Equal(1, space.Read(addr, now));
            Assert.Equal(changed, now[0]);
            Assert.Equal(1, peerSpace.Read(addr, now));
            Assert.Equal(original[0], now[0]);
            Assert.True(space.TryTranslate(addr, out ulong privatePa));
            Assert.NotEqual(sharedPa, privatePa);   // COW: the process got its own copy of the page

            guest.Restore();
            k = Fresh(live);
            space = k.GetAddressSpace(k.Tasks.Single(t => t.Pid == pid))!;
            Assert.Equal(1, space.Read(addr, now));
            Assert.Equal(original[0], now[0]);
        }
        finally
        {
            guest.Restore();
            guest.Run($"kill {pid} {other}");
        }
        guest.AssertKernelHealthy();
    }
}

/// <summary>What every tamper test asserts after its attack and restore, on any guest: the kernel logged no warning,
/// BUG or oops on its console (ttyS0), and the guest still runs commands.</summary>
internal static class KernelHealth
{
    public static void Assert(QemuGuest guest, Func<string, string> run)
    {
        using var fs = new FileStream(guest.ConsoleLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        string console = new StreamReader(fs).ReadToEnd();
        foreach (var bad in new[] { "WARNING:", "BUG:", "Oops", "corruption", "Call Trace" })
            Xunit.Assert.False(console.Contains(bad, StringComparison.Ordinal), $"guest console shows '{bad}':\n{console[^Math.Min(console.Length, 3000)..]}");
        Xunit.Assert.Equal("ok\n", run("echo ok"));
    }
}
