using System.Text;
using Periscope.Linux.Kallsyms;

namespace Periscope.UnitTests.Kallsyms;

/// <summary>Kernel-like symbol lists: per-CPU absolutes at 0…, then text, rodata, data and bss in address order,
/// aliases at equal addresses, repeated static names, compiler suffixes, and one Rust-style big symbol.</summary>
internal static class KallsymsTestSymbols
{
    private static readonly string[] Prefixes =
    [
        "__x64_sys_", "__ia32_sys_", "ext4_", "do_", "tcp_", "udp_", "kmem_cache_", "vfs_", "__", "irq_", "pci_", "drm_",
        "acpi_", "bpf_", "sched_", "mm_", "netif_", "skb_", "blk_", "xfs_", "nfs_", "usb_", "kvm_", "perf_", "trace_",
        "security_", "cgroup_", "sysfs_", "", "", "",
    ];

    private static readonly string[] Words =
    [
        "read", "write", "alloc", "free", "init", "exit", "lock", "unlock", "open", "close", "map", "unmap", "page",
        "inode", "file", "task", "node", "entry", "handler", "probe", "remove", "show", "store", "queue", "work",
        "timer", "event", "state", "flush", "sync", "get", "put", "set", "clear", "update", "attach", "detach",
        "v4", "v6", "8250", "i2c", "x86", "mmio", "dma", "rcu", "cpu", "mask", "buf", "len", "ctx", "ops", "table",
    ];

    private static readonly string[] Suffixes =
        ["", "", "", "", "", "", ".isra.0", ".constprop.0", ".cold", ".part.0", "_v2", "_64", "_32", ".19", "_1", "_2"];

    public static List<KernelSymbol> Generate(int count, int seed = 7, bool percpu = true,
        ulong textBase = 0xffffffff8dc00000, bool bigSymbol = true)
    {
        var random = new Random(seed);
        var list = new List<KernelSymbol>(count);
        var used = new HashSet<string>(StringComparer.Ordinal);

        if (percpu)
        {
            int percpuCount = Math.Max(4, count / 60);
            list.Add(new KernelSymbol(0, 'A', "fixed_percpu_data"));
            list.Add(new KernelSymbol(0, 'A', "__per_cpu_start"));
            ulong a = 0x1000;
            for (int i = 2; i < percpuCount; i++)
            {
                list.Add(new KernelSymbol(a, 'A', Unique(random, used, "")));
                a += (ulong)random.Next(1, 64) * 8;
            }
            list.Add(new KernelSymbol(a, 'A', "__per_cpu_end"));
        }

        ulong address = textBase;
        list.Add(new KernelSymbol(address, 'T', "_text"));
        list.Add(new KernelSymbol(address, 'T', "_stext"));
        list.Add(new KernelSymbol(address, 'T', "startup_64"));
        int remaining = count - list.Count - 2;
        int bigAt = bigSymbol ? remaining / 3 : -1;
        for (int i = 0; i < remaining; i++)
        {
            double f = (double)i / remaining;
            char type = f switch
            {
                < 0.55 => "TttW"[random.Next(4)],
                < 0.70 => "Rr"[random.Next(2)],
                < 0.88 => "Dd"[random.Next(2)],
                _ => "Bb"[random.Next(2)],
            };
            string name = i == bigAt ? BigName(random) : Unique(random, used, "");
            // Some static functions share a name (different addresses): lookups must return the first.
            if (i % 997 == 500)
                name = "cleanup_module_state";
            // Aliases: about 1 in 40 symbols shares the previous address.
            if (random.Next(40) != 0)
                address += (ulong)random.Next(1, 200) * 16;
            list.Add(new KernelSymbol(address, type, name));
        }
        address += 0x1000;
        list.Add(new KernelSymbol(address, 'B', "__bss_stop"));
        list.Add(new KernelSymbol(address + 0x2000, 'B', "_end"));
        return list;
    }

    private static string Unique(Random random, HashSet<string> used, string prefix)
    {
        while (true)
        {
            var sb = new StringBuilder(prefix);
            sb.Append(Prefixes[random.Next(Prefixes.Length)]);
            int words = random.Next(1, 4);
            for (int w = 0; w < words; w++)
            {
                if (w > 0)
                    sb.Append('_');
                sb.Append(Words[random.Next(Words.Length)]);
            }
            sb.Append(Suffixes[random.Next(Suffixes.Length)]);
            if (random.Next(8) == 0)
                sb.Append(random.Next(10000));
            string name = sb.ToString();
            if (used.Add(name))
                return name;
        }
    }

    /// <summary>A Rust v0-mangled-looking name of about 400 characters: far more than 127 compressed bytes.</summary>
    private static string BigName(Random random)
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
        var sb = new StringBuilder("_RNvMs0_NtNtCs");
        while (sb.Length < 400)
            sb.Append(alphabet[random.Next(alphabet.Length)]);
        return sb.ToString();
    }
}
