using System.Diagnostics;
using Periscope.Fuzz.Engine;

namespace Periscope.Fuzz;

/// <summary>
/// The CI part of fuzzing: a short campaign per target with a fixed seed and a fixed number of inputs (so it cannot
/// flake), each in its own worker process with the heap limit and the per-input time limit; and every saved reproducer
/// replayed. A finding, hang or dead worker fails the test with the worker's output.
/// </summary>
public sealed class FuzzSmokeTests
{
    public static TheoryData<string> SmokeTargets()
    {
        var data = new TheoryData<string>();
        foreach (var name in FuzzTargets.Names)
        {
            using var t = FuzzTargets.Create(name);
            if (t.Unavailable is null && t.SmokeExclusion is null) data.Add(name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(SmokeTargets))]
    public void Smoke_campaign_finds_nothing(string target)
    {
        using var t = FuzzTargets.Create(target);
        string outDir = Path.Combine(Path.GetTempPath(), $"periscope-fuzz-smoke-{Guid.NewGuid():n}");
        try
        {
            var (code, output) = Worker(["run", "--target", target, "--seed", "20261129", "--iterations", t.SmokeIterations.ToString(),
                "--time-limit", "30", "--out", outDir]);
            Assert.True(code == 0, $"exit {code}\n{output}");
            Assert.Contains($"RESULT {target} executions={t.SmokeIterations} ", output);
        }
        finally
        {
            if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        }
    }

    public static TheoryData<string> Reproducers()
    {
        var data = new TheoryData<string>();
        string dir = Path.Combine(AppContext.BaseDirectory, "reproducers");
        foreach (var f in Directory.EnumerateFiles(dir, "*.bin", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(dir, f));
        return data;
    }

    [Theory]
    [MemberData(nameof(Reproducers))]
    public void Saved_reproducer_is_handled(string relativePath)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "reproducers", relativePath);
        var (code, output) = Worker(["replay", path]);
        Assert.True(code == 0, $"exit {code}\n{output}");
        Assert.Contains(", 0 findings", output);
    }

    [Fact]
    public void The_same_seed_gives_the_same_inputs()
    {
        using var target = new Targets.ElfCoreTarget();
        var seed = target.Seeds()[0];
        var a = new Mutator([]);
        var pcg1 = new CsCheck.PCG(3, 42);
        var pcg2 = new CsCheck.PCG(3, 42);
        var first = Enumerable.Range(0, 50).Select(_ => a.Mutate(seed.Data, target.Focus(seed), pcg1)).ToArray();
        var second = Enumerable.Range(0, 50).Select(_ => a.Mutate(seed.Data, target.Focus(seed), pcg2)).ToArray();
        Assert.Equal(first, second);
        Assert.Contains(first, m => !m.AsSpan().SequenceEqual(seed.Data));
    }

    [Fact]
    public void A_target_exception_is_saved_as_a_finding()
    {
        string outDir = Path.Combine(Path.GetTempPath(), $"periscope-fuzz-self-{Guid.NewGuid():n}");
        try
        {
            using var target = new ThrowingTarget();
            var result = new FuzzRunner(target, new RunOptions { Iterations = 20, OutputDirectory = outDir, Log = TextWriter.Null }).Run();
            Assert.Equal(20, result.Executions);
            Assert.NotEmpty(result.Findings);
            var saved = Directory.GetFiles(Path.Combine(outDir, "throwing", "crashes"), "*.bin");
            Assert.Contains(saved, f => File.ReadAllBytes(f).AsSpan().IndexOf((byte)0xEE) >= 0);
        }
        finally
        {
            if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        }
    }

    private sealed class ThrowingTarget : FuzzTarget
    {
        public override string Name => "throwing";
        public override string Description => "fails on byte 0xEE";
        public override int SmokeIterations => 20;
        public override IReadOnlyList<Seed> Seeds() => [new("ok", [1, 2, 3]), new("bad", [0xEE])];
        public override Verdict Run(byte[] input) => input.Contains((byte)0xEE) ? throw new IndexOutOfRangeException("0xEE") : Verdict.Accepted;
    }

    private static (int Code, string Output) Worker(IEnumerable<string> args)
    {
        var psi = FuzzCommand.WorkerStartInfo(args);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }
}
