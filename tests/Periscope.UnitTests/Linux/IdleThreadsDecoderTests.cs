using Periscope.Linux.Model;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// __per_cpu_offset and idle_threads read from idle_thread_get's code (kernels without data symbols), from text vectors:
/// the function as Debian's 6.1.0-50-686-pae links it, and the forms the compiler may choose instead.
/// </summary>
public sealed class IdleThreadsDecoderTests
{
    /// <summary>Debian 6.1.0-50-686-pae (vmlinux at its link address): call __fentry__; mov edx,eax; push ebp;
    /// mov eax,$idle_threads; mov edx,[edx*4+__per_cpu_offset]; mov eax,[edx+eax]; ... (RELOC_HIDE builds the address
    /// in a register).</summary>
    [Fact]
    public void Debian_686_pae_idle_thread_get_gives_both_addresses()
    {
        byte[] code = Convert.FromHexString("e8fb99fbff89c255b8e00ce8c18b1495a076bdc18b0402baf4ffffff89e55d85");
        var r = IdleThreadsDecoder.Decode(code, 0xc10a5d40, 4, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Equal(0xc1bd76a0UL, r.PerCpuOffsetArray);
        Assert.Equal(0xc1e80ce0UL, r.IdleThreads);
    }

    [Theory]
    // mov eax,[eax*4+0xc1bd76a0]; mov eax,[eax+0xc1e80ce0]; ret
    [InlineData("8b0485a076bdc18b80e00ce8c1c3", 0xc1bd76a0UL, 0xc1e80ce0UL)]
    // mov edx,0xc1e80ce0; add edx,[eax*4+0xc1bd76a0]; mov eax,[edx]; ret
    [InlineData("bae00ce8c1031485a076bdc18b02c3", 0xc1bd76a0UL, 0xc1e80ce0UL)]
    public void Other_i386_forms_give_both_addresses(string hex, ulong array, ulong idle)
    {
        var r = IdleThreadsDecoder.Decode(Convert.FromHexString(hex), 0xc1000000, 4, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Equal((array, idle), (r.PerCpuOffsetArray, r.IdleThreads));
    }

    /// <summary>x86-64: mov rax,[rdi*8+__per_cpu_offset]; mov rax,[rax+idle_threads] with idle_threads a zero-based
    /// per-CPU offset and the array's address sign-extended.</summary>
    [Fact]
    public void X86_64_form_gives_the_zero_based_per_cpu_symbol()
    {
        var r = IdleThreadsDecoder.Decode(Convert.FromHexString("488b04fd00a0a0828b8000c8010000c3"), 0xffffffff81000000, 8, out string? reason);
        Assert.True(r is not null, reason);
        Assert.Equal(0xffffffff82a0a000UL, r.PerCpuOffsetArray);
        Assert.Equal(0x1c800UL, r.IdleThreads);
    }

    /// <summary>Code that never loads from an offset register (or loads the offset twice) is no answer, not a guess.</summary>
    [Theory]
    [InlineData("5589e58b45085dc3")]                       // push ebp; mov ebp,esp; mov eax,[ebp+8]; pop ebp; ret
    [InlineData("8b0485a076bdc1c3")]                       // the array load, then ret
    [InlineData("8b0485a076bdc18b1485a076bdc18b0402c3")]   // two offsets added together
    [InlineData("")]
    public void Code_without_the_two_loads_is_no_answer(string hex)
    {
        Assert.Null(IdleThreadsDecoder.Decode(Convert.FromHexString(hex), 0xc1000000, 4, out string? reason));
        Assert.NotNull(reason);
    }
}
