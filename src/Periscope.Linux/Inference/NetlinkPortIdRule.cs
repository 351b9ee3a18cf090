using System.Buffers.Binary;

namespace Periscope.Linux.Inference;

/// <summary>
/// netlink_sock.portid without BTF (net/netlink/af_netlink.h: struct sock sk; unsigned long flags; u32 portid; ...): the
/// u32 after struct sock, right after the word flags, that is 0 in every kernel socket and not 0 in every user socket
/// (netlink_autobind or bind gave it a port), unique per protocol and network namespace, while flags' NETLINK_F_KERNEL_SOCKET
/// bit is set exactly in the kernel sockets. flags is netlink_sock's own member, so it starts after struct sock and
/// therefore after sk_protocol: the scan starts at the first word boundary after sk_protocol's end, wherever the u16 sits
/// in its word (6.12 has it at 0x23e, two bytes short of a word boundary).
/// </summary>
public static class NetlinkPortIdRule
{
    /// <summary>NETLINK_F_KERNEL_SOCKET (net/netlink/af_netlink.h): netlink_sock.flags' bit for sockets the kernel made.</summary>
    public const ulong KernelSocketFlag = 1;

    /// <summary>One netlink socket read from its start up to netlink_sock.node: whether it is a user socket (its struct
    /// socket has a file), the protocol of the nl_table entry it hangs from, and its network namespace.</summary>
    public readonly record struct Socket(byte[] Window, bool User, int Protocol, ulong Net);

    /// <summary>Every offset that fits (empty without both kernel and user sockets: nothing then tells a port id from
    /// another u32). <paramref name="protocolAt"/> is sock.sk_protocol's offset (a u16).</summary>
    public static List<int> Candidates(IReadOnlyList<Socket> socks, int protocolAt, int pointerSize)
    {
        var found = new List<int>();
        if (!socks.Any(s => s.User) || !socks.Any(s => !s.User) || protocolAt < 0) return found;
        int afterProtocol = (protocolAt + 2 + pointerSize - 1) / pointerSize * pointerSize;
        int length = socks.Min(s => s.Window.Length);
        // flags is the word at x - pointerSize, at or after the first word boundary past sk_protocol.
        for (int x = afterProtocol + pointerSize; x + 4 <= length; x += pointerSize)
            if (socks.All(s => (U32(s.Window, x) != 0) == s.User && ((WordLayout.ReadWord(s.Window, x - pointerSize, pointerSize) & KernelSocketFlag) != 0) == !s.User)
                && socks.Select(s => (s.Protocol, s.Net, U32(s.Window, x))).Distinct().Count() == socks.Count)
                found.Add(x);
        return found;
    }

    private static uint U32(byte[] w, int at) => BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(at, 4));
}
