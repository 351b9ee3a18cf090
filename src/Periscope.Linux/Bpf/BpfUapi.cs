namespace Periscope.Linux.Bpf;

/// <summary>
/// The enumerators of enum bpf_prog_type, bpf_map_type and bpf_link_type (include/uapi/linux/bpf.h) as bpftool prints
/// them, for kernels without BTF: user ABI numbers that are only ever appended to, so one table serves every kernel (a
/// number the table does not know prints as the number). With BTF the kernel's own enums name them.
/// </summary>
public static class BpfUapi
{
    public static readonly IReadOnlyList<string> ProgramTypes =
    [
        "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp", "perf_event", "cgroup_skb", "cgroup_sock",
        "lwt_in", "lwt_out", "lwt_xmit", "sock_ops", "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr",
        "lwt_seg6local", "lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable", "cgroup_sockopt",
        "tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall", "netfilter",
    ];

    public static readonly IReadOnlyList<string> MapTypes =
    [
        "unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array", "stack_trace", "cgroup_array",
        "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash",
        "cgroup_storage", "reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash", "struct_ops",
        "ringbuf", "inode_storage", "task_storage", "bloom_filter", "user_ringbuf", "cgrp_storage", "arena",
    ];

    public static readonly IReadOnlyList<string> LinkTypes =
    [
        "unspec", "raw_tracepoint", "tracing", "cgroup", "iter", "netns", "xdp", "perf_event", "kprobe_multi", "struct_ops", "netfilter",
        "tcx", "uprobe_multi", "netkit", "sockmap",
    ];
}
