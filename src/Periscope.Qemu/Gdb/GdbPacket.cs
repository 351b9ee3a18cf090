using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Periscope.Qemu.Gdb;

/// <summary>
/// GDB remote serial protocol framing: `$payload#cs` where cs is the modulo-256 sum of the payload bytes as two hex
/// digits. '}' escapes '$', '#', '}' and '*' (byte XOR 0x20); replies may be run-length encoded (`X*n` = X repeated
/// n - 29 more times). Decoding never allocates more than the caller's limit.
/// </summary>
public static class GdbPacket
{
    public static byte[] Frame(string payload)
    {
        var body = new List<byte>(payload.Length + 4) { (byte)'$' };
        byte sum = 0;
        foreach (byte b in Encoding.ASCII.GetBytes(payload))
        {
            if (b is (byte)'$' or (byte)'#' or (byte)'}' or (byte)'*')
            {
                body.Add((byte)'}');
                body.Add((byte)(b ^ 0x20));
                sum += (byte)'}';
                sum += (byte)(b ^ 0x20);
            }
            else
            {
                body.Add(b);
                sum += b;
            }
        }
        body.Add((byte)'#');
        body.AddRange(Encoding.ASCII.GetBytes(sum.ToString("x2")));
        return [.. body];
    }

    public static byte Checksum(ReadOnlySpan<byte> raw)
    {
        byte sum = 0;
        foreach (byte b in raw) sum += b;
        return sum;
    }

    /// <summary>Undoes escapes and run-length encoding of a received payload (between '$' and '#').</summary>
    public static string Decode(ReadOnlySpan<byte> raw, int maxBytes)
    {
        var output = new StringBuilder(Math.Min(raw.Length * 2, maxBytes));
        for (int i = 0; i < raw.Length; i++)
        {
            byte b = raw[i];
            if (b == '}')
            {
                if (++i >= raw.Length) ThrowFormat("escape '}' at the end of a packet");
                Append(output, (char)(raw[i] ^ 0x20), maxBytes);
            }
            else if (b == '*')
            {
                if (output.Length == 0 || ++i >= raw.Length) ThrowFormat("run-length '*' without a byte to repeat or a count");
                int repeat = raw[i] - 29;
                if (repeat < 3 || raw[i] is (byte)'#' or (byte)'$') ThrowFormat($"run-length count byte 0x{raw[i]:x2} is invalid");
                char last = output[^1];
                for (int r = 0; r < repeat; r++) Append(output, last, maxBytes);
            }
            else Append(output, (char)b, maxBytes);
        }
        return output.ToString();
    }

    private static void Append(StringBuilder output, char c, int maxBytes)
    {
        if (output.Length >= maxBytes) ThrowFormat($"packet longer than {maxBytes} bytes (IntrospectionLimits.MaxGdbPacketBytes)");
        output.Append(c);
    }

    [DoesNotReturn]
    public static void ThrowFormat(string what) => throw new GdbProtocolException(what);
}

/// <summary>The stub sent something that is not the GDB remote protocol, or an error reply.</summary>
public sealed class GdbProtocolException(string message) : Exception(message);

public enum WatchpointKind { Write, Read, Access }

/// <summary>A stop reply: `S sig` or `T sig key:value;...` (QEMU: `T05thread:01;` plus `watch:ADDR;` on a watchpoint hit).</summary>
public sealed record GdbStopReply(byte Signal, WatchpointKind? Watch, ulong? WatchAddress, string? Thread, string Raw)
{
    public static GdbStopReply Parse(string reply)
    {
        if (reply.Length < 3 || reply[0] is not ('S' or 'T') || !byte.TryParse(reply.AsSpan(1, 2), System.Globalization.NumberStyles.HexNumber, null, out byte signal))
            throw new GdbProtocolException($"not a stop reply: '{Shorten(reply)}'");
        WatchpointKind? kind = null;
        ulong? address = null;
        string? thread = null;
        foreach (var pair in reply[3..].Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = pair.IndexOf(':');
            if (colon <= 0) continue;
            string key = pair[..colon], value = pair[(colon + 1)..];
            switch (key)
            {
                case "watch" or "rwatch" or "awatch":
                    if (!ulong.TryParse(value, System.Globalization.NumberStyles.HexNumber, null, out ulong a))
                        throw new GdbProtocolException($"watchpoint address '{Shorten(value)}' is not hex");
                    kind = key == "watch" ? WatchpointKind.Write : key == "rwatch" ? WatchpointKind.Read : WatchpointKind.Access;
                    address = a;
                    break;
                case "thread":
                    thread = value;
                    break;
            }
        }
        return new GdbStopReply(signal, kind, address, thread, reply);
    }

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "..." : s;
}

/// <summary>
/// The x86-64 registers watch needs from a `g` reply, at the offsets of QEMU's x86-64 register order (target/i386
/// gdbstub): rax..r15 (8 bytes each), rip (8), eflags (4), cs ss ds es fs gs (4 each), then fs_base, gs_base and
/// k_gs_base (8 each while the vCPU is in 64-bit mode). QEMU answers `p` only after a client has read its target XML,
/// so the whole `g` block is read and sliced here.
/// </summary>
public readonly record struct GdbX86_64Registers(ulong Rip, ulong Rsp, ulong GsBase, ulong KernelGsBase)
{
    private const int RspOffset = 7 * 8, RipOffset = 16 * 8, GsBaseOffset = RipOffset + 8 + 4 + 6 * 4 + 8, KernelGsBaseOffset = GsBaseOffset + 8;

    public static GdbX86_64Registers Parse(ReadOnlySpan<byte> g)
    {
        if (g.Length < KernelGsBaseOffset + 8)
            GdbPacket.ThrowFormat($"register block of {g.Length} bytes is too short for x86-64 (need {KernelGsBaseOffset + 8}; is the vCPU in 64-bit mode?)");
        return new(System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(g[RipOffset..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(g[RspOffset..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(g[GsBaseOffset..]),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(g[KernelGsBaseOffset..]));
    }
}
