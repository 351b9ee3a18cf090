using System.Buffers.Binary;
using System.Globalization;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// The judge's rules, no QEMU needed: a synthetic kernel (text, a listed module that registered an ftrace_ops, a
/// hidden module that registered one too, unowned trampoline memory) and one text vector per change, Iced-style:
/// where, the baseline bytes, the bytes now, and the expected classification, severity and owner of the destination.
/// The adversarial rows are the downgrades an informed attacker used against the old rules.
/// </summary>
public sealed class JudgeTests
{
    private const ulong Text = 0xffffffff81000000, TextEnd = 0xffffffff82000000;
    private const ulong Good = 0xffffffffc0000000, Evil = 0xffffffffc0200000;
    private const ulong GoodTramp = 0xffffffffc0100000, EvilTramp = 0xffffffffc0300000, Unowned = 0xffffffffc0400000;
    private const ulong GoodOps = Good + 0x2000, EvilOps = Evil + 0x2000;
    /// <summary>bpf trampoline images: JIT memory outside kernel text and every module.</summary>
    private const ulong BpfImages = 0xffffffffc0600000, BpfOps = 0xffff888000100000;

    private static readonly Dictionary<string, ulong> Symbols = new()
    {
        ["func_a"] = Text + 0x1000, ["jump_target"] = Text + 0x1080, ["commit_creds"] = Text + 0x2000,
        ["ftrace_caller"] = Text + 0x3000, ["ftrace_call"] = Text + 0x3020, ["ftrace_caller_end"] = Text + 0x3080,
        ["ftrace_regs_caller"] = Text + 0x3100, ["ftrace_regs_call"] = Text + 0x3140, ["ftrace_graph_call"] = Text + 0x3160,
        ["ftrace_regs_caller_end"] = Text + 0x3200, ["ftrace_stub"] = Text + 0x3300, ["ftrace_ops_list_func"] = Text + 0x3400,
        ["ftrace_graph_caller"] = Text + 0x3500, ["__SCT__foo"] = Text + 0x4000, ["__SCT__bar"] = Text + 0x4008, ["target_fn"] = Text + 0x5000,
        ["__x64_sys_sysfs"] = Text + 0x6000,
        // What a trampoline image may call or jump to (by name), and a retpoline thunk, which it may not.
        ["__bpf_prog_enter_recur"] = Text + 0xa000, ["__bpf_prog_exit_recur"] = Text + 0xa100, ["__bpf_tramp_enter"] = Text + 0xa200,
        ["__bpf_tramp_exit"] = Text + 0xa300, ["__x86_return_thunk"] = Text + 0xa400, ["__x86_indirect_thunk_rax"] = Text + 0xa500,
        // Trampolines on BPF programs: the traced programs' JIT code (jit_c starts with endbr64), an extension program's
        // bpf_func, and the images.
        ["jit_a"] = BpfJit + 0x20000, ["jit_b"] = BpfJit + 0x21000, ["jit_c"] = BpfJit + 0x23000, ["ext_entry"] = BpfJit + 0x22000,
        ["bpf_img_e"] = BpfImages + 0x3000, ["bpf_img_g"] = BpfImages + 0x5000,
        // Functions bpf trampolines trace (traced_b starts with endbr64: its ftrace site is 4 bytes on), and the images.
        ["traced_b"] = Text + 0x7000, ["traced_c"] = Text + 0x8000, ["traced_d"] = Text + 0x9000,
        ["bpf_img_a"] = BpfImages, ["bpf_img_b"] = BpfImages + 0x1000, ["bpf_img_d"] = BpfImages + 0x2000, ["module_img"] = Good + 0x200,
        ["good_fn"] = Good + 0x100, ["evil_hook"] = Evil + 0x40,
        ["good_tramp"] = GoodTramp, ["evil_tramp"] = EvilTramp, ["unowned_tramp"] = Unowned,
        // Sites: a jump label in func_a, an inline static call in func_a, and the ftrace site of __x64_sys_sysfs.
        ["jump"] = Text + 0x1010, ["static"] = Text + 0x1020, ["ftrace"] = Text + 0x6000, ["module_jump"] = Good + 0x110,
    };

    private static ulong S(string name) => Symbols[name];

    private static EvidenceSnapshot Baseline() => new()
    {
        KernelTextStart = Text, KernelTextEnd = TextEnd,
        Modules = [new ModuleEvidence(Good + 0x3000, "good", Good, 0x4000, 0x1000, Hidden: false)],
        Symbols =
        [
            .. new[] { "func_a", "jump_target", "commit_creds", "ftrace_caller", "ftrace_call", "ftrace_caller_end", "ftrace_regs_caller",
                "ftrace_regs_call", "ftrace_graph_call", "ftrace_regs_caller_end", "ftrace_stub", "ftrace_ops_list_func", "ftrace_graph_caller",
                "__SCT__foo", "__SCT__bar", "target_fn", "__x64_sys_sysfs", "traced_b", "traced_c", "traced_d",
                "__bpf_prog_enter_recur", "__bpf_prog_exit_recur", "__bpf_tramp_enter", "__bpf_tramp_exit", "__x86_return_thunk", "__x86_indirect_thunk_rax" }.Select(n => new CodeSymbol(S(n), 0, n, 0)),
            new CodeSymbol(S("good_fn"), 0x80, "good_fn", Good + 0x3000),
        ],
        JumpEntries = [new JumpEntry(S("jump"), S("jump_target")), new JumpEntry(S("module_jump"), S("good_fn") + 0x40)],
        StaticCallSites = [S("static")],
        FtraceSites = [S("ftrace"), S("good_fn"), S("traced_b") + 4, S("traced_c"), S("traced_d")],
        FtraceEntryCode = [new CodeRange("ftrace_caller", S("ftrace_caller"), S("ftrace_caller_end")), new CodeRange("ftrace_regs_caller", S("ftrace_regs_caller"), S("ftrace_regs_caller_end"))],
        FtracePatchSites = [new FtracePatchSite(S("ftrace_call"), "ftrace_call", FtracePatchKind.Call), new FtracePatchSite(S("ftrace_regs_call"), "ftrace_regs_call", FtracePatchKind.Call),
            new FtracePatchSite(S("ftrace_graph_call"), "ftrace_graph_call", FtracePatchKind.GraphJump)],
        FtraceDispatchTargets = [S("ftrace_stub"), S("ftrace_ops_list_func")],
        FtraceGraphTargets = [S("ftrace_graph_caller"), S("ftrace_stub")],
    };

    /// <summary>Now: the listed module and a hidden one each registered an ftrace_ops with a trampoline.</summary>
    private static EvidenceSnapshot Current() => Baseline() with
    {
        Modules = [.. Baseline().Modules, new ModuleEvidence(Evil + 0x3000, "evil", Evil, 0x4000, 0x1000, Hidden: true)],
        Symbols = [.. Baseline().Symbols, new CodeSymbol(S("evil_hook"), 0x40, "evil_hook", Evil + 0x3000)],
        FtraceOps = [new FtraceOpsEvidence(GoodOps, S("good_fn"), GoodTramp, 0x100), new FtraceOpsEvidence(EvilOps, S("evil_hook"), EvilTramp, 0x100)],
        BpfTrampolines = BpfTrampolines(),
    };

    /// <summary>trampoline_table now: an fentry program on __x64_sys_sysfs (listed), an fexit program on traced_b that
    /// prog_idr no longer lists, a "trampoline" for traced_c whose image is module text, and one for traced_d whose image
    /// is not the start of its kallsyms entry.</summary>
    private static List<BpfTrampolineEvidence> BpfTrampolines() =>
    [
        Legit(new(0xffff888000200000, S("__x64_sys_sysfs"), "__x64_sys_sysfs", 0, S("bpf_img_a"), S("bpf_img_a"), "bpf_trampoline_6442",
            [Program(41, "pscope_fe", "0123456789abcdef", "fentry", listed: true)])),
        Legit(new(0xffff888000200400, S("traced_b"), "traced_b", 0, S("bpf_img_b"), S("bpf_img_b"), "bpf_trampoline_6443",
            [Program(42, "listed", "1111111111111111", "fentry", listed: true), Program(43, "hidden", "2222222222222222", "fexit", listed: false)])),
        Legit(new(0xffff888000200800, S("traced_c"), "traced_c", 0, S("module_img"), S("module_img"), "bpf_trampoline_6444",
            [Program(44, "c", "3333333333333333", "fentry", listed: true)])),
        Legit(new(0xffff888000200c00, S("traced_d"), "traced_d", BpfOps, S("bpf_img_d"), S("bpf_img_d") - 0x40, "bpf_trampoline_6445",
            [Program(45, "d", "4444444444444444", "fentry", listed: true)])),
        // On BPF programs (no ftrace there: bpf_arch_text_poke writes into the JIT's patch slot): fentry on jit_a; an
        // extension replacing jit_b (no image: the slot jumps to the extension's bpf_func); a hidden fexit on jit_c.
        Legit(new(0xffff888000201000, S("jit_a"), "bpf_prog_a", 0, S("bpf_img_e"), S("bpf_img_e"), "bpf_trampoline_77",
            [Program(46, "on_prog", "5555555555555555", "fentry", listed: true)])),
        new(0xffff888000201400, S("jit_b"), "bpf_prog_b", 0, 0, 0, "",
            [Program(47, "ext", "6666666666666666", "freplace", listed: true) with { Entry = S("ext_entry") }]),
        Legit(new(0xffff888000201800, S("jit_c"), "bpf_prog_c", 0, S("bpf_img_g"), S("bpf_img_g"), "bpf_trampoline_78",
            [Program(48, "hid", "7777777777777777", "fexit", listed: false)])),
    ];

    /// <summary>JIT images of the programs on the trampolines: JIT memory too.</summary>
    private const ulong BpfJit = 0xffffffffc0700000;

    private static BpfTrampolineProgramEvidence Program(uint id, string name, string tag, string kind, bool listed) =>
        new(id, name, tag, "tracing", kind, listed) { Entry = BpfJit + id * 0x1000UL };

    /// <summary>The trampoline with the image the kernel would have built for its programs (fentry shape).</summary>
    private static BpfTrampolineEvidence Legit(BpfTrampolineEvidence t) => WithImage(t, Shape(t));

    private static TrampolineImages.Shape Shape(BpfTrampolineEvidence t) =>
        new(S("__bpf_prog_enter_recur"), S("__bpf_prog_exit_recur"), [.. t.Programs.Select(p => p.Entry)]);

    private static BpfTrampolineEvidence WithImage(BpfTrampolineEvidence t, TrampolineImages.Shape shape)
    {
        var code = TrampolineImages.Build(t.Image, shape);
        return t with { ImageCode = code, ImageSize = (ulong)code.Length };
    }

    // where | baseline bytes | bytes now | classification | severity | owner of the destination (- = none)
    private const string Vectors = """
        jump                     nop5                  jmp:jump_target            StaticKeyFlipped         Info      KernelText
        jump                     jmp:jump_target       nop5                       StaticKeyFlipped         Info      -
        jump                     nop5                  jmp:commit_creds           JumpLabelRetargeted      Critical  KernelText
        jump                     nop5                  call:jump_target           JumpLabelRetargeted      Critical  KernelText
        jump                     nop5                  jmp:evil_hook              JumpLabelRetargeted      Critical  HiddenModule
        jump                     nop5                  hex:cccccccccc             JumpLabelRetargeted      Critical  -
        module_jump              nop5                  jmp:good_fn+0x40           StaticKeyFlipped         Info      ListedModule
        static                   call:target_fn        call:commit_creds          StaticCallUpdated        Info      KernelText
        static                   call:target_fn        call:good_fn               StaticCallUpdated        Info      ListedModule
        static                   call:target_fn        nop5                       StaticCallUpdated        Info      -
        static                   call:target_fn        hex:2e2e2e31c0             StaticCallUpdated        Info      -
        static                   call:target_fn        call:target_fn+0x10        StaticCallHijacked       Critical  KernelText
        static                   call:target_fn        call:good_fn+0x8           StaticCallHijacked       Critical  ListedModule
        static                   call:target_fn        call:evil_hook             StaticCallHijacked       Critical  HiddenModule
        static                   call:target_fn        call:unowned_tramp         StaticCallHijacked       Critical  Unowned
        __SCT__foo               jmp:target_fn         jmp:commit_creds           StaticCallUpdated        Info      KernelText
        __SCT__foo               jmp:target_fn         jmp:target_fn+0x3          StaticCallHijacked       Critical  KernelText
        __SCT__foo               jmp:target_fn         jmp:evil_hook              StaticCallHijacked       Critical  HiddenModule
        ftrace                   nop5                  call:ftrace_caller         FunctionTraced           Info      KernelText
        ftrace                   nop5                  call:ftrace_regs_caller    FunctionTraced           Info      KernelText
        ftrace                   call:ftrace_caller    nop5                       FunctionTraced           Info      -
        ftrace                   nop5                  call:good_tramp            FunctionTraced           Info      Unowned
        ftrace                   nop5                  call:commit_creds          FunctionHooked           Critical  KernelText
        ftrace                   nop5                  call:evil_tramp            FunctionHooked           Critical  HiddenModule
        ftrace                   nop5                  call:unowned_tramp         FunctionHooked           Critical  Unowned
        ftrace                   nop5                  call:good_tramp+0x10       FunctionHooked           Critical  Unowned
        ftrace                   nop5                  call:good_fn               FunctionHooked           Critical  ListedModule
        ftrace                   nop5                  jmp:ftrace_caller          FunctionHooked           Critical  KernelText
        ftrace                   nop5                  hex:9090909090             CodeModified             Critical  -
        good_fn                  nop5                  call:ftrace_caller         FunctionTraced           Info      KernelText
        ftrace                   nop5                  call:bpf_img_a             BpfTrampolineAttached    Warning   Unowned
        ftrace                   call:ftrace_caller    call:bpf_img_a             BpfTrampolineAttached    Warning   Unowned
        traced_b+0x4             nop5                  call:bpf_img_b             HiddenBpfProgramAttached Critical  Unowned
        ftrace                   nop5                  jmp:bpf_img_a              FunctionHooked           Critical  Unowned
        ftrace                   nop5                  call:bpf_img_a+0x10        FunctionHooked           Critical  Unowned
        ftrace                   nop5                  call:bpf_img_b             FunctionHooked           Critical  Unowned
        traced_c                 nop5                  call:module_img            FunctionHooked           Critical  ListedModule
        traced_d                 nop5                  call:bpf_img_d             FunctionHooked           Critical  Unowned
        func_a+0x30              hex:4889e54883        call:bpf_img_a             CodeModified             Critical  Unowned
        ftrace_call              call:ftrace_stub      call:ftrace_ops_list_func  FtraceDispatcherUpdated  Info      KernelText
        ftrace_regs_call         call:ftrace_stub      call:good_fn               FtraceDispatcherUpdated  Info      ListedModule
        ftrace_regs_call         call:ftrace_stub      call:commit_creds          FtraceEntryPatched       Critical  KernelText
        ftrace_regs_call         call:ftrace_stub      call:evil_hook             FtraceEntryPatched       Critical  HiddenModule
        ftrace_graph_call        jmp:ftrace_stub       jmp:ftrace_graph_caller    FtraceDispatcherUpdated  Info      KernelText
        ftrace_graph_call        jmp:ftrace_stub       jmp:commit_creds           FtraceEntryPatched       Critical  KernelText
        ftrace_regs_caller+0x10  hex:4889e54883ec10aa  hex:cccccccccccccccc       FtraceEntryPatched       Critical  -
        ftrace_caller+0x4        hex:4889e5            call:evil_hook             FtraceEntryPatched       Critical  HiddenModule
        func_a+0x30              hex:4889e5            hex:cccccc                 CodeModified             Critical  -
        func_a+0x30              hex:4889e54883        call:evil_hook             CodeModified             Critical  HiddenModule
        __x64_sys_sysfs+0x40     hex:4889e54883        jmp:unowned_tramp          CodeModified             Critical  Unowned
        jit_a                    nop5                  call:bpf_img_e             BpfTrampolineAttached    Warning   Unowned
        jit_a                    nop5                  call:commit_creds          FunctionHooked           Critical  KernelText
        jit_a                    nop5                  call:bpf_img_a             FunctionHooked           Critical  Unowned
        jit_a                    nop5                  jmp:bpf_img_e              FunctionHooked           Critical  Unowned
        jit_a                    nop5                  hex:9090909090             CodeModified             Critical  -
        jit_a                    hex:4889e54883        call:bpf_img_e             CodeModified             Critical  Unowned
        jit_a+0x10               hex:4889e54883        call:bpf_img_e             CodeModified             Critical  Unowned
        jit_b                    nop5                  jmp:ext_entry              BpfTrampolineAttached    Warning   Unowned
        jit_b                    nop5                  jmp:ext_entry+0x10         FunctionHooked           Critical  Unowned
        jit_b                    nop5                  call:ext_entry             FunctionHooked           Critical  Unowned
        jit_c                    nop5                  call:bpf_img_g             HiddenBpfProgramAttached Critical  Unowned
        """;

    public static TheoryData<int, string> Rows()
    {
        var data = new TheoryData<int, string>();
        var lines = Vectors.Split('\n');
        for (int i = 0; i < lines.Length; i++)
            if (lines[i].Trim() is { Length: > 0 } line) data.Add(i + 1, line);
        return data;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Change_is_judged_by_the_recorded_evidence(int line, string vector)
    {
        var f = vector.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(f.Length == 6, $"line {line}: six columns expected");
        ulong site = Address(f[0]);
        var window = Window(site, Bytes(f[1], site), Bytes(f[2], site));
        var verdict = Judge.Code(new EvidenceIndex(Baseline()), new EvidenceIndex(Current()), window);
        Assert.True(Enum.Parse<Classification>(f[3]) == verdict.Classification, $"line {line}: {vector}\n  got {verdict.Classification} {verdict.Severity}: {verdict.Detail}");
        Assert.True(Enum.Parse<Severity>(f[4]) == verdict.Severity, $"line {line}: {vector}\n  got {verdict.Severity}: {verdict.Detail}");
        if (f[5] == "-") Assert.True(verdict.Destination is null || verdict.Classification is Classification.StaticKeyFlipped, $"line {line}: destination {verdict.Destination}");
        else
        {
            Assert.True(verdict.Destination is not null, $"line {line}: no destination: {verdict.Detail}");
            Assert.True(Enum.Parse<CodeOwnerKind>(f[5]) == verdict.Destination!.Owner, $"line {line}: destination {verdict.Destination.Owner} {verdict.Destination}");
        }
        Assert.False(string.IsNullOrEmpty(verdict.Detail), $"line {line}: no detail");
    }

    /// <summary>The kernel repoints neighbouring static-call trampolines at once (enabling sched_wakeup changes
    /// __SCT__tp_func_sched_wakeup and its neighbours): one diff run, judged site by site.</summary>
    [Fact]
    public void A_run_spanning_neighbouring_trampolines_is_judged_site_by_site()
    {
        ulong foo = S("__SCT__foo"), bar = S("__SCT__bar");
        byte[] Pair(string a, string b)
        {
            var bytes = new byte[16];
            Bytes(a, foo).CopyTo(bytes, 0);
            new byte[] { 0x0f, 0xb9, 0xcc }.CopyTo(bytes, 5);   // ud1 %esp, %ecx: the trampoline's signature
            Bytes(b, bar).CopyTo(bytes, 8);
            new byte[] { 0x0f, 0xb9, 0xcc }.CopyTo(bytes, 13);
            return bytes;
        }
        var b = new EvidenceIndex(Baseline());
        var c = new EvidenceIndex(Current());
        var both = Judge.Code(b, c, Window(foo, Pair("jmp:target_fn", "jmp:target_fn"), Pair("jmp:commit_creds", "jmp:func_a")));
        Assert.Equal((Classification.StaticCallUpdated, Severity.Info), (both.Classification, both.Severity));
        Assert.Contains("__SCT__bar", both.Detail);
        var second = Judge.Code(b, c, Window(foo, Pair("jmp:target_fn", "jmp:target_fn"), Pair("jmp:commit_creds", "jmp:func_a+0x1")));
        Assert.Equal((Classification.StaticCallHijacked, Severity.Critical), (second.Classification, second.Severity));
        Assert.Contains("__SCT__bar", second.Detail);
        // Bytes between the two trampolines are no site's: changing them is critical even if both sites are fine.
        var between = Pair("jmp:commit_creds", "jmp:func_a");
        between[6] = 0x90;
        var off = Judge.Code(b, c, Window(foo, Pair("jmp:target_fn", "jmp:target_fn"), between));
        Assert.Equal((Classification.CodeModified, Severity.Critical), (off.Classification, off.Severity));
    }

    [Fact]
    public void A_hook_into_a_hidden_module_names_the_module_and_its_own_symbol()
    {
        var v = Judge.Code(new EvidenceIndex(Baseline()), new EvidenceIndex(Current()), Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:evil_hook+0x4", S("ftrace"))));
        Assert.Equal(Classification.FunctionHooked, v.Classification);
        Assert.Equal("evil_hook+0x4 in HIDDEN module evil (struct module at 0xffffffffc0203000)", v.Destination!.Description);
        Assert.Contains("evil_hook+0x4", v.Detail);
        var unowned = Judge.Code(new EvidenceIndex(Baseline()), new EvidenceIndex(Current()), Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:unowned_tramp", S("ftrace"))));
        Assert.Contains("unowned executable memory at 0xffffffffc0400000", unowned.Detail);
    }

    [Fact]
    public void A_bpf_trampoline_call_names_the_trampoline_its_programs_and_the_function()
    {
        var b = new EvidenceIndex(Baseline());
        var c = new EvidenceIndex(Current());
        var v = Judge.Code(b, c, Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:bpf_img_a", S("ftrace"))));
        Assert.Equal((Classification.BpfTrampolineAttached, Severity.Warning), (v.Classification, v.Severity));
        Assert.Equal("__x64_sys_sysfs now calls bpf trampoline 0xffff888000200000 (for __x64_sys_sysfs, image 0xffffffffc0600000 bpf_trampoline_6442) "
                     + "for fentry program 41 (pscope_fe, tracing, tag 0123456789abcdef); attached since the baseline", v.Detail);
        Assert.Equal("bpf_trampoline_6442 at 0xffffffffc0600000 (bpf trampoline image)", v.Destination!.Description);
        var hidden = Judge.Code(b, c, Window(S("traced_b") + 4, Bytes("nop5", S("traced_b") + 4), Bytes("call:bpf_img_b", S("traced_b") + 4)));
        Assert.Contains("fexit program 43 (hidden, tracing, tag 2222222222222222) NOT in prog_idr", hidden.Detail);
        Assert.Contains("1 of them hidden from prog_idr", hidden.Detail);
        // Without the trampoline in the table (a kernel without one, or an attacker's image), the same call is a hook.
        var none = Judge.Code(b, new EvidenceIndex(Current() with { BpfTrampolines = [] }), Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:bpf_img_a", S("ftrace"))));
        Assert.Equal((Classification.FunctionHooked, Severity.Critical), (none.Classification, none.Severity));
        // A trampoline the table holds twice for one image is no trampoline the kernel built.
        var twice = Judge.Code(b, new EvidenceIndex(Current() with { BpfTrampolines = [.. BpfTrampolines(), BpfTrampolines()[0] with { Address = 1 }] }),
            Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:bpf_img_a", S("ftrace"))));
        Assert.Equal((Classification.FunctionHooked, Severity.Critical), (twice.Classification, twice.Severity));
        // A trampoline with no program on it vouches for nothing.
        var empty = Judge.Code(b, new EvidenceIndex(Current() with { BpfTrampolines = [BpfTrampolines()[0] with { Programs = [] }] }),
            Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:bpf_img_a", S("ftrace"))));
        Assert.Equal((Classification.FunctionHooked, Severity.Critical), (empty.Classification, empty.Severity));
    }

    /// <summary>A listed program on the trampoline earns nothing when the image itself is not trampoline code: the call
    /// at the site and the image (through every trampoline's check in the allow-list pass) are both critical, naming the
    /// offending instruction's offset and where it goes.</summary>
    [Fact]
    public void A_trampoline_image_that_calls_elsewhere_is_critical_even_with_its_program_listed()
    {
        var legit = BpfTrampolines();
        // One call of the image (the exit helper's) now goes to commit_creds.
        var forged = WithImage(legit[0], Shape(legit[0]) with { Exit = S("commit_creds") });
        var current = Current() with { BpfTrampolines = [forged, .. legit.Skip(1)] };
        var b = new EvidenceIndex(Baseline());
        var c = new EvidenceIndex(current);
        var v = Judge.Code(b, c, Window(S("ftrace"), Bytes("nop5", S("ftrace")), Bytes("call:bpf_img_a", S("ftrace"))));
        Assert.Equal((Classification.BpfTrampolineForged, Severity.Critical), (v.Classification, v.Severity));
        ulong callAt = OffsetOfCall(forged.ImageCode, forged.Image, S("commit_creds"));
        Assert.Contains($"the image is not trampoline code: +0x{callAt:x} call ", v.Detail);
        Assert.Contains("-> commit_creds: a call to neither a program on this trampoline", v.Detail);
        Assert.Equal((CodeOwnerKind.KernelText, S("commit_creds")), (v.Destination!.Owner, v.Destination.Address));
        // The same image found by the pass over every trampoline, whether or not a changed site leads to it.
        var f = Assert.Single(Judge.AllowListChanges(b, c), f => f.Classification == Classification.BpfTrampolineForged);
        Assert.Equal((Severity.Critical, S("bpf_img_a"), "bpf trampoline __x64_sys_sysfs"), (f.Severity, f.VirtualAddress, f.Location));
        Assert.Contains($"+0x{callAt:x} call ", f.Detail);
        // With the legit images, the pass finds nothing.
        Assert.DoesNotContain(Judge.AllowListChanges(b, new EvidenceIndex(Current())), x => x.Classification == Classification.BpfTrampolineForged);
    }

    /// <summary>With IBT the JIT starts with endbr64 and its patch slot follows: a call there is judged as the kernel's,
    /// the same call over the endbr64 (or the endbr64 changed) is not.</summary>
    [Fact]
    public void A_trampoline_on_a_bpf_program_with_endbr64_is_accepted_only_in_the_slot_past_it()
    {
        ulong jit = S("jit_a");
        byte[] endbr = [0xf3, 0x0f, 0x1e, 0xfa];
        byte[] baseline = [.. endbr, .. Bytes("nop5", jit + 4)];
        var b = new EvidenceIndex(Baseline());
        var c = new EvidenceIndex(Current());
        var slot = Judge.Code(b, c, Window(jit, baseline, [.. endbr, .. Bytes("call:bpf_img_e", jit + 4)]));
        Assert.Equal((Classification.BpfTrampolineAttached, Severity.Warning), (slot.Classification, slot.Severity));
        Assert.Contains("bpf program bpf_prog_a (JIT code at 0x", slot.Detail);
        Assert.Contains("fentry program 46 (on_prog, tracing, tag 5555555555555555)", slot.Detail);
        var over = Judge.Code(b, c, Window(jit, baseline, [.. Bytes("call:bpf_img_e", jit), 0x0f, 0x1f, 0x44, 0x00]));
        Assert.Equal((Classification.CodeModified, Severity.Critical), (over.Classification, over.Severity));
    }

    /// <summary>The pass over every image knows where a trampoline on a BPF program calls the program back: past the JIT's
    /// patch slot, which follows an endbr64 with IBT (no ftrace site says so); anywhere else in the program is forged.</summary>
    [Fact]
    public void The_image_pass_accepts_the_original_call_of_a_trampoline_on_a_bpf_program_past_its_slot()
    {
        var t = BpfTrampolines()[4];
        Assert.Equal(S("jit_a"), t.Function);
        TrampolineImages.Shape CallingOrig(ulong orig) => Shape(t) with { CallOrig = (S("__bpf_tramp_enter"), orig, S("__bpf_tramp_exit")) };
        IEnumerable<Finding> Pass(ulong orig) => Judge.AllowListChanges(new EvidenceIndex(Baseline()), new EvidenceIndex(Current() with { BpfTrampolines = [WithImage(t, CallingOrig(orig))] }))
            .Where(f => f.Classification == Classification.BpfTrampolineForged);
        Assert.Empty(Pass(S("jit_a") + 5));
        Assert.Empty(Pass(S("jit_a") + 9));
        var f = Assert.Single(Pass(S("jit_a") + 7));
        Assert.Equal(S("jit_a") + 7, f.Destination!.Address);
    }

    /// <summary>Offset of the first "call rel32" to <paramref name="target"/> in an image built by <see cref="TrampolineImages"/>.</summary>
    private static ulong OffsetOfCall(byte[] code, ulong image, ulong target)
    {
        for (int i = 0; i + 5 <= code.Length; i++)
            if (code[i] == 0xe8 && image + (ulong)i + 5 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(code.AsSpan(i + 1)) == target) return (ulong)i;
        throw new InvalidOperationException("no such call");
    }

    [Fact]
    public void The_direct_call_ftrace_ops_of_a_bpf_trampoline_is_named()
    {
        var current = Current() with { FtraceOps = [.. Current().FtraceOps, new FtraceOpsEvidence(BpfOps, S("func_a"), 0, 0)] };
        var f = Assert.Single(Judge.AllowListChanges(new EvidenceIndex(Baseline()), new EvidenceIndex(current)), f => f.VirtualAddress == BpfOps);
        Assert.Equal(Severity.Warning, f.Severity);
        Assert.EndsWith("(the direct-call ftrace_ops of bpf trampoline 0xffff888000200c00 for traced_d)", f.Detail, StringComparison.Ordinal);
        // With another ftrace user on the function its site calls ftrace's entry code: a hidden program shows here.
        var hiddenOps = Current() with
        {
            FtraceOps = [.. Current().FtraceOps, new FtraceOpsEvidence(BpfOps, S("func_a"), 0, 0)],
            BpfTrampolines = [.. BpfTrampolines().Take(3), BpfTrampolines()[3] with { Programs = [BpfTrampolines()[1].Programs[1]] }],
        };
        var h = Assert.Single(Judge.AllowListChanges(new EvidenceIndex(Baseline()), new EvidenceIndex(hiddenOps)), f => f.VirtualAddress == BpfOps);
        Assert.Equal(Severity.Critical, h.Severity);
        Assert.Contains("program(s) 43 (hidden) NOT in prog_idr", h.Detail);
    }

    [Fact]
    public void Allow_lists_are_read_from_the_baseline_not_from_the_suspect()
    {
        // The suspect kernel rewrote its own __jump_table entry to point at commit_creds, then jumped there.
        var current = Current() with { JumpEntries = [new JumpEntry(S("jump"), S("commit_creds"))], FtraceSites = [S("ftrace"), S("func_a") + 0x30] };
        var b = new EvidenceIndex(Baseline());
        var c = new EvidenceIndex(current);
        var v = Judge.Code(b, c, Window(S("jump"), Bytes("nop5", S("jump")), Bytes("jmp:commit_creds", S("jump"))));
        Assert.Equal(Classification.JumpLabelRetargeted, v.Classification);
        Assert.Equal(Severity.Critical, v.Severity);
        // An ftrace record the suspect added does not make a call at that address legitimate.
        ulong added = S("func_a") + 0x30;
        var t = Judge.Code(b, c, Window(added, Bytes("nop5", added), Bytes("call:ftrace_caller", added)));
        Assert.Equal(Classification.CodeModified, t.Classification);
        // And both changes to the allow-lists are reported themselves.
        var lists = Judge.AllowListChanges(b, c);
        Assert.Contains(lists, f => f.Classification == Classification.AllowListChanged && f.Severity == Severity.Critical && f.VirtualAddress == S("jump"));
        Assert.Contains(lists, f => f.Classification == Classification.AllowListAdded && f.Detail.StartsWith("1 ftrace call sites added", StringComparison.Ordinal));
    }

    [Fact]
    public void Allow_list_entries_added_at_verify_time_are_reported_with_their_owner()
    {
        var b = new EvidenceIndex(Baseline());
        var current = Current() with
        {
            Modules = [.. Current().Modules, new ModuleEvidence(0xffffffffc0503000, "newmod", 0xffffffffc0500000, 0x4000, 0x1000, Hidden: false)],
            JumpEntries = [.. Baseline().JumpEntries, new JumpEntry(0xffffffffc0500010, 0xffffffffc0500040), new JumpEntry(0xffffffffc0500020, 0xffffffffc0500040)],
            StaticCallSites = [.. Baseline().StaticCallSites, 0xffffffffc0500030],
        };
        var findings = Judge.AllowListChanges(b, new EvidenceIndex(current));
        string Summary(Finding f) => $"{f.Classification} {f.Severity} {f.Location}";
        var got = findings.Select(Summary).ToList();
        Assert.Equal(
        [
            "ModuleHidden Critical module evil",
            "ModuleAdded Warning module newmod",
            "AllowListAdded Warning module newmod",      // 2 jump-label entries
            "AllowListAdded Warning module newmod",      // 1 static-call site
            $"AllowListAdded Warning ftrace_ops 0x{GoodOps:x}",
            $"AllowListAdded Critical ftrace_ops 0x{EvilOps:x}",
        ], got);
        Assert.Contains("2 jump-label entries added", findings[2].Detail);
        Assert.Contains("1 static-call sites added", findings[3].Detail);
        Assert.Contains("good_fn", findings[4].Detail);
        Assert.Equal(CodeOwnerKind.HiddenModule, findings[5].Destination!.Owner);
    }

    [Fact]
    public void Unchanged_evidence_reports_nothing_and_a_renamed_module_is_reported()
    {
        var b = new EvidenceIndex(Baseline());
        Assert.Empty(Judge.AllowListChanges(b, new EvidenceIndex(Baseline())));
        var renamed = Baseline() with { Modules = [Baseline().Modules[0] with { Name = "dummy" }] };
        var f = Assert.Single(Judge.AllowListChanges(b, new EvidenceIndex(renamed)));
        Assert.Equal(Classification.ModuleRenamed, f.Classification);
        Assert.Contains("was good", f.Detail);
    }

    [Fact]
    public void Syscall_slot_and_gate_changes_are_critical_and_name_the_destination()
    {
        var v = Judge.TableEntry(new EvidenceIndex(Baseline()), new EvidenceIndex(Current()), RegionKind.SyscallTable, "sys_call_table[139]", S("__x64_sys_sysfs"), S("evil_hook"));
        Assert.Equal((Classification.SyscallHooked, Severity.Critical), (v.Classification, v.Severity));
        Assert.Equal(CodeOwnerKind.HiddenModule, v.Destination!.Owner);
        Assert.Contains("__x64_sys_sysfs", v.Detail);
        var g = Judge.TableEntry(new EvidenceIndex(Baseline()), new EvidenceIndex(Current()), RegionKind.InterruptTable, "IDT vector 0x80", S("func_a"), S("good_fn"));
        Assert.Equal((Classification.InterruptGateChanged, Severity.Critical), (g.Classification, g.Severity));
    }

    // ---------------------------------------------------------------- vector parsing

    private static ulong Address(string expr)
    {
        int plus = expr.IndexOf("+0x", StringComparison.Ordinal);
        return plus < 0 ? S(expr) : S(expr[..plus]) + ulong.Parse(expr.AsSpan(plus + 3), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    private static byte[] Bytes(string spec, ulong at)
    {
        if (spec == "nop5") return [0x0f, 0x1f, 0x44, 0x00, 0x00];
        if (spec.StartsWith("hex:", StringComparison.Ordinal)) return Convert.FromHexString(spec[4..]);
        int colon = spec.IndexOf(':');
        byte opcode = spec[..colon] switch { "call" => 0xe8, "jmp" => 0xe9, _ => throw new ArgumentException(spec) };
        var b = new byte[5];
        b[0] = opcode;
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(1), checked((int)unchecked((long)(Address(spec[(colon + 1)..]) - (at + 5)))));
        return b;
    }

    /// <summary>As the verifier builds it: 8 unchanged bytes either side; the run is where the bytes differ.</summary>
    private static CodeWindow Window(ulong site, byte[] before, byte[] after)
    {
        int n = Math.Max(before.Length, after.Length);
        var expected = new byte[n + 16];
        var found = new byte[n + 16];
        expected.AsSpan().Fill(0x90);
        found.AsSpan().Fill(0x90);
        before.CopyTo(expected, 8);
        after.CopyTo(found, 8);
        int from = 0, to = expected.Length;
        while (from < to && expected[from] == found[from]) from++;
        while (to > from && expected[to - 1] == found[to - 1]) to--;
        Assert.True(from < to, "vector changes nothing");
        ulong start = site - 8;
        return new CodeWindow(start, expected, found, start + (ulong)from, start + (ulong)to);
    }
}
