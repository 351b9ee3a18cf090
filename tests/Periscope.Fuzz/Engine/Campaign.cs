using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Periscope.Fuzz.Engine;

/// <summary>
/// Supervises worker processes for N minutes: targets share the time equally (<c>--jobs</c> run side by side), a worker
/// that ends early (findings saved, a hang, or a dead process) is restarted with a new seed, and a worker that died
/// without saving (stack overflow, killed at the heap limit) has its last input saved from the shared current-input
/// file. Prints executions per target and per second, and writes the same table to OUT/summary.txt.
/// </summary>
public static partial class Campaign
{
    private sealed record Tally(string Target)
    {
        public long Executions;
        public double Seconds;
        public int Findings, Hangs, Deaths, Workers;
    }

    public static int Run(Dictionary<string, string> o)
    {
        double minutes = double.Parse(o.GetValueOrDefault("minutes", "10"), CultureInfo.InvariantCulture);
        string outDir = Path.GetFullPath(o.GetValueOrDefault("out", Path.Combine(Targets.DumpModelTarget.RepoRoot(), "artifacts", "fuzz")));
        int jobs = int.Parse(o.GetValueOrDefault("jobs", "1"), CultureInfo.InvariantCulture);
        var names = o.TryGetValue("target", out var t) ? t.Split(',', StringSplitOptions.RemoveEmptyEntries) : FuzzTargets.Names.ToArray();
        var runnable = new List<string>();
        foreach (var n in names)
        {
            using var target = FuzzTargets.Create(n);
            if (target.Unavailable is { } why) Console.WriteLine($"skip {n}: {why}");
            else runnable.Add(n);
        }
        if (runnable.Count == 0) throw new ArgumentException("no runnable targets");
        Directory.CreateDirectory(outDir);
        var perTarget = TimeSpan.FromMinutes(minutes * jobs / runnable.Count);
        Console.WriteLine($"campaign: {runnable.Count} targets, {perTarget.TotalSeconds:0} s each, {jobs} at a time, findings under {outDir}");
        var tallies = runnable.Select(n => new Tally(n)).ToArray();
        ulong baseSeed = o.TryGetValue("seed", out var s) ? ulong.Parse(s, CultureInfo.InvariantCulture) : (ulong)DateTime.UtcNow.Ticks;
        Parallel.ForEach(tallies, new ParallelOptions { MaxDegreeOfParallelism = jobs }, tally => Supervise(tally, perTarget, outDir, baseSeed));

        var lines = new List<string>
        {
            $"campaign {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {minutes} min, jobs {jobs}, heap limit {FuzzCommand.HeapHardLimit} per worker, per-input limits 5 s / 512 MiB allocated",
            $"{"target",-16} {"executions",12} {"seconds",8} {"exec/s",8} {"findings",8} {"hangs",6} {"deaths",6} {"workers",7}",
        };
        foreach (var x in tallies)
            lines.Add(FormattableString.Invariant($"{x.Target,-16} {x.Executions,12} {x.Seconds,8:0} {(x.Seconds > 0 ? x.Executions / x.Seconds : 0),8:0} {x.Findings,8} {x.Hangs,6} {x.Deaths,6} {x.Workers,7}"));
        lines.Add(FormattableString.Invariant($"{"total",-16} {tallies.Sum(x => x.Executions),12} {"",8} {"",8} {tallies.Sum(x => x.Findings),8} {tallies.Sum(x => x.Hangs),6} {tallies.Sum(x => x.Deaths),6}"));
        File.WriteAllLines(Path.Combine(outDir, "summary.txt"), lines);
        foreach (var l in lines) Console.WriteLine(l);
        return tallies.All(x => x.Findings + x.Hangs + x.Deaths == 0) ? 0 : 1;
    }

    private static void Supervise(Tally tally, TimeSpan budget, string outDir, ulong baseSeed)
    {
        var clock = Stopwatch.StartNew();
        while (budget - clock.Elapsed > TimeSpan.FromSeconds(2))
        {
            double seconds = (budget - clock.Elapsed).TotalSeconds;
            ulong seed = baseSeed + (ulong)tally.Workers * 7919 + (ulong)tally.Target.GetHashCode(StringComparison.Ordinal);
            var psi = FuzzCommand.WorkerStartInfo(["run", "--target", tally.Target, "--seconds", seconds.ToString("0", CultureInfo.InvariantCulture),
                "--seed", seed.ToString(CultureInfo.InvariantCulture), "--out", outDir]);
            tally.Workers++;
            using var p = Process.Start(psi)!;
            var errors = p.StandardError.ReadToEndAsync();
            string? line;
            while ((line = p.StandardOutput.ReadLine()) is not null)
            {
                if (line.StartsWith("FINDING", StringComparison.Ordinal)) Console.WriteLine(line);
                var m = ResultLine().Match(line);
                if (m.Success)
                {
                    tally.Executions += long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                    tally.Seconds += double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
                    tally.Findings += int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
                }
            }
            p.WaitForExit();
            if (p.ExitCode == FuzzRunner.HangExitCode) tally.Hangs++;
            else if (p.ExitCode is not 0 and not FuzzRunner.FindingsExitCode)
            {
                tally.Deaths++;
                var input = FuzzRunner.ReadCurrentInput(FuzzRunner.CurrentInputPath(outDir, tally.Target));
                string dir = Path.Combine(outDir, tally.Target, "deaths");
                Directory.CreateDirectory(dir);
                string file = Path.Combine(dir, $"exit{p.ExitCode}-{DateTime.UtcNow:HHmmss}.bin");
                if (input is not null) File.WriteAllBytes(file, input);
                File.WriteAllText(Path.ChangeExtension(file, ".txt"), $"worker exit code {p.ExitCode}\n{errors.Result}");
                Console.WriteLine($"DEATH {tally.Target} exit {p.ExitCode}: {file}");
            }
        }
    }

    [GeneratedRegex(@"^RESULT \S+ executions=(\d+) rejected=\d+ seconds=([\d.]+) per-second=\d+ findings=(\d+)")]
    private static partial Regex ResultLine();
}
