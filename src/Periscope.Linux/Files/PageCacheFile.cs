using Periscope.Linux.Model;
using Periscope.Linux.Objects;

namespace Periscope.Linux.Files;

/// <summary>A byte range of a file that the page cache does not hold (never written, evicted, or not read yet).</summary>
public readonly record struct FileHole(long Offset, long Length);

/// <param name="Inode">The struct inode's address.</param>
/// <param name="Size">i_size: the file's length (what was written out, holes included).</param>
/// <param name="PagesCached">Pages of the file that the page cache holds and that were written out.</param>
public sealed record PageCacheDump(ulong Inode, ulong InodeNumber, long Size, long PagesCached, long PagesTotal, IReadOnlyList<FileHole> Holes,
    IReadOnlyList<string> Gaps);

/// <summary>
/// A file's contents as the guest's page cache holds them: the inode's address_space (i_mapping) keeps its pages in the
/// i_pages xarray by page index; each present folio is read through the direct map (pfn from its struct page's place in
/// vmemmap). Pages the cache lacks are holes: the output skips them (sparse) and lists them. Files are found by path
/// from init's (pid 1's) root, down the dentry tree (d_subdirs/d_child up to 6.7, d_children/d_sib since 6.8) and
/// across mounts of the initial mount namespace; symlinks are not followed. Layouts come from BTF.
/// </summary>
public sealed class PageCacheFile(LinuxKernel kernel)
{
    /// <summary>PAGE_SIZE on x86-64 (the page cache indexes 4 KiB pages).</summary>
    private const int PageSize = 4096;
    /// <summary>Path components resolved (a deeper path is refused: PATH_MAX is 4096 bytes, at least 2 per component).</summary>
    private const int MaxComponents = 2048;

    /// <summary>The inode of <paramref name="path"/> (absolute), or null with the reason.</summary>
    public ulong? Resolve(string path, out string? why)
    {
        why = null;
        if (!path.StartsWith('/')) { why = $"'{path}' is not an absolute path"; return null; }
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length > MaxComponents) { why = $"'{path}' has more than {MaxComponents} components"; return null; }
        if (parts.Any(p => p is "." or "..")) { why = "'.' and '..' are not resolved; give the path without them"; return null; }
        try
        {
            // Paths mean what they mean to init (pid 1, /proc/1/root), not to the idle task: since 7.0 the idle task's
            // root is the namespace's nullfs root, and the initramfs pid 1 sees as / is a rootfs mount on top of it.
            var init = kernel.Object("task_struct", kernel.Tasks.FirstOrDefault(t => t.Pid == 1)?.Address ?? kernel.InitTask);
            var root = init["fs"]["root"];
            ulong mount = root["mnt"].ReadPointer();
            ulong dentry = root["dentry"].ReadPointer();
            mount -= (ulong)kernel.Objects.Type("mount").Layout!.Offset("mnt"); // path.mnt is &mount->mnt
            var mounts = MountsOf(init);
            dentry = Cross(mounts, ref mount, dentry);
            foreach (string name in parts)
            {
                ulong? child = Child(dentry, name);
                if (child is null) { why = $"no '{name}' in the dentry cache under {Describe(dentry)} (not cached, or no such file)"; return null; }
                dentry = Cross(mounts, ref mount, child.Value);
            }
            ulong inode = kernel.Object("dentry", dentry)["d_inode"].ReadPointer();
            if (inode == 0) { why = $"'{path}' is a negative dentry (the file does not exist)"; return null; }
            return inode;
        }
        catch (ObjectFaultException e)
        {
            why = $"resolving '{path}': {e.Message}";
            return null;
        }
    }

    private string Describe(ulong dentry) => kernel.Object("dentry", dentry)["d_name.name"].ReadString(256) is { Length: > 0 } n ? $"'{n}'" : $"dentry 0x{dentry:x}";

    /// <summary>(parent mount, mountpoint dentry) → the mounts on it, in list order (the last one mounted is on top).</summary>
    private List<(ulong Parent, ulong Point, ulong Mount, ulong Root)> MountsOf(KernelObject init)
    {
        var result = new List<(ulong, ulong, ulong, ulong)>();
        ulong ns = init["nsproxy"]["mnt_ns"].ReadPointer();
        var walk = new MountReader(kernel).Mounts(ns);
        if (!walk.Complete) throw new ObjectFaultException($"mount namespace 0x{ns:x}: {walk.Fault}", walk.FaultAt);
        foreach (var m in walk.Nodes.Select(address => kernel.Object("mount", address)))
        {
            result.Add((m["mnt_parent"].ReadPointer(), m["mnt_mountpoint"].ReadPointer(), m.Address, m["mnt.mnt_root"].ReadPointer()));
        }
        return result;
    }

    private static ulong Cross(List<(ulong Parent, ulong Point, ulong Mount, ulong Root)> mounts, ref ulong mount, ulong dentry)
    {
        // Follow stacked mounts: each mount on (mount, dentry) replaces it by its own root.
        for (int hops = 0; hops < 64; hops++)
        {
            ulong m = mount, d = dentry;
            var top = mounts.LastOrDefault(x => x.Parent == m && x.Point == d && x.Mount != m);
            if (top.Mount == 0) return dentry;
            mount = top.Mount;
            dentry = top.Root;
        }
        return dentry;
    }

    private ulong? Child(ulong parent, string name)
    {
        var d = kernel.Object("dentry", parent);
        IEnumerable<KernelObject> children;
        if (d.HasMember("d_subdirs")) children = d["d_subdirs"].ListEntries("dentry", "d_child");
        else if (d.HasMember("d_children")) children = HlistEntries(d["d_children.first"].ReadPointer(), (ulong)kernel.Objects.Type("dentry").Layout!.Offset("d_sib"));
        else throw new ObjectTypeException("BTF: struct dentry has neither d_subdirs nor d_children");
        foreach (var c in children)
        {
            var namePtr = c["d_name.name"];
            if (namePtr.ReadPointer() == 0) continue;
            if (namePtr.ReadString(256) == name && c["d_inode"].ReadPointer() != 0) return c.Address;
        }
        return null;
    }

    private IEnumerable<KernelObject> HlistEntries(ulong first, ulong nodeOffset)
    {
        var seen = new HashSet<ulong>();
        for (ulong node = first; node != 0;)
        {
            if (!seen.Add(node) || seen.Count > kernel.Limits.MaxObjectDerefs) throw new ObjectFaultException($"dentry children at 0x{node:x}: a cycle", node);
            yield return kernel.Object("dentry", node - nodeOffset);
            if (!kernel.Reader.TryPointer(node, out node)) throw new ObjectFaultException($"dentry child node 0x{node:x} is unreadable", node);
        }
    }

    /// <summary>
    /// Writes the cached pages of the inode at <paramref name="inode"/> to <paramref name="output"/> at their file offsets
    /// (holes skipped, so a seekable output stays sparse), and sets its length to i_size.
    /// </summary>
    public PageCacheDump Write(ulong inode, Stream output)
    {
        var gaps = new List<string>();
        var ino = kernel.Object("inode", inode);
        long size = ino["i_size"].ReadInt64();
        ulong number = ino["i_ino"].ReadUInt64();
        if (size < 0 || size > kernel.Limits.MaxPageCacheFileBytes)
            throw new KernelModelException($"inode 0x{inode:x}: i_size {size} is outside 0..MaxPageCacheFileBytes = {kernel.Limits.MaxPageCacheFileBytes}");
        if (kernel.Btf is not { } btf) throw new KernelModelException("dump file needs the kernel's BTF (struct address_space, xa_node)");
        var xa = XArrayReader.Create(kernel.Reader, btf, out string? why) ?? throw new KernelModelException($"dump file: {why}");
        if (kernel.Layout.VmemmapBase is not { } vmemmap || kernel.Layout.PageOffsetBase is not { } directMap)
            throw new KernelModelException("dump file: vmemmap_base or page_offset_base is unknown (struct page cannot be turned into a physical page)");
        long pageStruct = kernel.Objects.Type("page").Size;
        if (pageStruct <= 0) throw new KernelModelException("BTF: struct page has no size");

        long pages = (size + PageSize - 1) / PageSize;
        ulong head = ino["i_mapping"].Deref()["i_pages.xa_head"].ReadPointer();
        var entries = xa.Read(head, (int)Math.Min(kernel.Limits.MaxXarrayEntries, Math.Max(pages, 1)), $"inode {number} page cache", gaps);
        var present = new SortedDictionary<long, ulong>();
        foreach (var e in entries)
        {
            if (e.Kind != XArrayEntryKind.Pointer || (long)e.Index >= pages || e.Index > long.MaxValue) continue; // shadows of evicted pages are holes
            ulong delta = e.Entry - vmemmap;
            if (e.Entry < vmemmap || delta % (ulong)pageStruct != 0)
            {
                gaps.Add($"page index {e.Index}: 0x{e.Entry:x} is not a struct page in vmemmap");
                continue;
            }
            present[(long)e.Index] = delta / (ulong)pageStruct;
        }
        var holes = new List<FileHole>();
        var buffer = new byte[PageSize];
        long cached = 0;
        long holeStart = -1;
        for (long index = 0; index < pages; index++)
        {
            int length = (int)Math.Min(PageSize, size - index * PageSize);
            bool ok = present.TryGetValue(index, out ulong pfn)
                      && kernel.Reader.Read(directMap + pfn * PageSize, buffer.AsSpan(0, length)) == length;
            if (present.ContainsKey(index) && !ok) gaps.Add($"page index {index} (pfn 0x{pfn:x}) is unreadable");
            if (!ok)
            {
                if (holeStart < 0) holeStart = index;
                continue;
            }
            if (holeStart >= 0) { holes.Add(Hole(holeStart, index, size)); holeStart = -1; }
            output.Position = index * PageSize;
            output.Write(buffer, 0, length);
            cached++;
        }
        if (holeStart >= 0) holes.Add(Hole(holeStart, pages, size));
        output.SetLength(size);
        return new PageCacheDump(inode, number, size, cached, pages, holes, gaps);
    }

    private static FileHole Hole(long fromPage, long toPage, long size) =>
        new(fromPage * PageSize, Math.Min(toPage * PageSize, size) - fromPage * PageSize);
}
