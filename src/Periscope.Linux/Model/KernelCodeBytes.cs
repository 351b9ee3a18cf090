using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>What the code-reading finders (<see cref="SocketTablesCode"/>, <see cref="BpfIdrCode"/>) read: a text symbol's
/// address, and the first bytes of the function at an address (null when fewer than 16 are readable).</summary>
internal static class KernelCodeBytes
{
    public static Func<string, ulong?> Symbols(KernelSymbols symbols) => s => symbols.TryGetAddress(s, out ulong a) ? a : null;

    public static Func<ulong, byte[]?> Reader(GuestReader reader, int maxBytes) => at =>
    {
        var b = new byte[maxBytes];
        int n = reader.Space.Read(at, b);
        return n < 16 ? null : b[..n];
    };
}
