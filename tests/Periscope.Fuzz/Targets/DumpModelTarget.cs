using System.Buffers.Binary;
using Periscope.Fuzz.Engine;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Formats;

namespace Periscope.Fuzz.Targets;

/// <summary>
/// The kernel model over a REAL dump of the test guest with 8-byte writes into its task, mm, VMA, maple-node and module
/// objects. The dump is opened and the kernel discovered once; each input is a list of 16-byte records
/// {u8 object kind, u8 pad, u16 object index, u16 qword slot, u16 pad, u64 value} applied as a private overlay (the dump
/// file is never written), after which tasks, threads, every process's VMAs and the modules are read again.
/// The dump comes from PERISCOPE_FUZZ_DUMP or .cache/fuzz/guest.core (`scripts/fuzz --make-dump`).
/// </summary>
public sealed class DumpModelTarget : FuzzTarget
{
    public enum ObjectKind : byte { Task, Mm, Vma, MapleNode, Module }
    private const int RecordSize = 16, MaxRecords = 8;

    private readonly string? _dumpPath = FindDump();
    private MemoryImage? _image;
    private PatchedPhysicalMemory? _memory;
    private LinuxKernel? _kernel;
    private readonly List<(ulong Va, int Size)>[] _objects = Enumerable.Range(0, 5).Select(_ => new List<(ulong, int)>()).ToArray();
    private readonly List<ulong> _dictionary = [];

    public override string Name => "dump-model";
    public override string Description => "kernel model (tasks, threads, VMAs through the maple tree, modules) over a real guest dump with 8-byte writes into kernel objects";
    public override int SmokeIterations => 2_000;
    public override string? Unavailable => _dumpPath is null ? "no guest dump: set PERISCOPE_FUZZ_DUMP or run scripts/fuzz --make-dump" : null;
    public override IReadOnlyList<ulong> Dictionary => _dictionary;

    public static string DefaultDumpPath => Path.Combine(RepoRoot(), ".cache", "fuzz", "guest.core");

    private static string? FindDump()
    {
        if (Environment.GetEnvironmentVariable("PERISCOPE_FUZZ_DUMP") is { Length: > 0 } p) return File.Exists(p) ? p : null;
        return File.Exists(DefaultDumpPath) ? DefaultDumpPath : null;
    }

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Periscope.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }

    public override void Prepare()
    {
        if (_kernel is not null) return;
        if (_dumpPath is null) throw new InvalidOperationException(Unavailable);
        _image = MemoryImage.Open(_dumpPath);
        _memory = new PatchedPhysicalMemory(_image);
        _kernel = LinuxKernel.Open(_memory, _image.Cpus, IntrospectionLimits.Default, _image.VmcoreInfo);
        var o = _kernel.Offsets;
        var btf = _kernel.Btf!;
        int taskSize = o.Task.Size, mmSize = btf.StructSizeOrNull("mm_struct") ?? 0x400, vmaSize = btf.StructSizeOrNull("vm_area_struct") ?? 0xc0;
        int moduleSize = btf.StructSizeOrNull("module") ?? 0x400;
        foreach (var task in _kernel.Tasks)
        {
            _objects[(int)ObjectKind.Task].Add((task.Address, taskSize));
            if (task.Mm == 0 || _objects[(int)ObjectKind.Mm].Any(x => x.Va == task.Mm)) continue;
            _objects[(int)ObjectKind.Mm].Add((task.Mm, mmSize));
            foreach (var vma in _kernel.GetVmas(task)) _objects[(int)ObjectKind.Vma].Add((vma.Address, vmaSize));
            if (o.Maple is { } maple && _kernel.Reader.Space.TryReadUInt64(task.Mm + (ulong)maple.Root, out ulong root) && root > 0xffff000000000000)
                _objects[(int)ObjectKind.MapleNode].Add((root & ~0xffUL, 256));
        }
        foreach (var module in _kernel.Modules) _objects[(int)ObjectKind.Module].Add((module.Address, moduleSize));
        foreach (var list in _objects)
            foreach (var (va, size) in list.Take(64)) { _dictionary.Add(va); _dictionary.Add(va + (ulong)size / 2); _dictionary.Add(va + 8); }
        _dictionary.AddRange([(ulong)taskSize, 0x7ffffffff000, 0xffffffffff600000]);
    }

    public override IReadOnlyList<Seed> Seeds()
    {
        Prepare();
        var seeds = new List<Seed>();
        // One seed per object kind: a harmless write (the field's own value read back is not known here; zero of a
        // far slot) that mutations then redirect to other slots and values.
        for (int kind = 0; kind < _objects.Length; kind++)
        {
            if (_objects[kind].Count == 0) continue;
            var rec = new byte[RecordSize * 2];
            for (int r = 0; r < 2; r++)
            {
                rec[r * RecordSize] = (byte)kind;
                BinaryPrimitives.WriteUInt16LittleEndian(rec.AsSpan(r * RecordSize + 2), (ushort)(r * 3));
                BinaryPrimitives.WriteUInt16LittleEndian(rec.AsSpan(r * RecordSize + 4), (ushort)(r == 0 ? 0 : 1));
                BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(r * RecordSize + 8), _objects[kind][0].Va);
            }
            seeds.Add(new Seed(((ObjectKind)kind).ToString(), rec));
        }
        return seeds;
    }

    public override Verdict Run(byte[] input)
    {
        var kernel = _kernel!;
        _memory!.Clear();
        kernel.Refresh();
        var space = kernel.Reader.Space;
        for (int r = 0; r < MaxRecords && (r + 1) * RecordSize <= input.Length; r++)
        {
            var rec = input.AsSpan(r * RecordSize, RecordSize);
            var list = _objects[rec[0] % _objects.Length];
            if (list.Count == 0) continue;
            var (va, size) = list[BinaryPrimitives.ReadUInt16LittleEndian(rec[2..]) % list.Count];
            int slot = BinaryPrimitives.ReadUInt16LittleEndian(rec[4..]) % Math.Max(1, size / 8);
            if (space.TryTranslate(va + (ulong)slot * 8, out ulong pa)) _memory.WriteUInt64(pa, BinaryPrimitives.ReadUInt64LittleEndian(rec[8..]));
        }
        kernel.Refresh();
        try
        {
            foreach (var task in kernel.Tasks)
            {
                _ = task.Threads.Count + task.Comm.Length;
                if (task.Mm != 0) foreach (var vma in kernel.GetVmas(task)) _ = vma.End - vma.Start;
            }
            foreach (var module in kernel.Modules) _ = module.Name;
            return Verdict.Accepted;
        }
        catch (KernelModelException)
        {
            return Verdict.Rejected;
        }
    }

    public override void Dispose()
    {
        _image?.Dispose();
        base.Dispose();
    }
}
