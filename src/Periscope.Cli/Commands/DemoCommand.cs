using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Qemu;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope demo`: boots the demo guest (built by guest/build.sh) under QEMU and lists its processes live, from
/// outside, through its RAM file and QMP. With --keep the guest stays up for other commands until Ctrl+C or SIGTERM.
/// Whatever ends the demo (its end, Ctrl+C, SIGTERM, SIGHUP, an error), QEMU is stopped and its RAM file removed.
/// </summary>
public sealed class DemoCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var image = new Option<string?>("--image") { Description = "Folder holding vmlinuz and initrd.gz (default: .cache/guest/current of the repository)" };
        var cpu = new Option<string>("--cpu") { Description = "QEMU CPU model: max (5-level paging) or qemu64 (4-level)", DefaultValueFactory = _ => "max" };
        var keep = new Option<bool>("--keep") { Description = "Keep the guest running and print how to attach to it" };
        var dumpTo = new Option<string?>("--dump-to") { Description = "Also write an ELF dump of the guest (QMP dump-guest-memory) to this file" };
        var benchLive = new Option<bool>("--bench-live") { Description = "Also run the integrity sweep benchmarks on the running guest" };
        var memory = new Option<int>("--memory") { Description = "Guest RAM in MiB (a bigger guest shows how costs grow with RAM)", DefaultValueFactory = _ => 256 };
        var run = new Option<string[]>("--run") { Description = "Shell command to run in the guest (command port) after boot, before ps and the dump; repeatable" };
        var command = new Command("demo", "Boot the demo guest under QEMU and show `periscope ps` on it, live") { image, cpu, keep, dumpTo, benchLive, memory, run };
        command.SetAction(r =>
        {
            string dir = r.GetValue(image) ?? FindImage() ?? throw new CliUsageException("no demo guest image: run guest/build.sh first, or pass --image DIR");
            bool json = context.Json(r);
            var sw = Stopwatch.StartNew();
            context.Error.WriteLine($"booting {Path.Combine(dir, "vmlinuz")} under QEMU (TCG, -cpu {r.GetValue(cpu)})...");
            using var guest = QemuGuest.Start(new QemuGuestOptions
            {
                Kernel = Path.Combine(dir, "vmlinuz"), Initrd = Path.Combine(dir, "initrd.gz"), Cpu = r.GetValue(cpu)!,
                MemoryMiB = r.GetValue(memory) is >= 128 and var mib ? mib : throw new CliUsageException($"--memory {r.GetValue(memory)}: at least 128 MiB"),
            });
            // From here on a signal only asks the demo to stop: `using` then ends QEMU and removes its RAM file, which
            // the runtime's default handling of SIGTERM/SIGHUP (exit without unwinding) would leave behind.
            using var stop = new StopSignals();
            if (!WaitForBoot(guest, stop, TimeSpan.FromMinutes(4))) return stop.ExitCode;
            context.Error.WriteLine($"guest up in {sw.Elapsed.TotalSeconds:0.0} s; reading it from outside: RAM {guest.RamFilePath}, QMP {guest.ToolQmpSocketPath}");
            foreach (string shell in r.GetValue(run) ?? [])
            {
                var (exit, said) = guest.RunCommand(shell, TimeSpan.FromMinutes(10));
                context.Error.WriteLine($"guest$ {TerminalText.Escape(shell)}: exit {exit}{(said.Trim() is { Length: > 0 } t ? $": {TerminalText.Escape(t.Length > 400 ? t[..400] + "…" : t)}" : "")}");
                if (exit != 0) return CliErrors.ErrorExitCode;
                if (stop.Requested) return stop.ExitCode;
            }
            context.Error.WriteLine($"$ periscope ps --qemu {guest.RamFilePath} --qmp {guest.ToolQmpSocketPath} --pause");
            var psOutput = json ? new StringWriter() : context.Output;
            int code = CliApp.Run(["ps", "--qemu", guest.RamFilePath, "--qmp", guest.ToolQmpSocketPath, "--pause", .. json ? ["--json"] : Array.Empty<string>()],
                psOutput, context.Error);
            if (code != 0) return code;
            if (stop.Requested) return stop.ExitCode;
            if (r.GetValue(dumpTo) is { } dumpPath)
            {
                sw.Restart();
                guest.Qmp.DumpGuestMemory(dumpPath);
                context.Error.WriteLine($"wrote {dumpPath} ({new FileInfo(dumpPath).Length >> 20} MiB) in {sw.Elapsed.TotalSeconds:0.0} s");
            }
            StringWriter? benchOutput = null;
            if (r.GetValue(benchLive) && !stop.Requested)
            {
                var benchTo = json ? benchOutput = new StringWriter() : context.Output;
                CliApp.Run(["bench", "--qemu", guest.RamFilePath, "--qmp", guest.ToolQmpSocketPath, "--iterations", "5", .. json ? ["--json"] : Array.Empty<string>()],
                    benchTo, context.Error);
            }
            // One JSON document, however many steps ran.
            if (json) Json.Write(context.Output, w =>
            {
                w.WriteStartObject();
                w.WriteString("ramFile", guest.RamFilePath);
                w.WriteString("qmpSocket", guest.ToolQmpSocketPath);
                w.WriteNumber("qemuPid", guest.ProcessId);
                w.WriteBoolean("kept", r.GetValue(keep));
                if (r.GetValue(dumpTo) is { } d) w.WriteString("dump", d);
                w.WritePropertyName("ps");
                w.WriteRawValue(psOutput.ToString()!);
                if (benchOutput is not null && benchOutput.ToString().Trim() is { Length: > 0 } bench)
                {
                    w.WritePropertyName("bench");
                    w.WriteRawValue(bench);
                }
                w.WriteEndObject();
            });
            if (!r.GetValue(keep) || stop.Requested) return stop.Requested ? stop.ExitCode : 0;
            context.Error.WriteLine($"guest kept running (QEMU pid {guest.ProcessId}); try: periscope info --qemu {guest.RamFilePath} --qmp {guest.ToolQmpSocketPath}");
            context.Error.WriteLine("press Ctrl+C (or send SIGTERM) to stop it");
            stop.Wait();
            context.Error.WriteLine($"stopping the guest (QEMU pid {guest.ProcessId}) and removing {guest.RamFilePath}");
            return 0;
        });
        return command;
    }

    /// <summary>Waits for the guest's @@DONE in short slices so that a stop signal during boot is honoured at once.</summary>
    private static bool WaitForBoot(QemuGuest guest, StopSignals stop, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (stop.Requested) return false;
            try
            {
                guest.WaitForDataMarker("@@DONE", TimeSpan.FromSeconds(1));
                return true;
            }
            catch (TimeoutException) when (sw.Elapsed < timeout) { }
        }
    }

    private static string? FindImage()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string candidate = Path.Combine(d.FullName, ".cache", "guest", "current");
                if (File.Exists(Path.Combine(candidate, "initrd.gz"))) return candidate;
            }
        }
        return null;
    }

    /// <summary>
    /// SIGINT (Ctrl+C), SIGTERM and SIGHUP turned into a request to stop, instead of the runtime's default of ending
    /// the process on the spot. The exit code of an interrupted run is the shell's 128 + signal number.
    /// </summary>
    private sealed class StopSignals : IDisposable
    {
        private readonly ManualResetEventSlim _stop = new();
        private readonly PosixSignalRegistration[] _registrations;
        private int _exitCode;

        public StopSignals()
        {
            _registrations =
            [
                PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Request(c, 130)),
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Request(c, 143)),
                PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => Request(c, 129)),
            ];
        }

        public bool Requested => _stop.IsSet;
        public int ExitCode => Volatile.Read(ref _exitCode);

        public void Wait() => _stop.Wait();

        private void Request(PosixSignalContext context, int exitCode)
        {
            context.Cancel = true;
            Interlocked.CompareExchange(ref _exitCode, exitCode, 0);
            _stop.Set();
        }

        public void Dispose()
        {
            foreach (var r in _registrations) r.Dispose();
            _stop.Dispose();
        }
    }
}
