using System.CommandLine;
using System.Diagnostics;
using Periscope.Qemu;
using Periscope.Targets;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope demo`: boots the demo guest (built by guest/build.sh) under QEMU and lists its processes live, from
/// outside, through its RAM file and QMP. With --keep the guest stays up for other commands until Ctrl+C.
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
        var command = new Command("demo", "Boot the demo guest under QEMU and show `periscope ps` on it, live") { image, cpu, keep, dumpTo, benchLive };
        command.SetAction(r =>
        {
            string dir = r.GetValue(image) ?? FindImage() ?? throw new CliUsageException("no demo guest image: run guest/build.sh first, or pass --image DIR");
            var sw = Stopwatch.StartNew();
            context.Error.WriteLine($"booting {Path.Combine(dir, "vmlinuz")} under QEMU (TCG, -cpu {r.GetValue(cpu)})...");
            using var guest = QemuGuest.Start(new QemuGuestOptions
            {
                Kernel = Path.Combine(dir, "vmlinuz"), Initrd = Path.Combine(dir, "initrd.gz"), Cpu = r.GetValue(cpu)!,
            });
            guest.WaitForDataMarker("@@DONE", TimeSpan.FromMinutes(4));
            context.Error.WriteLine($"guest up in {sw.Elapsed.TotalSeconds:0.0} s; reading it from outside: RAM {guest.RamFilePath}, QMP {guest.ToolQmpSocketPath}");
            context.Error.WriteLine($"$ periscope ps --qemu {guest.RamFilePath} --qmp {guest.ToolQmpSocketPath} --pause");
            int code = CliApp.Run(["ps", "--qemu", guest.RamFilePath, "--qmp", guest.ToolQmpSocketPath, "--pause", .. context.Json(r) ? ["--json"] : Array.Empty<string>()],
                context.Output, context.Error);
            if (code != 0) return code;
            if (r.GetValue(dumpTo) is { } dumpPath)
            {
                sw.Restart();
                guest.Qmp.DumpGuestMemory(dumpPath);
                context.Error.WriteLine($"wrote {dumpPath} ({new FileInfo(dumpPath).Length >> 20} MiB) in {sw.Elapsed.TotalSeconds:0.0} s");
            }
            if (r.GetValue(benchLive))
                CliApp.Run(["bench", "--qemu", guest.RamFilePath, "--qmp", guest.ToolQmpSocketPath, "--iterations", "5"], context.Output, context.Error);
            if (!r.GetValue(keep)) return 0;
            context.Error.WriteLine($"guest kept running (QEMU pid {guest.ProcessId}); try: periscope info --qemu {guest.RamFilePath} --qmp {guest.ToolQmpSocketPath}");
            context.Error.WriteLine("press Ctrl+C to stop it");
            using var stop = new ManualResetEventSlim();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Set(); };
            stop.Wait();
            return 0;
        });
        return command;
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
}
