using System.CommandLine;
using System.Globalization;
using Periscope.Cli.Output;
using Periscope.Linux.Files;

namespace Periscope.Cli.Commands;

/// <summary>`periscope dump file PATH|INODE-ADDR --out FILE`: a file's cached pages from the guest's page cache, holes
/// left sparse in the output and listed.</summary>
public static class DumpFileCommand
{
    public static Command Build(CommandContext context)
    {
        var file = new Argument<string>("file") { Description = "Absolute path in the guest (from the initial task's root), or the address of a struct inode (0x...)" };
        var output = new Option<string>("--out") { Description = "File to write (sparse where the page cache holds no page)", Required = true };
        var command = new Command("file", "Write a guest file's cached pages from the page cache (i_pages), at their offsets; pages not cached are holes, listed") { file, output };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            string what = r.GetValue(file)!;
            var cache = new PageCacheFile(target.Kernel);
            ulong inode;
            if (what.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                if (!ulong.TryParse(what.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out inode) || !target.Kernel.Reader.IsKernelPointer(inode))
                    throw new CliUsageException($"'{what}' is not a kernel address");
            }
            else inode = cache.Resolve(what, out string? why) ?? throw new CliUsageException($"cannot find {what}: {why}");
            string path = r.GetValue(output)!;
            PageCacheDump result;
            using (var stream = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16))
                result = cache.Write(inode, stream);
            if (context.Json(r))
                Json.Write(context.Output, w =>
                {
                    w.WriteStartObject();
                    w.WriteString("file", what);
                    w.Address("inode", result.Inode);
                    w.WriteNumber("inodeNumber", result.InodeNumber);
                    w.WriteString("out", path);
                    w.WriteNumber("size", result.Size);
                    w.WriteNumber("pagesCached", result.PagesCached);
                    w.WriteNumber("pagesTotal", result.PagesTotal);
                    w.WriteStartArray("holes");
                    foreach (var h in result.Holes)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("offset", h.Offset);
                        w.WriteNumber("length", h.Length);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteStartArray("gaps");
                    foreach (var g in result.Gaps) w.WriteStringValue(g);
                    w.WriteEndArray();
                    w.WriteEndObject();
                });
            else
            {
                context.Output.WriteLine($"wrote {TerminalText.Escape(path)}: {TerminalText.Escape(what)} (inode {result.InodeNumber} at 0x{result.Inode:x}), {result.Size} bytes, {result.PagesCached} of {result.PagesTotal} pages cached");
                foreach (var h in result.Holes) context.Output.WriteLine($"hole: offset {h.Offset} length {h.Length}");
            }
            foreach (var g in result.Gaps) context.Error.WriteLine($"periscope: incomplete: {TerminalText.Escape(g)}");
            Warnings.Print(context, target.Kernel);
            return result.Gaps.Count > 0 ? 3 : 0;
        }));
        return command;
    }
}
