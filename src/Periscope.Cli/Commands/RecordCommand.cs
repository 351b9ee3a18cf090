using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Replay;

namespace Periscope.Cli.Commands;

/// <summary>`periscope record --out DIR --kernel K --initrd I`: a deterministic recording of a whole guest run.</summary>
public sealed class RecordCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var output = new Option<string>("--out") { Description = "Recording folder to create (must not exist or be empty)", Required = true };
        var kernel = new Option<string>("--kernel") { Description = "Guest kernel (bzImage); copied into the recording", Required = true };
        var initrd = new Option<string>("--initrd") { Description = "Guest initramfs; copied into the recording", Required = true };
        var memory = new Option<int>("--memory") { Description = "Guest RAM in MiB", DefaultValueFactory = _ => 256 };
        var append = new Option<string>("--append") { Description = "Kernel command line", DefaultValueFactory = _ => "console=ttyS0 pti=on panic=-1" };
        var every = new Option<double>("--snapshot-every") { Description = "Host seconds between periodic snapshots (seek points); 0 for only the initial one", DefaultValueFactory = _ => 10 };
        var minRun = new Option<ulong>("--snapshot-min-instructions") { Description = "Skip a periodic snapshot while the guest ran fewer instructions than this since the last one (idle stretches replay in seconds)", DefaultValueFactory = _ => RecordOptions.DefaultMinSnapshotInstructions };
        var duration = new Option<double>("--duration") { Description = "Host seconds to record", DefaultValueFactory = _ => 60 };
        var ready = new Option<string?>("--ready-marker") { Description = "Take a snapshot named 'ready' when the guest's console or second serial port first prints this line" };
        var shift = new Option<string>("--icount-shift") { Description = "QEMU icount shift: 'auto' (guest time follows the host) or 0..10 (2^N ns of guest time per instruction)", DefaultValueFactory = _ => "auto" };
        var stop = new Option<string?>("--stop-marker") { Description = "End the recording early once the guest's console or second serial port prints this line" };
        var command = new Command("record", "Record a guest run under QEMU's deterministic record mode (TCG, icount): event log, snapshots, command line, kernel identity, checksums")
            { output, kernel, initrd, memory, append, every, minRun, duration, ready, stop, shift };
        command.SetAction(r =>
        {
            if (r.GetValue(memory) is < 16 or > 65536) throw new CliUsageException("--memory: expected 16..65536 MiB");
            if (r.GetValue(duration) is <= 0 or > 86400) throw new CliUsageException("--duration: expected 0..86400 seconds");
            string icountShift = r.GetValue(shift)!;
            if (icountShift != "auto" && !(int.TryParse(icountShift, out int n) && n is >= 0 and <= 10)) throw new CliUsageException("--icount-shift: expected 'auto' or 0..10");
            if (r.GetValue(every) is < 0) throw new CliUsageException("--snapshot-every: expected 0 or more seconds");
            var options = new RecordOptions
            {
                OutputFolder = r.GetValue(output)!, Kernel = r.GetValue(kernel)!, Initrd = r.GetValue(initrd)!, MemoryMiB = r.GetValue(memory),
                Append = r.GetValue(append)!, SnapshotEverySeconds = r.GetValue(every), MinSnapshotInstructions = r.GetValue(minRun), DurationSeconds = r.GetValue(duration), ReadyMarker = r.GetValue(ready), StopMarker = r.GetValue(stop),
                IcountShift = icountShift,
            };
            var m = Recorder.Record(options, context.Json(r) ? null : context.Error);
            if (context.Json(r)) RecordingCommand.WriteJson(context.Output, options.OutputFolder, m);
            else RecordingCommand.WriteText(context.Output, options.OutputFolder, m);
            return 0;
        });
        return command;
    }
}
