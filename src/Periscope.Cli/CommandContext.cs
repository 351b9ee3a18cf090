using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Memory.Formats;
using Periscope.Targets;

namespace Periscope.Cli;

/// <summary>Options every command accepts: which target to open and how to print.</summary>
public sealed class CommonOptions
{
    public Option<string?> Dump { get; } = new("--dump") { Description = "Memory dump to read (QEMU ELF core, LiME or raw; detected from content)", Recursive = true };
    public Option<string?> Qemu { get; } = new("--qemu") { Description = "Live QEMU guest: its RAM file (memory-backend-file, e.g. /dev/shm/NAME)", Recursive = true };
    public Option<string?> Qmp { get; } = new("--qmp") { Description = "QMP socket of the live guest (registers, --pause)", Recursive = true };
    public Option<bool> Pause { get; } = new("--pause") { Description = "Pause the live guest while reading, for a consistent view", Recursive = true };
    public Option<bool> Json { get; } = new("--json") { Description = "Print JSON instead of tables", Recursive = true };
    public Option<RawLayout> Layout { get; } = new("--raw-layout") { Description = "Physical layout of a raw image: Flat, Q35, I440fx", Recursive = true, DefaultValueFactory = _ => RawLayout.Flat };
    public Option<bool> NoBtf { get; } = new("--no-btf") { Description = "Ignore the kernel's BTF: infer struct offsets from the data (as for a kernel built without BTF)", Recursive = true };
    public Option<bool> NoOffsetsCache { get; } = new("--no-offsets-cache") { Description = "Neither read nor write the offsets cache (~/.cache/periscope/offsets)", Recursive = true };

    public void AddTo(Command root)
    {
        root.Options.Add(Dump);
        root.Options.Add(Qemu);
        root.Options.Add(Qmp);
        root.Options.Add(Pause);
        root.Options.Add(Json);
        root.Options.Add(Layout);
        root.Options.Add(NoBtf);
        root.Options.Add(NoOffsetsCache);
    }
}

public sealed class CommandContext(CommonOptions options, TextWriter output, TextWriter error)
{
    public CommonOptions Options { get; } = options;
    public TextWriter Output { get; } = output;
    public TextWriter Error { get; } = error;

    public Target OpenTarget(ParseResult r)
    {
        string? dump = r.GetValue(Options.Dump), ram = r.GetValue(Options.Qemu), qmp = r.GetValue(Options.Qmp);
        if ((dump is null) == (ram is null)) throw new CliUsageException("say which guest to read: --dump FILE or --qemu RAMFILE [--qmp SOCKET]");
        var options = new TargetOptions
        {
            RawLayout = r.GetValue(Options.Layout), NoBtf = r.GetValue(Options.NoBtf),
            OffsetsCache = r.GetValue(Options.NoOffsetsCache) ? null : Periscope.Linux.Inference.OffsetsCache.Default(),
        };
        if (dump is not null) return Target.OpenDump(dump, options);
        // Without QMP a live guest cannot be stopped: reading it "paused" would silently be reading it running.
        if (qmp is null && r.GetValue(Options.Pause)) throw new CliUsageException("--pause needs --qmp SOCKET: a live guest is paused through QMP");
        IVmControl? control = qmp is null ? null : QmpVmControl.Connect(qmp);
        var target = Target.AttachLive(ram!, control, options);
        if (target.ControlWarning is { } w) Error.WriteLine($"periscope: warning: {TerminalText.Escape(w)}");
        return target;
    }

    /// <summary>Runs <paramref name="work"/> against the target, paused if --pause was given.</summary>
    public int WithTarget(ParseResult r, Func<Target, int> work)
    {
        using var target = OpenTarget(r);
        if (r.GetValue(Options.Pause) && target.IsLive)
        {
            using (target.Pause()) return work(target);
        }
        if (r.GetValue(Options.Pause)) Error.WriteLine("periscope: --pause ignored: a dump does not change");
        return work(target);
    }

    public bool Json(ParseResult r) => r.GetValue(Options.Json);
}
