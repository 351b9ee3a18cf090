using System.Diagnostics;

namespace Periscope.Qemu;

public sealed record QemuGuestOptions
{
    public required string Kernel { get; init; }
    public required string Initrd { get; init; }
    /// <summary>Kernel command line. no_timer_check: under TCG on a loaded host the IO-APIC timer check (check_timer)
    /// misses its ticks and newer kernels (seen on 7.3.4) panic with "IO-APIC + timer doesn't work". noirqdebug: on
    /// PREEMPT_RT kernels the serial ports' interrupt handlers run in threads, and under TCG the spurious-interrupt
    /// detector counted IRQ 3 (ttyS1, the data port) as unhandled and disabled it (7.3.4-rt: "irq 3: nobody cared",
    /// "Disabling IRQ #3" at 41 s), after which the guest's ground truth never finished.</summary>
    public string Append { get; init; } = "console=ttyS0 pti=on panic=-1 no_timer_check noirqdebug";
    public int MemoryMiB { get; init; } = 256;
    /// <summary>"max" offers LA57 under TCG (5-level paging); "qemu64" gives a 4-level guest.</summary>
    public string Cpu { get; init; } = "max";
    /// <summary>"tcg" by default: nested KVM on this machine kind hangs Linux in its decompressor.</summary>
    public string Accelerator { get; init; } = "tcg";
    public int Cpus { get; init; } = 1;
    /// <summary>Folder for the serial logs and the QMP socket; a fresh temp folder when null.</summary>
    public string? WorkDirectory { get; init; }
    /// <summary>RAM file (memory-backend-file mem-path); a fresh /dev/shm name when null. A guest restarted with the
    /// same RAM file and work folder looks to a monitor like the same VM coming back.</summary>
    public string? RamFile { get; init; }
    public string QemuBinary { get; init; } = "qemu-system-x86_64";
    /// <summary>Periscope's trace plugin (libperiscope-trace.so) to load at start, or null. QEMU gets
    /// <c>-plugin PATH,ring=RAM.ring,ram=RAM</c>: the ring beside the RAM file (see <see cref="QemuGuest.TraceRingPath"/>).</summary>
    public string? Plugin { get; init; }
}

/// <summary>
/// A QEMU guest started for introspection: RAM in a shared file under /dev/shm (mapped read-only by Periscope), QMP on
/// a unix socket, console on ttyS0, bulk ground truth on ttyS1 and a command port on ttyS2 (a unix socket on the host,
/// see <see cref="RunCommand"/>). Dispose kills only this QEMU and removes its files.
/// </summary>
public sealed class QemuGuest : IDisposable
{
    private static int s_counter;
    private readonly Process _process;
    private readonly bool _ownsWorkDirectory;
    private QmpClient? _qmp;
    private GuestCommandChannel? _commands;

    private QemuGuest(Process process, QemuGuestOptions options, string workDirectory, string ramFile, bool ownsWorkDirectory)
    {
        _process = process;
        Options = options;
        WorkDirectory = workDirectory;
        RamFilePath = ramFile;
        _ownsWorkDirectory = ownsWorkDirectory;
    }

    public QemuGuestOptions Options { get; }
    public string WorkDirectory { get; }
    public string RamFilePath { get; }
    public string QmpSocketPath => Path.Combine(WorkDirectory, "qmp.sock");
    /// <summary>A second QMP server for other tools (such as the periscope CLI): QEMU serves one client per socket.</summary>
    public string ToolQmpSocketPath => Path.Combine(WorkDirectory, "qmp-tools.sock");
    /// <summary>QEMU's GDB stub on a unix socket (`watch --protect` arms write watchpoints through it). Idle until a
    /// client connects; connecting stops the guest until the client continues it.</summary>
    public string GdbSocketPath => Path.Combine(WorkDirectory, "gdb.sock");
    public string ConsoleLogPath => Path.Combine(WorkDirectory, "console.log");
    public string DataLogPath => Path.Combine(WorkDirectory, "data.log");
    /// <summary>The host end of the guest's ttyS2: QEMU listens here, guest/init serves shell commands on it.</summary>
    public string CommandSocketPath => Path.Combine(WorkDirectory, "cmd.sock");
    /// <summary>The trace plugin's ring file (when <see cref="QemuGuestOptions.Plugin"/> is set).</summary>
    public string TraceRingPath => RamFilePath + ".ring";
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;
    /// <summary>QEMU's exit status once it has exited; null while it runs.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>The QMP connection, opened on first use.</summary>
    public QmpClient Qmp => _qmp ??= ConnectQmp();

    public static QemuGuest Start(QemuGuestOptions options)
    {
        int n = Interlocked.Increment(ref s_counter);
        string name = $"periscope-{Environment.ProcessId}-{n}";
        bool owns = options.WorkDirectory is null;
        string dir = options.WorkDirectory ?? Path.Combine(Path.GetTempPath(), name);
        Directory.CreateDirectory(dir);
        string ram = options.RamFile ?? Path.Combine("/dev/shm", name);
        var psi = new ProcessStartInfo(options.QemuBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in Arguments(options, dir, ram)) psi.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new IOException($"{options.QemuBinary} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new IOException($"cannot run {options.QemuBinary} (install qemu-system-x86): {e.Message}", e);
        }
        process.StandardInput.Close();
        return new QemuGuest(process, options, dir, ram, owns);
    }

    public static IReadOnlyList<string> Arguments(QemuGuestOptions o, string dir, string ramFile) =>
    [
        "-accel", o.Accelerator, "-cpu", o.Cpu, "-smp", o.Cpus.ToString(), "-m", $"{o.MemoryMiB}M",
        "-machine", "q35,memory-backend=mem",
        "-object", $"memory-backend-file,id=mem,size={o.MemoryMiB}M,mem-path={ramFile},share=on",
        "-kernel", o.Kernel, "-initrd", o.Initrd, "-append", o.Append,
        "-serial", $"file:{Path.Combine(dir, "console.log")}", "-serial", $"file:{Path.Combine(dir, "data.log")}",
        "-chardev", $"socket,id=cmd,path={Path.Combine(dir, "cmd.sock")},server=on,wait=off", "-serial", "chardev:cmd",
        "-qmp", $"unix:{Path.Combine(dir, "qmp.sock")},server=on,wait=off",
        "-qmp", $"unix:{Path.Combine(dir, "qmp-tools.sock")},server=on,wait=off",
        "-gdb", $"unix:{Path.Combine(dir, "gdb.sock")},server=on,wait=off",
        "-device", "vmcoreinfo", "-display", "none", "-monitor", "none", "-no-reboot",
        .. (o.Plugin is null ? (string[])[] : ["-plugin", $"{o.Plugin},ring={ramFile}.ring,ram={ramFile}"]),
    ];

    private QmpClient ConnectQmp()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try { return QmpClient.Connect(QmpSocketPath); }
            catch (IOException) when (deadline.Elapsed < TimeSpan.FromSeconds(20) && !_process.HasExited) { Thread.Sleep(100); }
        }
    }

    /// <summary>
    /// Runs one line of shell in the guest (guest/init serves its ttyS2 once it has printed @@DONE) and returns the
    /// exit code and the combined stdout/stderr. Commands run one at a time; a timeout leaves the guest's shell
    /// running the command, and its late reply is skipped by later calls.
    /// </summary>
    public (int ExitCode, string Output) RunCommand(string shellCommand, TimeSpan timeout)
    {
        var channel = LazyInitializer.EnsureInitialized(ref _commands, () => new GuestCommandChannel(CommandSocketPath, () => !_process.HasExited));
        return channel.Run(shellCommand, timeout);
    }

    /// <summary>Waits until the data port (ttyS1) carries <paramref name="marker"/> on a line of its own.</summary>
    public void WaitForDataMarker(string marker, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (_process.HasExited)
                throw new IOException($"QEMU exited with code {_process.ExitCode}: {_process.StandardError.ReadToEnd().Trim()} {Tail(ConsoleLogPath)}");
            if (File.Exists(DataLogPath) && ContainsLine(DataLogPath, marker)) return;
            Thread.Sleep(250);
        }
        throw new TimeoutException($"guest did not print {marker} within {timeout.TotalSeconds:0} s; console tail: {Tail(ConsoleLogPath)}");
    }

    private static bool ContainsLine(string path, string marker)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        long start = Math.Max(0, fs.Length - 4096);
        fs.Seek(start, SeekOrigin.Begin);
        using var r = new StreamReader(fs);
        return r.ReadToEnd().Replace("\r", "").Split('\n').Any(l => l == marker);
    }

    private static string Tail(string path)
    {
        if (!File.Exists(path)) return "(no console output)";
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var r = new StreamReader(fs);
        string all = r.ReadToEnd();
        return all.Length > 1500 ? all[^1500..] : all;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try { _qmp?.Quit(); } catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException) { }
                if (!_process.WaitForExit(3000)) _process.Kill();
                _process.WaitForExit(3000);
            }
        }
        finally
        {
            _qmp?.Dispose();
            _commands?.Dispose();
            _process.Dispose();
            try { File.Delete(RamFilePath); File.Delete(TraceRingPath); } catch (IOException) { }
            try { File.Delete(QmpSocketPath); File.Delete(ToolQmpSocketPath); File.Delete(CommandSocketPath); File.Delete(GdbSocketPath); } catch (IOException) { }
            if (_ownsWorkDirectory) try { Directory.Delete(WorkDirectory, recursive: true); } catch (IOException) { }
        }
    }
}
