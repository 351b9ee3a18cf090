namespace Periscope.Linux.Model;

/// <summary>A kernfs node's path (its names joined from the root down, as /proc/PID/cgroup prints a cgroup), or why it
/// could not be read; <c>Root</c> is the node the walk ended at.</summary>
public readonly record struct KernfsPathResult(string? Path, string? Problem, ulong Root = 0);

/// <summary>
/// Walks a kernfs_node's parent chain up to the root (the node with no parent, whose name belongs to the hierarchy and
/// is not part of the path). Everything on the way is guest data: the walk stops after <c>maxDepth</c> nodes (a cycle
/// or an absurd depth), a name must end with its NUL within <c>maxName</c> bytes, and an unreadable node or name is a
/// problem, never a crash. Used by ps --full (cgroup paths) and by the inference rules that find kernfs_node's members.
/// </summary>
public static class KernfsPath
{
    /// <summary>NAME_MAX + 1: a kernfs name (a cgroup directory) is at most 255 bytes.</summary>
    public const int MaxNameBytes = 256;

    public static KernfsPathResult Read(GuestReader reader, ulong kn, int parentAt, int nameAt, int maxDepth, int maxName = MaxNameBytes)
    {
        var names = new List<string>();
        for (int depth = 0; depth <= maxDepth; depth++)
        {
            if (!reader.TryPointer(kn + (ulong)parentAt, out ulong parent))
                return new(null, $"kernfs_node 0x{kn:x} is unreadable");
            if (parent == 0)
            {
                names.Reverse();
                return new("/" + string.Join('/', names), null, kn);
            }
            if (!reader.IsKernelPointer(parent)) return new(null, $"kernfs_node 0x{kn:x} has parent 0x{parent:x}, not a kernel pointer");
            if (Name(reader, kn, nameAt, maxName) is not { } name)
                return new(null, $"the name of kernfs_node 0x{kn:x} is unreadable or not NUL-terminated within {maxName} bytes");
            names.Add(name);
            kn = parent;
        }
        return new(null, $"more than {maxDepth} kernfs levels above the node (a cycle?)");
    }

    /// <summary>kn->name: a kernel pointer to text that ends within <paramref name="maxName"/> bytes; null otherwise.</summary>
    public static string? Name(GuestReader reader, ulong kn, int nameAt, int maxName = MaxNameBytes)
    {
        if (!reader.TryPointer(kn + (ulong)nameAt, out ulong text) || !reader.IsKernelPointer(text)) return null;
        Span<byte> buffer = stackalloc byte[Math.Clamp(maxName, 1, MaxNameBytes)];
        int n = reader.Read(text, buffer);
        int nul = buffer[..n].IndexOf((byte)0);
        return nul < 0 ? null : System.Text.Encoding.UTF8.GetString(buffer[..nul]);
    }
}
