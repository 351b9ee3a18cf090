using Iced.Intel;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>
/// What the scheduler's own small functions say about struct rq and its neighbours, read from their code: the per-CPU
/// <c>runqueues</c> variable and <c>__per_cpu_offset</c> (the address computation of <c>cpu_rq(cpu)</c>), and member offsets
/// they use as displacements. A member a function did not yield is null. The caller checks every value against the data.
/// </summary>
public sealed record RunQueueCode(ulong RunQueues, ulong PerCpuOffsetArray, int Idle, int? Curr, int? Cpu, int? Rt, int? Dl,
    int? CfsRoot, int? CfsLeftmost, int? SeRunNode, string Evidence, int? FairServer = null);

/// <summary>
/// Decodes, with Iced, the functions of kernel/sched that are text symbols on every kernel from 6.1 to 7.x (also without
/// CONFIG_KALLSYMS_ALL) and hold one rq member each:
/// <c>idle_task(cpu)</c> (<c>cpu_rq(cpu)->idle</c>: runqueues, __per_cpu_offset and rq.idle),
/// <c>idle_cpu(cpu)</c> (<c>rq->curr != rq->idle</c>: rq.curr is its other load),
/// <c>update_rq_clock(rq)</c> (<c>sched_clock_cpu(cpu_of(rq))</c>: rq.cpu),
/// <c>print_rt_stats</c>/<c>print_dl_stats</c> (<c>&amp;cpu_rq(cpu)->rt</c>, <c>->dl</c>),
/// <c>__pick_first_entity(cfs_rq)</c> (tasks_timeline.rb_leftmost, then container_of by sched_entity.run_node) and
/// <c>__pick_last_entity(cfs_rq)</c> (tasks_timeline.rb_root) and, from 6.8, <c>fair_server_init(rq)</c>
/// (<c>&amp;rq->fair_server</c>). Only straight-line code is followed (conditional branches
/// fall through), at most <see cref="MaxCodeBytes"/> bytes per function; nothing is guessed when a pattern is absent.
/// </summary>
public static class RunQueueCodeDecoder
{
    private const int MaxCodeBytes = 160;
    private const int MaxInstructions = 48;
    /// <summary>A displacement larger than this is not a struct member (struct rq is about 4 KiB in 6.1..7.x).</summary>
    public const int MaxMemberOffset = 0x10000;
    /// <summary>Bytes of a sched_entity searched for its cfs_rq pointer (the struct is about 0x100..0x180 bytes).</summary>
    public const int MaxEntityBytes = 0x200;

    public static RunQueueCode? Decode(GuestReader reader, KernelSymbols symbols, out string? reason) =>
        Decode(name => symbols.TryGetAddress(name, out ulong at) ? at : null, at =>
        {
            var bytes = new byte[MaxCodeBytes];
            int n = reader.Space.Read(at, bytes);
            return n < 16 ? null : bytes.AsSpan(0, n).ToArray();
        }, reader.PointerSize, out reason);

    /// <param name="symbol">A text symbol's address, or null.</param>
    /// <param name="read">The first bytes of the function at an address (at most <see cref="MaxCodeBytes"/> are used), or null.</param>
    /// <param name="word">The guest's pointer size: 8 (x86-64) or 4 (i386).</param>
    public static RunQueueCode? Decode(Func<string, ulong?> symbol, Func<ulong, byte[]?> read, int word, out string? reason)
    {
        byte[]? Code(string name, out ulong at)
        {
            at = symbol(name) ?? 0;
            if (at == 0 || read(at) is not { Length: > 0 } bytes) return null;
            return bytes.Length > MaxCodeBytes ? bytes[..MaxCodeBytes] : bytes;
        }
        if (Code("idle_task", out ulong idleTaskAt) is not { } idleTask)
        {
            reason = "kallsyms has no readable idle_task to read runqueues and __per_cpu_offset from";
            return null;
        }
        var first = Trace(idleTask, idleTaskAt, word, null).FirstOrDefault(e => e.Kind == EventKind.RunQueueLoad);
        if (first.Kind != EventKind.RunQueueLoad)
        {
            reason = $"idle_task at 0x{idleTaskAt:x}: no load of cpu_rq(cpu)->idle (runqueues + __per_cpu_offset[cpu] + displacement)";
            return null;
        }
        ulong runqueues = first.Constant, array = first.Array;
        int idle = first.Displacement;
        var evidence = new List<string> { $"idle_task: runqueues 0x{runqueues:x}, __per_cpu_offset 0x{array:x}, rq.idle 0x{idle:x}" };

        int? curr = null;
        if (Code("idle_cpu", out ulong idleCpuAt) is { } idleCpu)
        {
            var loads = Trace(idleCpu, idleCpuAt, word, null).Where(e => e.Kind == EventKind.RunQueueLoad && e.Constant == runqueues && e.Array == array)
                .Select(e => e.Displacement).Distinct().Take(2).ToList();
            if (loads.Count == 2 && loads.Contains(idle)) curr = loads.First(d => d != idle);
            evidence.Add(curr is { } c ? $"idle_cpu: rq.curr 0x{c:x} (compared with rq.idle)" : "idle_cpu: no curr/idle comparison");
        }
        int? cpu = null;
        if (Code("update_rq_clock", out ulong clockAt) is { } clock && symbol("sched_clock_cpu") is { } clockCpu)
        {
            var call = Trace(clock, clockAt, word, ArgumentRegister(word)).FirstOrDefault(e => e.Kind == EventKind.Call && e.Target == clockCpu);
            if (call.Kind == EventKind.Call && call.ArgumentLoad is { } d) cpu = d;
            evidence.Add(cpu is { } x ? $"update_rq_clock: rq.cpu 0x{x:x} (sched_clock_cpu's argument)" : "update_rq_clock: no sched_clock_cpu(rq->cpu) call");
        }
        int? RqMember(string function)
        {
            if (Code(function, out ulong at) is not { } bytes) return null;
            var add = Trace(bytes, at, word, null).FirstOrDefault(e => e.Kind == EventKind.RunQueueAdd && e.Constant == runqueues && e.Array == array);
            return add.Kind == EventKind.RunQueueAdd ? add.Displacement : null;
        }
        int? rt = RqMember("print_rt_stats"), dl = RqMember("print_dl_stats");
        evidence.Add($"print_rt_stats: rq.rt {Hex(rt)}; print_dl_stats: rq.dl {Hex(dl)}");

        int? leftmost = null, runNode = null, root = null;
        if (Code("__pick_first_entity", out ulong firstAt) is { } pickFirst)
        {
            var events = Trace(pickFirst, firstAt, word, ArgumentRegister(word));
            var load = events.FirstOrDefault(e => e.Kind == EventKind.ArgumentLoad);
            var back = events.FirstOrDefault(e => e.Kind == EventKind.ContainerOf);
            if (load.Kind == EventKind.ArgumentLoad && back.Kind == EventKind.ContainerOf && back.Source == load.Displacement)
                (leftmost, runNode) = (load.Displacement, -back.Displacement);
        }
        if (Code("__pick_last_entity", out ulong lastAt) is { } pickLast)
        {
            var use = Trace(pickLast, lastAt, word, ArgumentRegister(word)).FirstOrDefault(e => e.Kind is EventKind.ArgumentLoad or EventKind.ArgumentAdd);
            if (use.Kind != EventKind.None) root = use.Displacement;
        }
        evidence.Add($"__pick_first_entity: tasks_timeline.rb_leftmost {Hex(leftmost)}, sched_entity.run_node {Hex(runNode)}; __pick_last_entity: tasks_timeline.rb_root {Hex(root)}");
        int? fairServer = null;
        if (Code("fair_server_init", out ulong fairAt) is { } fairInit)
        {
            var add = Trace(fairInit, fairAt, word, ArgumentRegister(word)).FirstOrDefault(e => e.Kind == EventKind.ArgumentAdd);
            if (add.Kind == EventKind.ArgumentAdd && add.Displacement is > 0 and < MaxMemberOffset) fairServer = add.Displacement;
            evidence.Add($"fair_server_init: rq.fair_server {Hex(fairServer)}");
        }
        reason = null;
        return new RunQueueCode(runqueues, array, idle, curr, cpu, rt, dl, root, leftmost, runNode, string.Join("; ", evidence), fairServer);
    }

    /// <summary>
    /// <c>runqueues</c> or <c>__per_cpu_offset</c> for <see cref="KernelDataAddresses"/> on a kernel without data symbols:
    /// from idle_task's code, accepted only when CPU 0's run queue there names init_task as its idle task.
    /// </summary>
    public static DataAddress? FindAddress(LinuxKernel kernel, string name)
    {
        if (Decode(kernel.Reader, kernel.Symbols, out string? reason) is not { } code)
        {
            kernel.Log.Warn($"{name}: not in kallsyms, and {reason}");
            return null;
        }
        var r = kernel.Reader;
        if (!r.TryULong(code.PerCpuOffsetArray, out ulong cpu0) || !r.TryPointer(unchecked(code.RunQueues + cpu0) + (ulong)code.Idle, out ulong idle) || idle != kernel.InitTask)
        {
            kernel.Log.Warn($"{name}: {code.Evidence}, but CPU 0's rq->idle there is not init_task 0x{kernel.InitTask:x}");
            return null;
        }
        return name == "runqueues"
            ? new DataAddress(name, code.RunQueues, $"idle_task's code (cpu_rq(cpu)->idle; checked: CPU 0's is init_task)")
            : new DataAddress(name, code.PerCpuOffsetArray, $"idle_task's code (its indexed load; checked: CPU 0's rq->idle is init_task)");
    }

    private static string Hex(int? v) => v is { } x ? $"0x{x:x}" : "not found";

    /// <summary>The first integer argument: rdi (System V x86-64), eax (i386 kernels are built with -mregparm=3).</summary>
    private static Register ArgumentRegister(int word) => word == 8 ? Register.RDI : Register.EAX;

    public enum EventKind { None, RunQueueLoad, RunQueueAdd, ArgumentLoad, ArgumentAdd, ContainerOf, Call }

    /// <summary>One thing the straight-line code did with a tracked value.</summary>
    public readonly record struct CodeEvent(EventKind Kind, int Displacement, ulong Constant = 0, ulong Array = 0, int Source = 0, ulong Target = 0, int? ArgumentLoad = null);

    /// <summary>What a register holds: a known constant, plus (PerCpu) __per_cpu_offset[cpu] from <see cref="Array"/>,
    /// or the function's first argument (Argument), or a word loaded from the argument at a displacement (LoadedAt).</summary>
    private record struct Held(ulong Constant, bool PerCpu, ulong Array, bool Argument, int? LoadedAt);

    /// <summary>Follows <paramref name="code"/> from <paramref name="ip"/> and reports the events the decoders look for.</summary>
    public static List<CodeEvent> Trace(byte[] code, ulong ip, int word, Register? argument)
    {
        int bitness = word * 8;
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code), ip);
        var regs = new Dictionary<Register, Held>();
        // Iced names registers by their full (64-bit) form, also in 32-bit code: EAX is tracked as RAX.
        argument = argument?.GetFullRegister();
        if (argument is { } a) regs[a] = new Held(0, false, 0, true, null);
        var events = new List<CodeEvent>();
        ulong end = ip + (ulong)code.Length;
        for (int i = 0; i < MaxInstructions && decoder.IP < end; i++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) break;
            if (ins.FlowControl is FlowControl.Call or FlowControl.UnconditionalBranch && ins.Op0Kind is OpKind.NearBranch32 or OpKind.NearBranch64)
            {
                int? loaded = argument is { } arg && regs.TryGetValue(arg, out var held) ? held.LoadedAt : null;
                events.Add(new CodeEvent(EventKind.Call, 0, Target: ins.NearBranchTarget, ArgumentLoad: loaded));
                if (ins.FlowControl == FlowControl.UnconditionalBranch) break;
                regs.Clear(); // a call clobbers the caller-saved registers; nothing later depends on the others
                continue;
            }
            if (ins.FlowControl is FlowControl.Return or FlowControl.UnconditionalBranch or FlowControl.IndirectBranch or FlowControl.IndirectCall) break;
            // Any memory operand based on the run queue or the argument is an event, whichever operand it is (mov, cmp).
            for (int op = 0; op < ins.OpCount; op++)
                if (ins.GetOpKind(op) == OpKind.Memory && ins.Mnemonic != Mnemonic.Lea) MemoryEvent(ins, regs, events, word);
            if (ins.OpCount == 0 || ins.Op0Kind != OpKind.Register) continue;
            var dest = ins.Op0Register.GetFullRegister();
            regs.TryGetValue(dest, out var before);
            bool had = regs.ContainsKey(dest);
            Held? after = null;
            if (ins.OpCount == 2)
            {
                bool indexed = ins.Op1Kind == OpKind.Memory && ins.MemoryBase == Register.None && ins.MemoryIndex != Register.None && ins.MemoryIndexScale == word;
                if (indexed && ins.Mnemonic is Mnemonic.Mov)
                    after = new Held(0, true, Displacement(ins, bitness), false, null);
                else if (indexed && ins.Mnemonic is Mnemonic.Add && had && !before.PerCpu && !before.Argument && before.LoadedAt is null)
                    after = before with { PerCpu = true, Array = Displacement(ins, bitness) };
                else if (ins.Mnemonic == Mnemonic.Mov && IsImmediate(ins.Op1Kind))
                    after = new Held(Immediate(ins), false, 0, false, null);
                else if (ins.Mnemonic is Mnemonic.Mov or Mnemonic.Movsxd && ins.Op1Kind == OpKind.Register && regs.TryGetValue(ins.Op1Register.GetFullRegister(), out var src))
                    after = src;
                else if (ins.Mnemonic == Mnemonic.Add && IsImmediate(ins.Op1Kind) && had)
                {
                    int imm = unchecked((int)Immediate(ins));
                    if (before.PerCpu) events.Add(new CodeEvent(EventKind.RunQueueAdd, imm, before.Constant, before.Array));
                    else if (before.Argument) events.Add(new CodeEvent(EventKind.ArgumentAdd, imm));
                    after = before.PerCpu || before.Argument ? null : before with { Constant = unchecked(before.Constant + (ulong)(long)imm) };
                }
                else if (ins.Mnemonic == Mnemonic.Lea && ins.MemoryIndex == Register.None && regs.TryGetValue(ins.MemoryBase.GetFullRegister(), out var b))
                {
                    int disp = unchecked((int)Displacement(ins, bitness));
                    if (b.PerCpu) events.Add(new CodeEvent(EventKind.RunQueueAdd, disp, b.Constant, b.Array));
                    else if (b.Argument) events.Add(new CodeEvent(EventKind.ArgumentAdd, disp));
                    else if (b.LoadedAt is { } from) events.Add(new CodeEvent(EventKind.ContainerOf, disp, Source: from));
                }
                else if (ins.Mnemonic == Mnemonic.Mov && ins.Op1Kind == OpKind.Memory && ins.MemoryIndex == Register.None
                    && regs.TryGetValue(ins.MemoryBase.GetFullRegister(), out var m) && m.Argument)
                    after = new Held(0, false, 0, false, unchecked((int)Displacement(ins, bitness)));
            }
            if (after is { } h) regs[dest] = h;
            else regs.Remove(dest);
        }
        return events;
    }

    /// <summary>A memory operand [base + index + disp] where the registers sum to runqueues + __per_cpu_offset[cpu], or base
    /// on the argument.</summary>
    private static void MemoryEvent(in Instruction ins, Dictionary<Register, Held> regs, List<CodeEvent> events, int word)
    {
        if (ins.MemoryBase == Register.None || ins.MemoryBase == Register.RIP || ins.MemoryBase == Register.EIP) return;
        int disp = unchecked((int)Displacement(ins, word * 8));
        if (!regs.TryGetValue(ins.MemoryBase.GetFullRegister(), out var b)) return;
        if (ins.MemoryIndex == Register.None)
        {
            if (b.PerCpu) events.Add(new CodeEvent(EventKind.RunQueueLoad, disp, b.Constant, b.Array));
            else if (b.Argument) events.Add(new CodeEvent(EventKind.ArgumentLoad, disp));
            return;
        }
        if (ins.MemoryIndexScale != 1 || !regs.TryGetValue(ins.MemoryIndex.GetFullRegister(), out var x) || b.PerCpu == x.PerCpu || b.Argument || x.Argument) return;
        var perCpu = b.PerCpu ? b : x;
        events.Add(new CodeEvent(EventKind.RunQueueLoad, disp, unchecked(b.Constant + x.Constant), perCpu.Array));
    }

    private static bool IsImmediate(OpKind kind) => kind is OpKind.Immediate32 or OpKind.Immediate32to64 or OpKind.Immediate64 or OpKind.Immediate8to32 or OpKind.Immediate8to64;

    private static ulong Immediate(in Instruction ins) => ins.Op1Kind switch
    {
        OpKind.Immediate32 => ins.Immediate32,
        OpKind.Immediate64 => ins.Immediate64,
        OpKind.Immediate32to64 => unchecked((ulong)ins.Immediate32to64),
        OpKind.Immediate8to32 => unchecked((ulong)(long)ins.Immediate8to32),
        OpKind.Immediate8to64 => unchecked((ulong)ins.Immediate8to64),
        _ => 0,
    };

    private static ulong Displacement(in Instruction ins, int bitness) =>
        bitness == 32 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64;
}
