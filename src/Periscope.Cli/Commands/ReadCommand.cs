using System.CommandLine;
using System.Text;
using Periscope.Cli.Output;

namespace Periscope.Cli.Commands;

/// <summary>`periscope read ADDRESS LEN [--phys]`: a hex dump (as <c>hexdump -C</c>) of kernel virtual memory, through
/// the kernel's page tables, or of guest physical memory; bytes that cannot be read are shown as <c>??</c>.</summary>
public sealed class ReadCommand : ICliCommand
{
    private const int PageSize = 4096;

    public Command Build(CommandContext context)
    {
        var address = new Argument<string>("address") { Description = "Start: hex (0x optional), or a kernel symbol (+offset) for virtual reads" };
        var length = new Argument<string>("length") { Description = "Bytes to show (decimal, or hex with 0x)" };
        var phys = new Option<bool>("--phys") { Description = "ADDRESS is guest physical (no kernel discovery is needed)" };
        var command = new Command("read", "Hex dump of kernel virtual memory (through the kernel page tables) or of physical memory (--phys)")
            { address, length, phys };
        command.SetAction(r => context.WithTarget(r, target =>
        {
            string lengthText = r.GetValue(length)!;
            ulong n = KernelAddressParser.ParseNumber(lengthText, lengthText);
            if (n == 0) throw new CliUsageException("length must be at least 1");
            if (n > (ulong)target.Limits.MaxRawReadBytes)
                throw new CliUsageException($"length {n} is more than MaxRawReadBytes = {target.Limits.MaxRawReadBytes}");
            bool physical = r.GetValue(phys);
            string addressText = r.GetValue(address)!;
            ulong start;
            Func<ulong, Span<byte>, int> read;
            if (physical)
            {
                if (!KernelAddressParser.TryHex(addressText, out start)) throw new CliUsageException($"'{addressText}' is not a hexadecimal physical address");
                read = target.Memory.Read;
            }
            else
            {
                var kernel = target.Kernel;
                start = KernelAddressParser.Parse(addressText, kernel.Symbols);
                read = kernel.Reader.Read;
            }
            if (start + n < start) throw new CliUsageException($"0x{start:x} + {n} wraps around the address space");
            var data = new byte[n];
            var readable = new bool[n];
            for (ulong off = 0; off < n;)
            {
                ulong at = start + off;
                int chunk = (int)Math.Min(n - off, (ulong)(PageSize - (int)(at % PageSize)));
                int got = Math.Max(0, read(at, data.AsSpan((int)off, chunk)));
                readable.AsSpan((int)off, Math.Min(got, chunk)).Fill(true);
                off += (ulong)chunk;
            }
            bool complete = Array.TrueForAll(readable, b => b);
            if (context.Json(r)) Json.Write(context.Output, w =>
            {
                w.WriteStartObject();
                w.Address("address", start);
                w.WriteNumber("length", n);
                w.WriteBoolean("physical", physical);
                w.WriteString("hex", Hex(data, readable));
                w.WriteStartArray("unreadable");
                foreach (var (s, e) in Gaps(readable))
                {
                    w.WriteStartObject();
                    w.Address("start", start + (ulong)s);
                    w.Address("end", start + (ulong)e);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            });
            else context.Output.Write(Dump(start, data, readable));
            if (!physical) Warnings.Print(context, target.Kernel);
            if (!complete) context.Error.WriteLine("periscope: warning: some bytes could not be read (not mapped, or not backed by the memory source): shown as ??");
            return complete ? 0 : 3;
        }));
        return command;
    }

    /// <summary>hexdump -C lines: address, 16 bytes in two groups of 8, and the printable ASCII; ?? for unreadable bytes.</summary>
    internal static string Dump(ulong start, byte[] data, bool[] readable)
    {
        var sb = new StringBuilder();
        for (int line = 0; line < data.Length; line += 16)
        {
            sb.Append($"{start + (ulong)line:x16} ");
            var ascii = new StringBuilder();
            for (int i = 0; i < 16; i++)
            {
                if (i == 8) sb.Append(' ');
                int at = line + i;
                if (at >= data.Length) { sb.Append("   "); continue; }
                if (!readable[at]) { sb.Append(" ??"); ascii.Append(' '); continue; }
                sb.Append($" {data[at]:x2}");
                ascii.Append(data[at] is >= 0x20 and < 0x7f ? (char)data[at] : '.');
            }
            sb.Append("  |").Append(ascii).Append("|\n");
        }
        return sb.ToString();
    }

    private static string Hex(byte[] data, bool[] readable)
    {
        var sb = new StringBuilder(data.Length * 2);
        for (int i = 0; i < data.Length; i++) sb.Append(readable[i] ? data[i].ToString("x2") : "??");
        return sb.ToString();
    }

    private static IEnumerable<(int Start, int End)> Gaps(bool[] readable)
    {
        for (int i = 0; i < readable.Length; i++)
        {
            if (readable[i]) continue;
            int s = i;
            while (i < readable.Length && !readable[i]) i++;
            yield return (s, i);
        }
    }
}
