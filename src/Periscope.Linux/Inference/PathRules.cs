using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>file, dentry, mount and inode rules: the evidence is the struct files user processes map (and run).</summary>
public sealed partial class OffsetInference
{
    private sealed class PathEvidence
    {
        public int? FilePath, DentryName, DentryParent, MntRoot, MountMnt, MountParent, MountMountpoint, FileInode, InodeSb, InodeIno, MntSb;
    }

    private PathEvidence InferPaths(List<ulong> files)
    {
        var ev = new PathEvidence();
        var fw = files.Select(f => (F: f, W: SmallWindow(f))).Where(x => x.W is not null).Select(x => (x.F, W: x.W!)).ToList();
        if (fw.Count == 0)
        {
            _report.AddUnknown("file", "f_path", "no mapped file to take evidence from");
            return ev;
        }

        // f_path.dentry (fd), dentry.d_name (q) and d_parent (p): from every file's dentry, names are qstrs of printable
        // bytes without '/', and d_parent climbs to a root (its own parent) named "/" within MaxPathComponents.
        var triples = new List<(int Fd, int Q, int P)>();
        var roots = new Dictionary<(int, int, int), List<ulong>>();
        for (int fd = _p; fd + _p <= _smallBytes; fd += _p)
        {
            Step(fw.Count);
            if (!fw.All(x => IsKernel(Word(x.W, fd)) && IsKernel(Word(x.W, fd - _p)))) continue;
            var first = SmallWindow(Word(fw[0].W, fd));
            if (first is null) continue;
            for (int q = 0; q + QstrName + _p <= _smallBytes; q += _p)
            {
                Step();
                if (DentryName(first, q) is not { } n || n == "/") continue;
                for (int p = 0; p + _p <= _smallBytes; p += _p)
                {
                    if (p == q || p == q + QstrName) continue;
                    Step();
                    var rootsOf = new List<ulong>();
                    bool ok = true;
                    foreach (var (_, w) in fw)
                    {
                        if (ClimbToRoot(Word(w, fd), q, p) is { } root) rootsOf.Add(root);
                        else { ok = false; break; }
                    }
                    if (!ok) continue;
                    triples.Add((fd, q, p));
                    roots[(fd, q, p)] = rootsOf;
                }
            }
        }
        const string pathRule = "f_path.dentry in every mapped file; from it, d_name qstrs (len bytes without NUL or '/', then NUL) and d_parent links climb to a root that is its own parent and is named \"/\"";
        const string slabTieBreak = SlabNeighbourTieBreak;
        int? dentryOff = _report.Add("file", "f_path.dentry", triples.Select(t => t.Fd).Distinct().ToList(), pathRule, c => c.Min(), slabTieBreak);
        var t1 = triples.Where(t => t.Fd == dentryOff).ToList();
        ev.DentryName = _report.Add("dentry", "d_name", t1.Select(t => t.Q).Distinct().ToList(), pathRule, c => c.Min(), slabTieBreak);
        var t2 = t1.Where(t => t.Q == ev.DentryName).ToList();
        ev.DentryParent = _report.Add("dentry", "d_parent", t2.Select(t => t.P).Distinct().ToList(), pathRule, c => c.Min(), slabTieBreak);
        if (dentryOff is not { } fdOff || ev.DentryName is not { } qOff || ev.DentryParent is not { } pOff) return ev;
        ev.FilePath = _report.AddStructural("file", "f_path", fdOff - _w.PathDentry, "struct path { mnt, dentry }: f_path starts one pointer before f_path.dentry");
        var rootOf = roots[(fdOff, qOff, pOff)];

        // vfsmount.mnt_root: the pointer in every file's vfsmount equal to the root its dentries climb to.
        var mnts = fw.Select(x => Word(x.W, ev.FilePath.Value + _w.PathMnt)).ToList();
        var mntRoots = new List<int>();
        for (int r = 0; r + _p <= 64; r += _p)
        {
            Step(mnts.Count);
            bool ok = true;
            for (int i = 0; i < mnts.Count && ok; i++) ok = Ptr(mnts[i] + (ulong)r) == rootOf[i];
            if (ok) mntRoots.Add(r);
        }
        ev.MntRoot = _report.Add("vfsmount", "mnt_root", mntRoots, "pointer in every file's vfsmount equal to the root its dentries climb to");

        // struct mount declares mnt_parent and mnt_mountpoint right before the embedded struct vfsmount mnt (since 3.3): a
        // mount that is its own parent (the root mount) has its mountpoint at its own root; any other mount's parent is a
        // mount and its mountpoint a named dentry.
        var distinctMnts = mnts.Distinct().ToList();
        var mountTriples = new List<(int M, int Pp, int Mp)>();
        if (ev.MntRoot is { } mr)
            for (int m = _w.MountParentBeforeMnt; m <= 256; m += _p)
            {
                int pp = m - _w.MountParentBeforeMnt, mp = m - _w.MountMountpointBeforeMnt;
                Step(distinctMnts.Count);
                bool ok = true;
                var layout = new MountLayout(m, pp, mp, mr);
                foreach (ulong mnt in distinctMnts)
                {
                    Step(MountRule.MaxDepth);
                    ok = MountRule.ClimbsToRoot(mnt, layout, Ptr, IsKernel, point => SmallWindow(point) is { } pw && DentryName(pw, qOff) is not null);
                    if (!ok) break;
                }
                if (ok) mountTriples.Add((m, pp, mp));
            }
        const string mountRule = "struct mount { ..., mnt_parent, mnt_mountpoint, struct vfsmount mnt }: every mapped file's mount climbs, through parents whose mountpoints are named dentries, to a root mount that is its own parent with its mountpoint at its root";
        ev.MountMnt = _report.Add("mount", "mnt", mountTriples.Select(t => t.M).Distinct().ToList(), mountRule);
        var mt = mountTriples.Where(t => t.M == ev.MountMnt).ToList();
        ev.MountParent = _report.Add("mount", "mnt_parent", mt.Select(t => t.Pp).Distinct().ToList(), mountRule);
        ev.MountMountpoint = _report.Add("mount", "mnt_mountpoint", mt.Where(t => t.Pp == ev.MountParent).Select(t => t.Mp).Distinct().ToList(), mountRule);

        // f_inode and dentry.d_inode: one inode pointer in both, for every file.
        var dentries = fw.Select(x => SmallWindow(Word(x.W, fdOff))!).ToList();
        var inodePairs = new List<(int Fi, int Di)>();
        for (int fi = 0; fi + _p <= _smallBytes; fi += _p)
        {
            if (fi == ev.FilePath || fi == fdOff) continue;
            Step(fw.Count);
            if (!fw.All(x => IsKernel(Word(x.W, fi)))) continue;
            for (int di = 0; di + _p <= _smallBytes; di += _p)
            {
                Step(fw.Count);
                bool ok = true;
                for (int i = 0; i < fw.Count && ok; i++) ok = Word(fw[i].W, fi) == Word(dentries[i], di);
                if (ok) inodePairs.Add((fi, di));
            }
        }
        ev.FileInode = _report.Add("file", "f_inode", inodePairs.Select(p => p.Fi).Distinct().ToList(), "inode pointer in every file equal to one in its dentry (d_inode)",
            c => c.Min(), "lowest offset (f_inode is declared right after f_path)");
        if (ev.FileInode is not { } fiOff) return ev;

        // inode.i_sb and vfsmount.mnt_sb: one super_block pointer in both.
        var inodes = fw.Select(x => Word(x.W, fiOff)).ToList();
        var sbPairs = new List<(int Ib, int Mb)>();
        for (int ib = 0; ib + _p <= _smallBytes; ib += _p)
            for (int mb = 0; mb + _p <= 64; mb += _p)
            {
                if (mb == ev.MntRoot) continue;
                Step(inodes.Count);
                bool ok = true;
                for (int i = 0; i < inodes.Count && ok; i++)
                    ok = SmallWindow(inodes[i]) is { } iw && Word(iw, ib) is var sb && IsKernel(sb) && sb == Ptr(mnts[i] + (ulong)mb);
                if (ok) sbPairs.Add((ib, mb));
            }
        ev.InodeSb = _report.Add("inode", "i_sb", sbPairs.Select(p => p.Ib).Distinct().ToList(), "super_block pointer in every mapped file's inode equal to one in its vfsmount (mnt_sb)");
        ev.MntSb = _report.Add("vfsmount", "mnt_sb", sbPairs.Where(p => p.Ib == ev.InodeSb).Select(p => p.Mb).Distinct().ToList(), "as inode.i_sb");

        // i_ino: a u64 in the inode, non-zero, below 2^32, distinct for distinct inodes, and not the file size.
        var distinctInodes = inodes.Distinct().Select(i => SmallWindow(i)).Where(w => w is not null).ToList();
        var inos = new List<int>();
        for (int o = 0; o + _p <= _smallBytes && distinctInodes.Count >= 2; o += _p)
        {
            Step(distinctInodes.Count);
            var seen = new HashSet<ulong>();
            if (distinctInodes.All(w => Word(w!, o) is var v && v != 0 && v < 1UL << 32 && !IsKernel(v) && seen.Add(v))) inos.Add(o);
        }
        ev.InodeIno = _report.Add("inode", "i_ino", inos, "unsigned long, non-zero, below 2^32 and not a kernel pointer (i386: pointers are below 2^32 too), distinct for distinct inodes", c => c.Min(), "lowest offset (i_ino precedes i_size and the times)");
        return ev;
    }

    private string? DentryName(byte[] w, int q)
    {
        uint len = U32(w, q + QstrLen);
        ulong name = Word(w, q + QstrName);
        if (len is 0 or > 255 || !IsKernel(name)) return null;
        Span<byte> b = stackalloc byte[256];
        var s = b[..((int)len + 1)];
        Step();
        if (_r.Read(name, s) != s.Length || s[^1] != 0) return null;
        if (s[..^1].Contains((byte)0)) return null; // a name may hold any byte but NUL (and '/', below)
        if (s.Length > 2 && s[..^1].Contains((byte)'/')) return null;
        return System.Text.Encoding.UTF8.GetString(s[..^1]);
    }

    private ulong? ClimbToRoot(ulong dentry, int q, int p)
    {
        for (int i = 0; i < _limits.MaxPathComponents; i++)
        {
            if (SmallWindow(dentry) is not { } w || DentryName(w, q) is not { } name) return null;
            ulong parent = Word(w, p);
            if (parent == dentry) return name == "/" ? dentry : null;
            if (name.Contains('/') || !IsKernel(parent)) return null;
            dentry = parent;
        }
        return null;
    }
}
