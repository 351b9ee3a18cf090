using System.Buffers.Binary;
using Periscope.Events.Syscalls;

namespace Periscope.UnitTests.Events;

/// <summary>Syscall handlers found by following x64_sys_call's compare tree, on real 6.12 bytes and on small trees.</summary>
public sealed class SyscallDispatchDecoderTests
{
    private static ulong[] Table()
    {
        var t = new ulong[Linux612Dispatch.SysCallTable.Length / 8];
        for (int i = 0; i < t.Length; i++) t[i] = BinaryPrimitives.ReadUInt64LittleEndian(Linux612Dispatch.SysCallTable.AsSpan(i * 8));
        return t;
    }

    [Fact]
    public void Linux_6_12_dispatch_reaches_for_every_number_the_handler_its_sys_call_table_names()
    {
        var table = Table();
        var handlers = table.ToHashSet();
        Assert.Equal(463, table.Length);
        for (uint nr = 0; nr < table.Length; nr++)
        {
            ulong? target = SyscallDispatchDecoder.Target(Linux612Dispatch.X64SysCallCode, Linux612Dispatch.X64SysCall, nr, handlers.Contains, 512, out var stop);
            Assert.True(target == table[nr], $"nr {nr}: dispatch reaches 0x{target:x} ({stop}), sys_call_table says 0x{table[nr]:x}");
        }
    }

    [Fact]
    public void A_re_routed_case_shows_what_the_dispatch_really_runs()
    {
        var table = Table();
        var code = (byte[])Linux612Dispatch.X64SysCallCode.Clone();
        // Number 0 (read) ends in "jmp __x64_sys_read" inside the function: point it at write's handler instead.
        int leaf = FindJumpTo(code, table[0]);
        BinaryPrimitives.WriteInt32LittleEndian(code.AsSpan(leaf + 1), (int)(long)(table[1] - (Linux612Dispatch.X64SysCall + (ulong)leaf + 5)));
        Assert.Equal(table[1], SyscallDispatchDecoder.Target(code, Linux612Dispatch.X64SysCall, 0, table.ToHashSet().Contains, 512, out _));
        Assert.Equal(table[1], SyscallDispatchDecoder.Target(code, Linux612Dispatch.X64SysCall, 1, table.ToHashSet().Contains, 512, out _));
    }

    private static int FindJumpTo(byte[] code, ulong target)
    {
        for (int i = 0; i + 5 <= code.Length; i++)
            if (code[i] == 0xe9 && Linux612Dispatch.X64SysCall + (ulong)i + 5 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(code.AsSpan(i + 1)) == target) return i;
        throw new InvalidOperationException("no jmp to the handler");
    }

    // A tree over nr in %esi:  cmp $5,%esi; je A; ja B; test %esi,%esi; je H0; jmp DEFAULT;
    //                        A: jmp H5;  B: cmp $-1,%esi; jl D (signed); jmp H6;  D: ud2
    private const ulong Start = 0xffffffff81000000, H0 = 0xffffffff82000000, H5 = 0xffffffff82000100, H6 = 0xffffffff82000200, Default = 0xffffffff82000300;

    private static byte[] SmallTree()
    {
        var b = new List<byte>();
        void Jmp(ulong target) { b.Add(0xe9); long rel = (long)(target - (Start + (ulong)b.Count + 4)); b.AddRange(BitConverter.GetBytes((int)rel)); }
        b.AddRange([0xf3, 0x0f, 0x1e, 0xfa]);             // 0: endbr64
        b.AddRange([0x0f, 0x1f, 0x44, 0x00, 0x00]);       // 4: nop (a patched __fentry__ call)
        b.AddRange([0x83, 0xfe, 0x05]);                   // 9: cmp $5,%esi
        b.AddRange([0x74, 0x0f]);                         // 12: je 29 (A)
        b.AddRange([0x77, 0x12]);                         // 14: ja 34 (B)
        b.AddRange([0x85, 0xf6]);                         // 16: test %esi,%esi
        b.AddRange([0x0f, 0x84, 0x00, 0x00, 0x00, 0x00]); // 18: je H0 (filled below)
        int je0 = b.Count - 4;
        Jmp(Default);                                     // 24
        Jmp(H5);                                          // 29: A
        b.AddRange([0x83, 0xfe, 0xff]);                   // 34: B: cmp $-1,%esi
        b.AddRange([0x7c, 0x05]);                         // 37: jl 44 (D)
        Jmp(H6);                                          // 39
        b.AddRange([0x0f, 0x0b]);                         // 44: D: ud2
        var code = b.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(code.AsSpan(je0), (int)(long)(H0 - (Start + (ulong)je0 + 4)));
        return code;
    }

    [Theory]
    [InlineData(0u, H0)]
    [InlineData(5u, H5)]
    [InlineData(6u, H6)]
    [InlineData(3u, Default)]
    public void Small_tree_branches_are_evaluated_as_the_cpu_would(uint nr, ulong expected)
    {
        var handlers = new HashSet<ulong> { H0, H5, H6, Default };
        Assert.Equal(expected, SyscallDispatchDecoder.Target(SmallTree(), Start, nr, handlers.Contains, 64, out var stop));
        Assert.Equal(DispatchStop.Handler, stop);
    }

    [Fact]
    public void Code_it_does_not_follow_and_jumps_to_non_handlers_name_nothing()
    {
        // 0x80000000 is above 5 (ja), and as a signed number below -1 (jl): ud2, which no switch tree contains.
        Assert.Null(SyscallDispatchDecoder.Target(SmallTree(), Start, 0x8000_0000, new HashSet<ulong> { H0, H5, H6, Default }.Contains, 64, out var stop));
        Assert.Equal(DispatchStop.UnknownInstruction, stop);
        Assert.Null(SyscallDispatchDecoder.Target(SmallTree(), Start, 3, new HashSet<ulong> { H0 }.Contains, 64, out stop));
        Assert.Equal(DispatchStop.NotAHandler, stop);
        Assert.Null(SyscallDispatchDecoder.Target([0xeb, 0xfe], Start, 3, _ => true, 64, out stop));   // jmp . (a loop)
        Assert.Equal(DispatchStop.TooManySteps, stop);
    }
}
