using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using CsCheck;

namespace Periscope.Fuzz.Engine;

public sealed record RunOptions
{
    /// <summary>Stream seed for the PCG: the same seed and iteration count always produce the same inputs.</summary>
    public ulong Seed { get; init; } = 1;
    public long Iterations { get; init; } = long.MaxValue;
    public TimeSpan Duration { get; init; } = TimeSpan.MaxValue;
    /// <summary>Per-input wall-clock limit; past it the input is saved as a hang and the process exits.</summary>
    public TimeSpan InputTimeLimit { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Per-input managed allocation limit (bytes allocated by the run, measured, not sampled).</summary>
    public long InputAllocationLimit { get; init; } = 512L << 20;
    /// <summary>Where findings go (crashes/, hangs/, memory/ under the target's folder). Null: not saved.</summary>
    public string? OutputDirectory { get; init; }
    public TextWriter Log { get; init; } = Console.Out;
    /// <summary>Replay: run exactly these inputs once each, unmutated (saved reproducers).</summary>
    public IReadOnlyList<Seed>? FixedInputs { get; init; }
}

public sealed record RunResult(string Target, long Executions, long Rejected, double Seconds, IReadOnlyList<string> Findings)
{
    public double ExecutionsPerSecond => Seconds > 0 ? Executions / Seconds : 0;
}

/// <summary>
/// Runs one target over mutated seeds. A watchdog thread enforces the per-input time limit: .NET cannot abort a thread,
/// so a hanging input is written out and the process exits with <see cref="HangExitCode"/>; the campaign supervisor
/// restarts the worker. Each input is also copied into a small shared-memory file before it runs, so the supervisor
/// can save it when the process dies outright (stack overflow, OOM kill under the heap limit).
/// </summary>
public sealed class FuzzRunner
{
    public const int HangExitCode = 3;
    public const int FindingsExitCode = 1;
    public const int MaxInputBytes = 16 << 20;

    private readonly FuzzTarget _target;
    private readonly RunOptions _options;
    private long _inputStarted; // Stopwatch timestamp, 0 between inputs
    private byte[] _current = [];

    public FuzzRunner(FuzzTarget target, RunOptions options)
    {
        _target = target;
        _options = options;
    }

    public RunResult Run()
    {
        _target.Prepare();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => _target.Dispose();
        var seeds = _options.FixedInputs ?? _target.Seeds();
        if (seeds.Count == 0) throw new InvalidOperationException($"target {_target.Name} has no seeds");
        var focus = seeds.Select(_target.Focus).ToArray();
        var mutator = new Mutator(_target.Dictionary);
        var pcg = new PCG((uint)(_options.Seed >> 32) | 1, _options.Seed);
        var findings = new List<string>();
        using var currentFile = OpenCurrentFile();
        using var watchdog = StartWatchdog();
        long executions = 0, rejected = 0;
        var clock = Stopwatch.StartNew();
        // Every seed runs unmutated first: a seed that fails is itself a finding.
        long iterations = _options.FixedInputs is { } fixedInputs ? fixedInputs.Count : _options.Iterations;
        for (long i = 0; i < iterations && clock.Elapsed < _options.Duration; i++)
        {
            int s = (int)(i % seeds.Count);
            byte[] input = i < seeds.Count ? seeds[s].Data : mutator.Mutate(seeds[s].Data, focus[s], pcg);
            if (input.Length > MaxInputBytes) input = input[..MaxInputBytes];
            Publish(currentFile, input);
            long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            Volatile.Write(ref _inputStarted, Stopwatch.GetTimestamp());
            try
            {
                if (_target.Run(input) == Verdict.Rejected) rejected++;
                long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
                if (allocated > _options.InputAllocationLimit)
                    findings.Add(Save("memory", input, $"allocated {allocated:N0} bytes for one input, limit {_options.InputAllocationLimit:N0}"));
            }
            catch (Exception e)
            {
                findings.Add(Save("crashes", input, e.ToString()));
            }
            finally
            {
                Volatile.Write(ref _inputStarted, 0);
            }
            executions++;
        }
        return new RunResult(_target.Name, executions, rejected, clock.Elapsed.TotalSeconds, findings);
    }

    private string Save(string kind, byte[] input, string what)
    {
        string id = Convert.ToHexStringLower(SHA256.HashData(input))[..16];
        string first = what.Split('\n')[0].Trim();
        _options.Log.WriteLine($"FINDING {_target.Name} {kind} {id}: {first}");
        if (_options.OutputDirectory is null) return $"{kind}/{id}";
        string dir = Path.Combine(_options.OutputDirectory, _target.Name, kind);
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, id + ".bin");
        File.WriteAllBytes(path, input);
        File.WriteAllText(Path.ChangeExtension(path, ".txt"), what + Environment.NewLine);
        return path;
    }

    private IDisposable StartWatchdog()
    {
        var stop = new CancellationTokenSource();
        var thread = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                long started = Volatile.Read(ref _inputStarted);
                if (started != 0 && Stopwatch.GetElapsedTime(started) > _options.InputTimeLimit)
                {
                    Save("hangs", Volatile.Read(ref _current), $"input still running after {_options.InputTimeLimit.TotalSeconds:0.#} s (per-input limit)");
                    _options.Log.Flush();
                    Environment.Exit(HangExitCode);
                }
                stop.Token.WaitHandle.WaitOne(100);
            }
        }) { IsBackground = true, Name = "fuzz watchdog" };
        thread.Start();
        return new Stopper(stop, thread);
    }

    private sealed class Stopper(CancellationTokenSource stop, Thread thread) : IDisposable
    {
        public void Dispose() { stop.Cancel(); thread.Join(); stop.Dispose(); }
    }

    /// <summary>File the supervisor reads when the worker dies: u32 length, then the input.</summary>
    public static string CurrentInputPath(string outputDirectory, string target) => Path.Combine(outputDirectory, target, "current-input");

    private MemoryMappedViewAccessor? OpenCurrentFile()
    {
        if (_options.OutputDirectory is null) return null;
        string path = CurrentInputPath(_options.OutputDirectory, _target.Name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.ReadWrite);
        fs.SetLength(MaxInputBytes + 4);
        var mmf = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        return mmf.CreateViewAccessor();
    }

    private void Publish(MemoryMappedViewAccessor? file, byte[] input)
    {
        Volatile.Write(ref _current, input);
        if (file is null) return;
        file.Write(0, (uint)input.Length);
        file.WriteArray(4, input, 0, input.Length);
    }

    public static byte[]? ReadCurrentInput(string path)
    {
        if (!File.Exists(path)) return null;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var len = new byte[4];
        if (fs.Read(len, 0, 4) != 4) return null;
        int n = BitConverter.ToInt32(len);
        if (n <= 0 || n > MaxInputBytes) return null;
        var data = new byte[n];
        fs.ReadExactly(data);
        return data;
    }
}
