using System.Buffers.Binary;
using Periscope.Cli;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Targets;

namespace Periscope.GuestTests;

/// <summary>
/// Baseline on the real guest's dump, then verification against copies of it with the attacks applied byte for
/// byte (the in-guest tamper module does the same from inside). Each finding is asserted with its exact address and
/// classification; the clean copy gives no finding at all.
/// </summary>
[Collection("5-level guest")]
public sealed class IntegrityTests : IDisposable
{
    private readonly FiveLevelGuest _guest;
    private readonly string _db;
    private readonly BaselineStore _store;
    private readonly StoredBaseline _baseline;

    public IntegrityTests(FiveLevelGuest guest)
    {
        _guest = guest;
        _db = Path.Combine(guest.Guest.WorkDirectory, $"baseline-{Guid.NewGuid():n}.db");
        _store = BaselineStore.Open(_db);
        var summary = BaselineRecorder.Record(Kernel, _store, "test");
        _baseline = _store.Latest(summary.BuildId, Kernel.Layout.TextVa)!;
    }

    private LinuxKernel Kernel => _guest.Dump.Kernel;
    private ulong Sym(string name) => Kernel.Symbols.GetAddress(name);

    private VerificationResult VerifyPatched(Action<PatchedDump> attack)
    {
        using var d = new PatchedDump(_guest.DumpPath, _guest.Dump.Image, Kernel);
        attack(d);
        using var t = d.Open();
        return Verifier.Verify(t.Kernel, _baseline);
    }

    [Fact]
    public void Baseline_covers_the_kernel_dispatcher_idt_and_modules()
    {
        var names = _baseline.Regions.Select(r => r.Region.Name).ToList();
        Assert.Contains("kernel text", names);
        Assert.Contains("kernel rodata", names);
        Assert.Contains("sys_call_table", names);
        Assert.Contains("x64_sys_call", names);
        Assert.Contains("idt_table", names);
        foreach (var m in _guest.Truth.Modules) Assert.Contains($"module {m.Name} text", names);
        Assert.All(_baseline.Regions.SelectMany(r => r.Pages).Where(p => p.Present), p => Assert.Equal(32, p.Sha256!.Length));
    }

    [Fact]
    public void Unchanged_guest_verifies_clean()
    {
        var result = Verifier.Verify(Kernel, _baseline);
        Assert.Empty(result.Findings);
        Assert.True(result.BytesChecked > 10 << 20);
    }

    [Fact]
    public void Patched_kernel_function_is_code_modified_at_the_exact_address()
    {
        ulong at = Sym("__x64_sys_sysfs") + 0x10;
        var result = VerifyPatched(d => d.Write(at, [0xcc, 0xcc, 0xcc]));
        var f = Assert.Single(result.Findings);
        Assert.Equal(at, f.VirtualAddress);
        Assert.Equal("__x64_sys_sysfs+0x10", f.Location);
        Assert.Equal(Classifications.CodeModified, f.Classification);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Equal([0xcc, 0xcc, 0xcc], f.Found);
        Assert.NotEqual(f.Expected, f.Found);
        Assert.Contains("int3", f.FoundDisassembly);
        Assert.False(string.IsNullOrEmpty(f.ExpectedDisassembly));
        Assert.NotNull(f.PhysicalAddress);
    }

    [Fact]
    public void Patched_syscall_dispatcher_is_reported_under_x64_sys_call()
    {
        ulong at = Sym("x64_sys_call") + 0x40;
        var result = VerifyPatched(d => d.Write(at, [0x90, 0x90, 0x90, 0x90, 0x90]));
        var f = Assert.Single(result.Findings);
        Assert.Equal("x64_sys_call", f.Region);
        Assert.Equal(RegionKind.SyscallDispatcher, f.Kind);
        Assert.Equal(Classifications.CodeModified, f.Classification);
        Assert.True(f.VirtualAddress >= at && f.VirtualAddress < at + 5);
    }

    [Fact]
    public void Hooked_syscall_entry_names_old_and_new_targets()
    {
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        ulong slot = Sym("sys_call_table") + 139 * 8;
        var result = VerifyPatched(d => d.WriteU64(slot, dummy.Base + 0x10));
        var f = Assert.Single(result.Findings);
        Assert.Equal(slot, f.VirtualAddress);
        Assert.Equal("sys_call_table[139]", f.Location);
        Assert.Equal(Classifications.SyscallHooked, f.Classification);
        Assert.Equal(Severity.Critical, f.Severity);
        Assert.Contains("__x64_sys_sysfs", f.Detail);
        Assert.Contains("dummy+0x10", f.Detail);
        Assert.Equal(dummy.Base + 0x10, BinaryPrimitives.ReadUInt64LittleEndian(f.Found));
    }

    [Fact]
    public void Changed_interrupt_gate_names_the_handlers()
    {
        ulong gate = Sym("idt_table") + 0x80 * 16;
        var dummy = Kernel.Modules.Single(m => m.Name == "dummy");
        ulong handler = dummy.Base + 0x20;
        var result = VerifyPatched(d =>
        {
            Assert.True(Kernel.Reader.TryU64(gate, out ulong low));
            var g = new byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(g, low);
            BinaryPrimitives.WriteUInt16LittleEndian(g, (ushort)handler);
            BinaryPrimitives.WriteUInt16LittleEndian(g.AsSpan(6), (ushort)(handler >> 16));
            BinaryPrimitives.WriteUInt32LittleEndian(g.AsSpan(8), (uint)(handler >> 32));
            d.Write(gate, g);
        });
        var f = Assert.Single(result.Findings);
        Assert.Equal(gate, f.VirtualAddress);
        Assert.Equal(Classifications.InterruptGateChanged, f.Classification);
        Assert.Contains("asm_int80_emulation", f.Detail);
        Assert.Contains("dummy+0x20", f.Detail);
    }

    [Fact]
    public void Static_key_flip_to_its_recorded_target_is_info_not_tamper()
    {
        var context = new CodeContext(Kernel);
        var nop = new byte[5];
        var (site, target) = context.JumpSites.First(kv =>
            kv.Key > Sym("_stext") && kv.Key < Sym("_etext") && Kernel.KernelSpace.Read(kv.Key, nop) == 5 && CodeContext.IsNop(nop)
            && (long)(kv.Value - (kv.Key + 5)) is > int.MinValue and < int.MaxValue);
        var jmp = new byte[5];
        jmp[0] = 0xe9;
        BinaryPrimitives.WriteInt32LittleEndian(jmp.AsSpan(1), (int)(long)(target - (site + 5)));
        var result = VerifyPatched(d => d.Write(site, jmp));
        var f = Assert.Single(result.Findings);
        Assert.Equal(Classifications.StaticKeyFlipped, f.Classification);
        Assert.Equal(Severity.Info, f.Severity);
        Assert.True(result.Clean);
    }

    [Fact]
    public void Ftrace_call_to_kernel_trampoline_is_traced_but_call_to_nowhere_is_a_hidden_hook()
    {
        ulong fn = Sym("__x64_sys_sysfs");
        var head = new byte[9];
        Kernel.KernelSpace.Read(fn, head);
        ulong site = head.AsSpan(0, 4).SequenceEqual((byte[])[0xf3, 0x0f, 0x1e, 0xfa]) ? fn + 4 : fn; // after ENDBR64 on IBT kernels
        byte[] Call(ulong to)
        {
            var c = new byte[5];
            c[0] = 0xe8;
            BinaryPrimitives.WriteInt32LittleEndian(c.AsSpan(1), (int)(long)(to - (site + 5)));
            return c;
        }
        var traced = VerifyPatched(d => d.Write(site, Call(Sym("ftrace_regs_caller"))));
        var f = Assert.Single(traced.Findings);
        Assert.Equal(Classifications.FunctionTraced, f.Classification);
        Assert.Equal(Severity.Info, f.Severity);
        Assert.Contains("ftrace_regs_caller", f.Detail);

        // A call into the module area that no listed module owns: the signature of a hidden module's hook.
        ulong nowhere = Kernel.Modules.Max(m => m.Base + m.Size) + 0x100000;
        var hooked = VerifyPatched(d => d.Write(site, Call(nowhere)));
        var h = Assert.Single(hooked.Findings);
        Assert.Equal(Classifications.FunctionHooked, h.Classification);
        Assert.Equal(Severity.Critical, h.Severity);
    }

    [Fact]
    public void Patched_module_code_names_the_module()
    {
        var module = Kernel.Modules.Single(m => m.Name == "crc7");
        ulong at = module.Base + 0x20;
        var result = VerifyPatched(d => d.Write(at, [0xc3]));
        var f = Assert.Single(result.Findings);
        Assert.Equal("module crc7 text", f.Region);
        Assert.Equal("crc7+0x20", f.Location);
        Assert.Equal(at, f.VirtualAddress);
    }

    [Fact]
    public void Cli_baseline_and_verify_exit_codes()
    {
        string db = Path.Combine(_guest.Guest.WorkDirectory, $"cli-{Guid.NewGuid():n}.db");
        var output = new StringWriter();
        Assert.Equal(0, CliApp.Run(["baseline", "create", "--db", db, "--dump", _guest.DumpPath], output, output));
        // The unchanged guest verifies clean: the workload's anonymous RWX page was recorded in the baseline (issue 7).
        var clean = new StringWriter();
        Assert.Equal(0, CliApp.Run(["verify", "--db", db, "--dump", _guest.DumpPath], clean, clean));
        Assert.Contains("no differences", clean.ToString());
        using var d = new PatchedDump(_guest.DumpPath, _guest.Dump.Image, Kernel);
        d.Write(Sym("__x64_sys_sysfs") + 0x10, [0xcc]);
        d.CloseWriter();
        var report = new StringWriter();
        Assert.Equal(1, CliApp.Run(["verify", "--db", db, "--dump", d.Path], report, report));
        Assert.Contains("[CRITICAL] code modified: __x64_sys_sysfs+0x10", report.ToString());
        Assert.Equal(2, CliApp.Run(["verify", "--db", db + ".missing", "--dump", "/nonexistent"], report, report));
    }

    public void Dispose()
    {
        _store.Dispose();
        try { File.Delete(_db); } catch (IOException) { }
    }
}
