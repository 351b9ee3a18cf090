using System.CommandLine;
using Periscope.Cli.Output;
using Periscope.Replay;

namespace Periscope.Cli.Commands;

/// <summary>`periscope recording info|verify DIR`: what a recording holds; whether it is complete, unaltered and replays.</summary>
public sealed class RecordingCommand : ICliCommand
{
    public Command Build(CommandContext context)
    {
        var infoDir = new Argument<string>("DIR") { Description = "Recording folder" };
        var info = new Command("info", "Manifest of a recording: QEMU, guest, snapshots, end point, files") { infoDir };
        info.SetAction(r =>
        {
            var rec = Recording.Open(r.GetValue(infoDir)!);
            if (context.Json(r)) WriteJson(context.Output, rec.Folder, rec.Manifest);
            else WriteText(context.Output, rec.Folder, rec.Manifest);
            return 0;
        });

        var verifyDir = new Argument<string>("DIR") { Description = "Recording folder" };
        var replay = new Option<bool>("--replay") { Description = "Also replay the whole run and compare serial output and the RAM hash at the end" };
        var verify = new Command("verify", "Check every file against the manifest's sizes and SHA-256; with --replay, that a replay reproduces the run") { verifyDir, replay };
        verify.SetAction(r =>
        {
            var rec = Recording.Open(r.GetValue(verifyDir)!);
            var problems = RecordingVerifier.CheckFiles(rec);
            if (problems.Count > 0)
            {
                // An altered or truncated recording is bad input, not a finding: one line per file, exit 2.
                foreach (var p in problems)
                    context.Error.WriteLine($"periscope: {TerminalText.Escape(Path.Combine(rec.Folder, p.File))}: offset 0: {TerminalText.Escape(p.Detail)}");
                return CliErrors.ErrorExitCode;
            }
            ReplayCheck? check = r.GetValue(replay) ? RecordingVerifier.Replay(rec) : null;
            bool reproduced = check is null || (check.RamMatches && check.Serial.All(s => s.Matches));
            if (context.Json(r))
            {
                Json.Write(context.Output, w =>
                {
                    w.WriteStartObject();
                    w.WriteString("recording", rec.Folder);
                    w.WriteNumber("files", rec.Manifest.Files.Count);
                    w.WriteBoolean("filesIntact", true);
                    if (check is null) w.WriteNull("replay");
                    else
                    {
                        w.WriteStartObject("replay");
                        w.WriteNumber("icount", check.Icount);
                        w.WriteBoolean("ramMatches", check.RamMatches);
                        w.WriteString("ramSha256", check.RamSha256);
                        foreach (var s in check.Serial) w.WriteBoolean(s.File + "Matches", s.Matches);
                        w.WriteNumber("seconds", Math.Round(check.Elapsed.TotalSeconds, 2));
                        w.WriteEndObject();
                    }
                    w.WriteBoolean("reproduced", reproduced);
                    w.WriteEndObject();
                });
            }
            else
            {
                var t = TableWriter.Plain("CHECK", "RESULT");
                t.AddRow("files", $"{rec.Manifest.Files.Count} present, sizes and SHA-256 as in the manifest");
                if (check is not null)
                {
                    t.AddRow("replay to end", $"icount {check.Icount} in {check.Elapsed.TotalSeconds:0.0} s");
                    t.AddRow("RAM SHA-256", check.RamMatches ? "matches the recorded run" : $"DIFFERS: {check.RamSha256[..16]}… vs {rec.Manifest.EndRamSha256[..16]}…");
                    foreach (var s in check.Serial)
                        t.AddRow(s.File, s.Matches ? $"identical ({s.RecordedBytes} bytes)" : $"DIFFERS: recorded {s.RecordedBytes} bytes, replayed {s.ReplayedBytes}");
                }
                TableWriter.Write(context.Output, t);
            }
            return reproduced ? 0 : 1;
        });
        return new Command("recording", "Inspect and verify recordings made by `periscope record`") { info, verify };
    }

    internal static void WriteText(TextWriter output, string folder, RecordingManifest m)
    {
        var t = TableWriter.Plain("", "");
        t.AddRow("recording", TableWriter.Esc(Path.GetFullPath(folder)));
        t.AddRow("created", m.Created.ToString("u"));
        t.AddRow("QEMU", TableWriter.Esc(m.QemuVersion));
        t.AddRow("guest", TableWriter.Esc($"{m.Layout.MemoryMiB} MiB, cpu {m.Layout.Cpu}, icount shift {m.Layout.IcountShift}, append \"{m.Layout.Append}\""));
        t.AddRow("kernel", TableWriter.Esc(m.Kernel is { } k ? $"{k.Banner.Trim()} (build id {k.BuildId})" : "not identified"));
        t.AddRow("end icount", m.EndIcount.ToString());
        t.AddRow("recorded for", $"{m.RecordedTime.TotalSeconds:0.0} s (host time; bounds each replay)");
        t.AddRow("end RAM SHA-256", m.EndRamSha256);
        t.AddRow("snapshots", string.Join(", ", m.Snapshots.Select(s => $"{TerminalText.Escape(s.Name)}@{s.Icount}")));
        t.AddRow("command", TableWriter.Esc(string.Join(' ', m.QemuCommandLine)));
        TableWriter.Write(output, t);
        output.WriteLine();
        var files = TableWriter.Plain("FILE", "BYTES", "SHA-256");
        foreach (var f in m.Files) files.AddRow(TableWriter.Esc(f.Name), f.Bytes.ToString(), f.Sha256);
        TableWriter.Write(output, files);
    }

    internal static void WriteJson(TextWriter output, string folder, RecordingManifest m) => Json.Write(output, w =>
    {
        using var doc = System.Text.Json.JsonDocument.Parse(m.ToJson());
        w.WriteStartObject();
        w.WriteString("recording", Path.GetFullPath(folder));
        w.WritePropertyName("manifest");
        doc.RootElement.WriteTo(w);
        w.WriteEndObject();
    });
}
