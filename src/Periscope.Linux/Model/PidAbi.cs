namespace Periscope.Linux.Model;

/// <summary>
/// The layout facts of struct pid, struct upid and the xarray behind a pid namespace's IDR that the kernel's source
/// fixes and BTF is not needed for (include/linux/pid.h, include/linux/xarray.h), for both x86 word sizes. The rules
/// and checks that use a fact check it against the data (a node's array pointer names its xarray, its count is its
/// non-empty slots, a pid's level is small); nothing here is trusted blind.
/// </summary>
public sealed record PidAbi
{
    private PidAbi(int pointerSize) => PointerSize = pointerSize;

    public static readonly PidAbi X86_64 = new(8), I386 = new(4);

    /// <summary>The facts for <paramref name="pointerSize"/>-byte pointers (4 or 8).</summary>
    public static PidAbi For(int pointerSize) => pointerSize switch
    {
        8 => X86_64,
        4 => I386,
        _ => throw new ArgumentOutOfRangeException(nameof(pointerSize), pointerSize, "x86 Linux pointers are 4 or 8 bytes"),
    };

    public int PointerSize { get; }
    private int P => PointerSize;

    /// <summary>struct pid starts with refcount_t count; unsigned int level; (since 4.x).</summary>
    public const int PidCount = 0, PidLevel = 4;
    /// <summary>MAX_PID_NS_LEVEL (kernel/pid_namespace.c): a pid's level is its namespace's depth, at most 32.</summary>
    public const int MaxPidNamespaceLevel = 32;
    /// <summary>PIDTYPE_PID is enum pid_type's first value: pid->tasks[PIDTYPE_PID] is the array's first hlist_head.</summary>
    public const int PidTypePid = 0;

    /// <summary>struct upid { int nr; struct pid_namespace *ns; }: nr first, ns at the next pointer boundary.</summary>
    public int UpidNr => 0;
    public int UpidNs => P;
    /// <summary>sizeof(struct upid): pid.numbers[] is an array of them.</summary>
    public int UpidSize => 2 * P;
    /// <summary>struct hlist_node { next; pprev; }.</summary>
    public int HlistNodePprev => P;

    /// <summary>
    /// struct xa_node { unsigned char shift, offset, count, nr_values; struct xa_node *parent; struct xarray *array;
    /// union { struct list_head private_list; struct rcu_head rcu_head; }; void *slots[XA_CHUNK_SIZE]; ... }: the four
    /// bytes padded to a pointer, two pointers, two more, then the slots (0x28 on x86-64, 0x14 on i386).
    /// </summary>
    public int XaNodeShift => 0;
    public int XaNodeOffset => 1;
    public int XaNodeCount => 2;
    public int XaNodeParent => P;
    public int XaNodeArray => 2 * P;
    public int XaNodeSlots => 5 * P;

    /// <summary>struct xarray { spinlock_t xa_lock; gfp_t xa_flags; void *xa_head; }: how many words at most xa_head lies
    /// after the xarray's start. spinlock_t is 4 bytes (xa_head at one word), an rt_mutex on PREEMPT_RT (32 bytes on
    /// x86-64: xa_head at five words) and larger with lock debugging; sixteen words bound them all.</summary>
    public const int MaxXaHeadWords = 16;

    /// <summary>XA_CHUNK_SHIFT 6, XA_CHUNK_SIZE 64 slots per node (4 and 16 only with CONFIG_BASE_SMALL, which no
    /// distribution kernel sets; the walk checks each node's count against its 64 slots and shift against the 6).</summary>
    public const int XaChunkShift = 6, XaChunkSize = 1 << XaChunkShift;

    /// <summary>An xarray entry with low bits 10 and a value above 4096 is an internal node pointer (xa_is_node: the node
    /// address | 2); below 4096 it is a sibling or retry entry. Low bits 00 are the stored pointers; x1 are values.</summary>
    public static bool IsNode(ulong entry) => (entry & 3) == 2 && entry > 4096;
    public static ulong NodeOf(ulong entry) => entry - 2;
    public static bool IsPointer(ulong entry) => (entry & 3) == 0 && entry != 0;
}
