using System.Diagnostics;
using System.Globalization;
using Periscope.Fuzz;
using Periscope.Fuzz.Engine;

namespace Periscope.Fuzz
{
    /// <summary>
    /// periscope-fuzz: list | seeds DIR | run --target T [--seed N] [--iterations N | --seconds N] [--out DIR]
    /// | campaign [--minutes N] [--target T[,T]] [--out DIR] [--jobs N] | replay FILE... | make-dump [PATH]
    /// </summary>
    public static class FuzzCommand
    {
        /// <summary>Heap limit for every worker process (the per-input memory limit is the allocation check).</summary>
        public const string HeapHardLimit = "0x80000000";

        public static int Main(string[] args)
        {
            if (args.Length == 0) return Usage();
            var opts = ParseOptions(args.Skip(1));
            try
            {
                return args[0] switch
                {
                    "list" => List(),
                    "seeds" => WriteSeeds(args.Length > 1 ? args[1] : "fuzz-seeds"),
                    "run" => RunWorker(opts),
                    "campaign" => Campaign.Run(opts),
                    "replay" => Replay(args.Skip(1).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray()),
                    "make-dump" => GuestDump.Make(args.Length > 1 ? args[1] : Targets.DumpModelTarget.DefaultDumpPath),
                    _ => Usage(),
                };
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
        }

        private static int Usage()
        {
            Console.Error.WriteLine("usage: periscope-fuzz list | seeds DIR | run --target T [--seed N] [--iterations N|--seconds N] [--out DIR] [--time-limit S]"
                + " | campaign [--minutes N] [--target T,...] [--out DIR] [--jobs N] | replay FILE... | make-dump [PATH]");
            return 2;
        }

        public static Dictionary<string, string> ParseOptions(IEnumerable<string> args)
        {
            var d = new Dictionary<string, string>();
            string? key = null;
            foreach (var a in args)
            {
                if (a.StartsWith("--", StringComparison.Ordinal)) { key = a[2..]; d[key] = "true"; }
                else if (key is not null) { d[key] = a; key = null; }
            }
            return d;
        }

        private static int List()
        {
            foreach (var t in FuzzTargets.All())
            {
                using (t)
                {
                    string note = t.Unavailable is { } u ? $"  [unavailable: {u}]" : t.SmokeExclusion is { } x ? $"  [campaign only: {x}]" : "";
                    Console.WriteLine($"{t.Name,-16} {t.Description}{note}");
                }
            }
            return 0;
        }

        private static int WriteSeeds(string dir)
        {
            foreach (var t in FuzzTargets.All())
            {
                using (t)
                {
                    if (t.Unavailable is not null) continue;
                    string d = Path.Combine(dir, t.Name);
                    Directory.CreateDirectory(d);
                    t.Prepare();
                    foreach (var s in t.Seeds())
                    {
                        File.WriteAllBytes(Path.Combine(d, s.Name + ".bin"), s.Data);
                        // A seed the target rejects teaches the mutator little: say so.
                        Verdict v;
                        try { v = t.Run(s.Data); }
                        catch (Exception e) { Console.WriteLine($"  seed {s.Name}: FAILS: {e.GetType().Name}: {e.Message}"); continue; }
                        string why = t is Targets.KallsymsTarget k && v == Verdict.Rejected ? ": " + string.Join("; ", k.LastDiagnostics) : "";
                        Console.WriteLine($"  seed {s.Name}: {v}{why}");
                    }
                    Console.WriteLine($"{t.Name}: {t.Seeds().Count} seeds in {d}");
                }
            }
            return 0;
        }

        private static int RunWorker(Dictionary<string, string> o)
        {
            string name = o.GetValueOrDefault("target") ?? throw new ArgumentException("run needs --target");
            using var target = FuzzTargets.Create(name);
            if (target.Unavailable is { } why) { Console.Error.WriteLine($"{name}: {why}"); return 2; }
            var options = new RunOptions
            {
                Seed = ulong.Parse(o.GetValueOrDefault("seed", "1"), CultureInfo.InvariantCulture),
                Iterations = o.TryGetValue("iterations", out var it) ? long.Parse(it, CultureInfo.InvariantCulture) : long.MaxValue,
                Duration = o.TryGetValue("seconds", out var sec) ? TimeSpan.FromSeconds(double.Parse(sec, CultureInfo.InvariantCulture)) : TimeSpan.MaxValue,
                InputTimeLimit = TimeSpan.FromSeconds(double.Parse(o.GetValueOrDefault("time-limit", "5"), CultureInfo.InvariantCulture)),
                OutputDirectory = o.GetValueOrDefault("out"),
            };
            var result = new FuzzRunner(target, options).Run();
            Console.WriteLine(FormattableString.Invariant(
                $"RESULT {result.Target} executions={result.Executions} rejected={result.Rejected} seconds={result.Seconds:0.00} per-second={result.ExecutionsPerSecond:0} findings={result.Findings.Count}"));
            return result.Findings.Count == 0 ? 0 : FuzzRunner.FindingsExitCode;
        }

        /// <summary>Runs saved inputs; the target is the name of the folder holding each file.</summary>
        private static int Replay(string[] files)
        {
            if (files.Length == 0) throw new ArgumentException("replay needs files");
            int failures = 0;
            foreach (var group in files.GroupBy(f => new DirectoryInfo(Path.GetDirectoryName(Path.GetFullPath(f))!).Name))
            {
                using var target = FuzzTargets.Create(group.Key);
                if (target.Unavailable is { } why) { Console.Error.WriteLine($"{group.Key}: {why}"); return 2; }
                var inputs = group.Select(f => new Seed(Path.GetFileName(f), File.ReadAllBytes(f))).ToArray();
                var result = new FuzzRunner(target, new RunOptions { FixedInputs = inputs, InputTimeLimit = TimeSpan.FromSeconds(30) }).Run();
                failures += result.Findings.Count;
                Console.WriteLine($"REPLAY {group.Key}: {inputs.Length} inputs, {result.Findings.Count} findings");
            }
            return failures == 0 ? 0 : FuzzRunner.FindingsExitCode;
        }

        /// <summary>Starts this assembly as a worker process with the heap limit set.</summary>
        public static ProcessStartInfo WorkerStartInfo(IEnumerable<string> args)
        {
            string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h ? h : "dotnet";
            var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add(typeof(FuzzCommand).Assembly.Location);
            foreach (var a in args) psi.ArgumentList.Add(a);
            psi.Environment["DOTNET_GCHeapHardLimit"] = HeapHardLimit;
            psi.Environment["DOTNET_gcServer"] = "0";
            psi.Environment["DOTNET_TieredPGO"] = "0";
            return psi;
        }
    }

    public static class FuzzTargets
    {
        public static IReadOnlyList<string> Names { get; } =
            ["elf-core", "lime", "raw-detect", "page-tables", "kernel-locator", "kallsyms", "btf", "btf-offsets", "dump-model", "baseline-store"];

        public static FuzzTarget Create(string name) => name switch
        {
            "elf-core" => new Targets.ElfCoreTarget(),
            "lime" => new Targets.LimeTarget(),
            "raw-detect" => new Targets.RawDetectionTarget(),
            "page-tables" => new Targets.PageTableTarget(),
            "kernel-locator" => new Targets.KernelLocatorTarget(),
            "kallsyms" => new Targets.KallsymsTarget(),
            "btf" => new Targets.BtfTarget(),
            "btf-offsets" => new Targets.BtfOffsetsTarget(),
            "dump-model" => new Targets.DumpModelTarget(),
            "baseline-store" => new Targets.BaselineStoreTarget(),
            _ => throw new ArgumentException($"unknown target '{name}'; targets: {string.Join(", ", Names)}"),
        };

        public static IEnumerable<FuzzTarget> All() => Names.Select(Create);
    }
}
