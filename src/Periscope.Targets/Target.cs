using Periscope.Linux;
using Periscope.Memory;
using Periscope.Memory.Formats;

namespace Periscope.Targets;

/// <summary>
/// What Periscope looks at: a memory dump or a running QEMU guest. The CLI and any service share this one path:
/// open a target, then use <see cref="Kernel"/>. Read-only by construction: no member writes guest state.
/// </summary>
public sealed class Target : IDisposable
{
    private readonly MemoryImage _image;
    private readonly IVmControl? _control;
    private readonly TargetOptions _options;
    private LinuxKernel? _kernel;
    private IReadOnlyList<CpuState> _cpus;

    private Target(MemoryImage image, IVmControl? control, TargetOptions options, string description, bool isLive)
    {
        _image = image;
        _control = control;
        _options = options;
        _cpus = image.Cpus;
        Description = description;
        IsLive = isLive;
    }

    public string Description { get; }
    public bool IsLive { get; }
    public IDirectPhysicalMemory Memory => _image;
    public MemoryImage Image => _image;
    public IReadOnlyList<CpuState> Cpus => _cpus;
    public IntrospectionLimits Limits => _options.Limits;

    /// <summary>The guest kernel, discovered on first use.</summary>
    public LinuxKernel Kernel => _kernel ??= LinuxKernel.Open(_image, _cpus, _options.Limits, _image.VmcoreInfo,
        new KernelOpenOptions { NoBtf = _options.NoBtf, NoDataSymbols = _options.NoDataSymbols, Cache = _options.OffsetsCache });

    /// <summary>Opens a dump file; the format (ELF core, LiME, raw) is detected from its content.</summary>
    public static Target OpenDump(string path, TargetOptions? options = null)
    {
        options ??= new TargetOptions();
        var image = MemoryImage.Open(path, options.Limits, options.RawLayout);
        return new Target(image, null, options, $"{image.Format} dump {path}", isLive: false);
    }

    /// <summary>
    /// Attaches to a running QEMU guest through its RAM file (memory-backend-file, mapped read-only) and, optionally,
    /// a VM control channel (QMP) for vCPU registers and pause/resume.
    /// </summary>
    public static Target AttachLive(string ramFile, IVmControl? control, TargetOptions? options = null, RawLayout layout = RawLayout.Q35)
    {
        options ??= new TargetOptions();
        var image = MemoryImage.OpenLiveRam(ramFile, layout, options.Limits);
        var target = new Target(image, control, options, $"live QEMU guest, RAM {ramFile}", isLive: true);
        if (control is not null)
        {
            try { target._cpus = control.ReadCpuStates(); }
            catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException)
            {
                target._cpus = [];
                target.ControlWarning = $"could not read vCPU registers: {e.Message}";
            }
        }
        return target;
    }

    /// <summary>Set when the control channel failed; discovery then runs from memory alone.</summary>
    public string? ControlWarning { get; private set; }

    /// <summary>Pauses a live guest until disposed, so that everything read in between is one consistent view.
    /// A no-op for dumps or when no control channel is attached.</summary>
    public IDisposable Pause()
    {
        if (_control is null) return NoOp.Instance;
        bool pausedByUs = _control.Stop();
        _kernel?.Refresh();
        // A guest someone else had paused stays paused.
        return pausedByUs ? new Resume(_control) : NoOp.Instance;
    }

    public void Dispose()
    {
        _control?.Dispose();
        _image.Dispose();
    }

    private sealed class Resume(IVmControl control) : IDisposable
    {
        private bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            control.Continue();
        }
    }

    private sealed class NoOp : IDisposable
    {
        public static readonly NoOp Instance = new();
        public void Dispose() { }
    }
}

/// <summary>Control of a running VM that Periscope needs: registers to read, pause and resume. Nothing that writes
/// guest memory or registers belongs here.</summary>
public interface IVmControl : IDisposable
{
    IReadOnlyList<CpuState> ReadCpuStates();
    /// <summary>Pauses the vCPUs; returns false if they were already paused.</summary>
    bool Stop();
    void Continue();
}
