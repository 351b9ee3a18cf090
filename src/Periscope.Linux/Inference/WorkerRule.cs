namespace Periscope.Linux.Inference;

/// <summary>
/// What a workqueue worker's fields look like without BTF (kernel/workqueue_internal.h): desc is char[WORKER_DESC_LEN]
/// holding a workqueue name (or a set_worker_desc() text), NUL-terminated inside the array and possibly empty (a worker
/// that never ran a work item); kthread.full_name holds a kernel thread's whole name when the 16-byte comm cut it.
/// </summary>
public static class WorkerRule
{
    /// <summary>WORKER_DESC_LEN: struct worker's desc is char[24] (6.1 through 7.x).</summary>
    public const int DescLength = 24;

    /// <summary>A desc field: printable ASCII up to a NUL inside the <see cref="DescLength"/> bytes (empty allowed). An
    /// unterminated field, a control byte or a byte of a pointer (0x80 and up) is no desc.</summary>
    public static bool IsDesc(ReadOnlySpan<byte> field, out bool empty)
    {
        empty = false;
        if (field.Length < DescLength) return false;
        int n = field[..DescLength].IndexOf((byte)0);
        if (n < 0) return false;
        foreach (byte c in field[..n]) if (c is < 0x20 or >= 0x7f) return false;
        empty = n == 0;
        return true;
    }

    /// <summary>A kthread full_name for a task whose comm is <paramref name="comm"/>: longer than the comm can hold
    /// (set_kthread_comm keeps it only then) and starting with the comm's 15 characters.</summary>
    public static bool IsFullNameOf(string? fullName, string comm) =>
        fullName is { Length: >= StructuralFacts.TaskCommLength } && comm.Length == StructuralFacts.TaskCommLength - 1
        && fullName.StartsWith(comm, StringComparison.Ordinal) && fullName.All(c => c is >= ' ' and < '\x7f');
}
