using Periscope.Linux.Model;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// The socket tables' data objects found by code (kernels without data symbols): the bytes are Debian 6.1 686-pae's
/// own udp_rcv and the shapes of tcp_twsk_purge / tcp_sk_init / netlink_has_listeners; a function yielding no, or two, accepted addresses yields
/// nothing, and garbage code is no crash.
/// </summary>
public class SocketTablesCodeTests
{
    private const ulong UdpRcv = 0xca7b1fd0, Purge = 0xca7a3e80, SkInit = 0xca79d700, HasListeners = 0xca7c0e40;

    // udp_rcv: nopl; push ebp; mov ecx, 17 (IPPROTO_UDP); mov edx, &udp_table; mov ebp, esp; call __udp4_lib_rcv; pop ebp; ret
    private static readonly byte[] UdpRcvCode = [0x3e, 0x8d, 0x74, 0x26, 0x00, 0x55, 0xb9, 0x11, 0x00, 0x00, 0x00, 0xba, 0xa8, 0xd7, 0xd8, 0xca, 0x89, 0xe5, 0xe8, 0x99, 0xef, 0xff, 0xff, 0x5d, 0xc3];
    // tcp_twsk_purge's tail: mov eax, &tcp_hashinfo; call inet_twsk_purge; ret
    private static readonly byte[] PurgeCode = [0xb8, 0x20, 0x63, 0xf0, 0xca, 0xe8, 0x6e, 0x64, 0xfd, 0xff, 0xc3];
    // tcp_sk_init: cmp ebx, &init_net; mov eax, &tcp_hashinfo; ret
    private static readonly byte[] SkInitCode = [0x81, 0xfb, 0x00, 0x47, 0xf0, 0xca, 0xb8, 0x20, 0x63, 0xf0, 0xca, 0xc3];

    private static ulong? Find(string name, Dictionary<ulong, byte[]> code, Func<ulong, bool>? accept = null, int word = 4)
    {
        var symbols = new Dictionary<string, ulong> { ["udp_rcv"] = UdpRcv, ["tcp_twsk_purge"] = Purge, ["tcp_sk_init"] = SkInit, ["netlink_has_listeners"] = HasListeners };
        return SocketTablesCode.Find(name, s => symbols.TryGetValue(s, out ulong a) ? a : null, a => code.GetValueOrDefault(a), word,
            accept ?? (a => a >= 0xca900000), out _);
    }

    [Fact]
    public void Udp_table_tcp_hashinfo_and_init_net_come_from_the_functions_that_use_them()
    {
        var code = new Dictionary<ulong, byte[]> { [UdpRcv] = UdpRcvCode, [Purge] = PurgeCode, [SkInit] = SkInitCode };
        Assert.Equal(0xcad8d7a8UL, Find("udp_table", code));
        Assert.Equal(0xcaf06320UL, Find("tcp_hashinfo", code));
        Assert.Equal(0xcaf04700UL, Find("init_net", code));
    }

    [Fact]
    public void Tcp_hashinfo_falls_back_to_tcp_sk_init_and_takes_no_compared_address()
    {
        var code = new Dictionary<ulong, byte[]> { [SkInit] = SkInitCode };
        Assert.Equal(0xcaf06320UL, Find("tcp_hashinfo", code));
    }

    [Fact]
    public void An_address_without_the_tables_shape_is_not_taken()
    {
        var code = new Dictionary<ulong, byte[]> { [UdpRcv] = UdpRcvCode };
        Assert.Null(Find("udp_table", code, accept: a => a >= 0xca900000 && a != 0xcad8d7a8));
    }

    [Fact]
    public void Two_accepted_addresses_are_ambiguous_and_yield_nothing()
    {
        byte[] two = [0xb8, 0x20, 0x63, 0xf0, 0xca, 0xba, 0x00, 0x10, 0xf0, 0xca, 0xc3];
        Assert.Null(Find("tcp_hashinfo", new Dictionary<ulong, byte[]> { [Purge] = two }));
    }

    [Fact]
    public void Garbage_code_and_missing_functions_yield_nothing()
    {
        Assert.Null(Find("udp_table", new Dictionary<ulong, byte[]> { [UdpRcv] = Enumerable.Repeat((byte)0xff, 64).ToArray() }));
        Assert.Null(Find("udp_table", []));
        Assert.Null(Find("some_other_object", new Dictionary<ulong, byte[]> { [UdpRcv] = UdpRcvCode }));
    }

    [Fact]
    public void X86_64_sign_extended_immediates_and_rip_relative_addresses_are_read()
    {
        // mov rsi, imm32 (sign-extended) in udp_rcv; lea rdi, [rip + disp] in tcp_twsk_purge
        byte[] udp = [0x48, 0xc7, 0xc6, 0x40, 0x12, 0x34, 0x83, 0xc3];
        byte[] purge = [0x48, 0x8d, 0x3d, 0x00, 0x10, 0x00, 0x00, 0xc3];
        var code = new Dictionary<ulong, byte[]> { [UdpRcv] = udp, [Purge] = purge };
        Assert.Equal(0xffff_ffff_8334_1240UL, Find("udp_table", code, a => a >= 0xffff_ffff_8000_0000, word: 8));
        Assert.Equal(Purge + 7 + 0x1000, Find("tcp_hashinfo", code, a => a >= 0xca000000, word: 8));
    }

    [Fact]
    public void Nl_table_comes_from_netlink_has_listeners()
    {
        // netlink_has_listeners' shape: movzx edx, word [eax + 0x1b8] (sk_protocol); shl edx, 7; add edx, [&nl_table]; ret
        byte[] code = [0x0f, 0xb7, 0x90, 0xb8, 0x01, 0x00, 0x00, 0xc1, 0xe2, 0x07, 0x03, 0x15, 0xe0, 0x3a, 0xf2, 0xca, 0xc3];
        Assert.Equal(0xcaf23ae0UL, Find("nl_table", new Dictionary<ulong, byte[]> { [HasListeners] = code }));
        Assert.Null(Find("nl_table", new Dictionary<ulong, byte[]> { [HasListeners] = code }, accept: a => a != 0xcaf23ae0));
    }
}
