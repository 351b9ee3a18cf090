using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Linux.Dump;

namespace Periscope.Cli.Commands;

/// <summary>`periscope dump process PID --out FILE`: one process as an ELF core file that gdb loads.</summary>
public sealed class DumpCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var pid = new Argument<int>("pid") { Description = "The process (thread-group id)" };
        var output = new Option<string>("--out") { Description = "Core file to write", Required = true };
        var stats = StageStats.Option();
        var process = new Command("process", "Write a process as an ELF core (resident pages of every mapping, each thread's saved user registers, mapped files) for gdb") { pid, output, stats };
        process.SetAction(r => context.WithTarget(r, target =>
        {
            int want = r.GetValue(pid);
            var task = target.Kernel.Tasks.FirstOrDefault(t => t.Pid == want && t.Tgid == want) ?? throw new CliUsageException($"no process with pid {want}");
            string path = r.GetValue(output)!;
            ProcessCoreResult result;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            long written;
            using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                result = new ProcessCore(target.Kernel).Write(task, file);
                written = file.Length;
            }
            if (r.GetValue(stats))
            {
                // The core's write stage (page walk, guest reads, file writes, close) apart from attaching to the target,
                // so a benchmark can set its rate against dd writing as many bytes in the same run.
                StageStats.WriteAttach(context.Error, target.Kernel);
                StageStats.Line(context.Error, "core write", watch.Elapsed.TotalMilliseconds, written);
            }
            if (context.Json(r))
                Json.Write(context.Output, w =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("pid", want);
                    w.WriteString("out", path);
                    w.WriteNumber("segments", result.Segments);
                    w.WriteNumber("memoryBytes", result.MemoryBytes);
                    w.WriteNumber("threads", result.Threads);
                    w.WriteNumber("threadsWithRegisters", result.ThreadsWithRegisters);
                    w.WriteStartArray("gaps");
                    foreach (var g in result.Gaps) w.WriteStringValue(g);
                    w.WriteEndArray();
                    w.WriteEndObject();
                });
            else
                context.Output.WriteLine($"wrote {TerminalText.Escape(path)}: pid {want}, {result.Segments} segments, {result.MemoryBytes} bytes of resident memory, {result.ThreadsWithRegisters} of {result.Threads} threads with registers");
            foreach (var g in result.Gaps) context.Error.WriteLine($"periscope: incomplete: {TerminalText.Escape(g)}");
            Warnings.Print(context, target.Kernel);
            return result.Gaps.Count > 0 ? 3 : 0;
        }));
        return new Command("dump", "Write guest objects as files other tools read") { process, DumpFileCommand.Build(context) };
    }
}
