using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>
/// lsof's members without BTF (<see cref="OpenFileOffsets"/>, <see cref="SocketFileOffsets"/>): the evidence is every
/// user process's file table and the struct files in it (and the files the processes map), checked with the facts of
/// <see cref="OpenFileRule"/>.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>Bytes of a files_struct searched for the fdt pointer (0x20 on x86-64, 0x14 on i386 in 6.x).</summary>
    private const int FilesFdtWindow = 128;
    /// <summary>struct dentry_operations slots searched for d_dname (the 10th since 2.6.38).</summary>
    private const int DentryOpsSlots = 16;
    /// <summary>Bytes of a struct socket searched for file and sk (0x10 and 0x18 on x86-64).</summary>
    private const int SocketWindow = 128;
    /// <summary>socket_alloc.vfs_inode is sizeof(struct socket) (128 on 6.x x86-64): a larger distance is not that struct.</summary>
    private const int MaxSocketBytes = 1024;
    /// <summary>SS_FREE..SS_DISCONNECTING (include/uapi/linux/net.h): a struct socket's state, its first member.</summary>
    private const uint MaxSocketState = 4;
    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000;

    private void InferOpenFiles(TaskEvidence t, MmEvidence m, PathEvidence p)
    {
        var users = t.AllLeaders.Where(l => IsKernel(Ptr(l + (ulong)t.Mm))).Take(_limits.MaxInferenceTaskSamples).ToList();
        var holders = new Dictionary<ulong, List<ulong>>();
        var fds = InferFileTable(t, users, holders);
        var mapped = m.Files.Where(f => SmallWindow(f) is not null).Distinct().ToList();
        var all = fds.Concat(mapped).Distinct().Where(f => SmallWindow(f) is not null).ToList();
        InferFileFlags(all);
        InferFilePos(all, p);
        InferInodeMode(fds, mapped, p);
        var socketFiles = InferDentryOps(fds, p);
        InferSocketLinks(socketFiles, p);
        InferSocketOwner(socketFiles, holders, t, p);
    }

    /// <summary>task_struct.files and files_struct.fdt, then the fdtable's members as checked declaration-order facts; returns
    /// the struct files the file tables hold (the evidence for the struct file rules), and in <paramref name="holders"/> the
    /// processes whose tables hold each one.</summary>
    private List<ulong> InferFileTable(TaskEvidence t, List<ulong> users, Dictionary<ulong, List<ulong>> holders)
    {
        const string rule = "pointer in every user process's task_struct to a files_struct whose fdt points either right after itself (the embedded fdtab: max_fds == BITS_PER_LONG, fd/close_on_exec/open_fds/full_fds_bits into the files_struct's own arrays) or to a grown fdtable; embedded in at least one";
        if (users.Count == 0 || TaskWindow(users[0]) is not { } first)
        {
            foreach (var (s, mb) in new[] { (Task, "files"), ("files_struct", "fdt") }) _report.AddUnknown(s, mb, "no user process to take evidence from");
            return [];
        }
        ulong? WordAt(ulong va) => _r.TryPointer(va, out ulong v) ? v : null;
        uint? U32At(ulong va) => _r.TryU32(va, out uint v) ? v : null;
        var pairs = new List<(int X, int F)>();
        Span<byte> head = stackalloc byte[FilesFdtWindow];
        for (int x = 0; x + _p <= first.Length; x += _p)
        {
            Step();
            ulong filesStruct = Word(first, x);
            if (!IsKernel(filesStruct) || _r.Read(filesStruct, head) != head.Length) continue;
            for (int f = 0; f + _p <= FilesFdtWindow; f += _p)
            {
                ulong fdt = _p == 8 ? BitConverter.ToUInt64(head[f..]) : BitConverter.ToUInt32(head[f..]);
                if (fdt != filesStruct + (ulong)(f + _p)) continue;
                Step(users.Count);
                int embedded = 0;
                bool ok = true;
                foreach (ulong u in users)
                {
                    var shape = OpenFileRule.Classify(Ptr(u + (ulong)x), f, _p, WordAt, U32At, IsKernel);
                    if (shape == FdtableShape.Invalid) { ok = false; break; }
                    if (shape == FdtableShape.Embedded) embedded++;
                }
                if (ok && embedded > 0) pairs.Add((x, f));
            }
        }
        int? taskFiles = _report.Add(Task, "files", pairs.Select(c => c.X).Distinct().ToList(), rule);
        int? fdtOff = _report.Add("files_struct", "fdt", pairs.Where(c => c.X == taskFiles).Select(c => c.F).Distinct().ToList(), rule);
        if (taskFiles is not { } tf || fdtOff is not { } fo) return [];

        // Every non-NULL slot of every table is a struct file: its f_path.dentry is a dentry whose d_parent is a kernel pointer.
        var files = new List<ulong>();
        bool slotsAreFiles = true;
        int perTable = 8 * _p * 4;
        foreach (ulong u in users)
        {
            ulong table = Ptr(Ptr(u + (ulong)tf) + (ulong)fo);
            uint maxFds = _r.TryU32(table, out uint mf) ? mf : 0;
            ulong array = Ptr(table + (ulong)(OpenFileRule.FdtFdWord * _p));
            for (int i = 0; i < Math.Min(maxFds, perTable) && files.Count < _limits.MaxInferenceFileSamples; i++)
            {
                Step();
                ulong file = Ptr(array + (ulong)(i * _p));
                if (file == 0) continue;
                ulong dentry = Ptr(file + (ulong)(_report.Find("file", "f_path.dentry")?.Offset ?? 0));
                if (!IsKernel(file) || !IsKernel(dentry) || !IsKernel(Ptr(dentry + (ulong)(_report.Find("dentry", "d_parent")?.Offset ?? 0))))
                {
                    slotsAreFiles = false;
                    break;
                }
                files.Add(file);
                if (!holders.TryGetValue(file, out var by)) holders[file] = by = [];
                if (!by.Contains(u)) by.Add(u);
            }
        }
        files = files.Distinct().ToList();
        if (!slotsAreFiles || _report.Find("file", "f_path.dentry")?.IsKnown != true || files.Count == 0)
        {
            foreach (var mb in new[] { "max_fds", "fd", "close_on_exec" })
                _report.AddUnknown("fdtable", mb, files.Count == 0 ? "no open file in any file table" : "a file table slot is not a struct file whose f_path.dentry has a d_parent");
            return [];
        }
        const string fdtRule = "struct fdtable { unsigned int max_fds; struct file **fd; unsigned long *close_on_exec; ... } (declaration order since 2.6.x); checked: every embedded table's max_fds is BITS_PER_LONG, its arrays lie in its files_struct, and every non-NULL fd slot is a struct file with a dentry";
        _report.AddStructural("fdtable", "max_fds", 0, fdtRule);
        _report.AddStructural("fdtable", "fd", OpenFileRule.FdtFdWord * _p, fdtRule);
        _report.AddStructural("fdtable", "close_on_exec", OpenFileRule.FdtCloseOnExecWord * _p, fdtRule);
        _report.Files = Math.Max(_report.Files, files.Count);
        return files;
    }

    /// <summary>f_flags and f_mode: the pair of u32s whose access bits agree as OPEN_FMODE makes them, in every file.</summary>
    private void InferFileFlags(List<ulong> files)
    {
        const string rule = "u32 pair (f_flags, f_mode) with f_mode & 3 == (f_flags & O_ACCMODE) + 1 (OPEN_FMODE) and f_flags below 1 << 23 in every open and mapped file; the evidence holds files opened for reading and for writing";
        var windows = files.Select(f => SmallWindow(f)!).ToList();
        var accModes = new HashSet<uint>();
        var pairs = new List<(int Flags, int Mode)>();
        for (int fl = 0; fl + 4 <= _smallBytes && windows.Count > 0; fl += 4)
        {
            Step(windows.Count);
            if (!windows.All(w => U32(w, fl) < OpenFileRule.FlagsLimit)) continue;
            for (int md = 0; md + 4 <= _smallBytes; md += 4)
            {
                if (md == fl) continue;
                Step();
                var modes = new HashSet<uint>();
                bool ok = true;
                foreach (var w in windows)
                {
                    uint flags = U32(w, fl);
                    bool? agree = OpenFileRule.AccessModesAgree(flags, U32(w, md));
                    if (agree == false) { ok = false; break; }
                    if (agree == true) modes.Add(flags & OpenFileRule.OAccMode);
                }
                // Both reading-only and writing files must be in the evidence, else a field of zeros next to one of ones fits.
                if (ok && modes.Contains(0) && modes.Count >= 2) pairs.Add((fl, md));
            }
        }
        int? flagsOff = _report.Add("file", "f_flags", pairs.Select(c => c.Flags).Distinct().ToList(), rule);
        _report.Add("file", "f_mode", pairs.Where(c => c.Flags == flagsOff).Select(c => c.Mode).Distinct().ToList(), rule);
    }

    /// <summary>struct rt_mutex_base { raw_spinlock_t wait_lock; struct rb_root_cached waiters; struct task_struct *owner; }
    /// in words (wait_lock padded to one): PREEMPT_RT's struct mutex without lock debugging.</summary>
    private const int RtMutexWords = 4;

    /// <summary>
    /// f_pos: loff_t declared right after struct mutex f_pos_lock, which is unlocked in a quiet guest. Two mutex shapes:
    /// up to 6.x its last member is wait_list (an empty list_head: next == prev == itself); since 7.0 it ends with
    /// first_waiter (NULL), and struct file declares f_pos_lock right after f_path (so from f_path's end: the owner word —
    /// or a pipe's f_pipe —, then zero words up to f_pos, which is non-zero in a file that was read). PREEMPT_RT's mutex is
    /// an rt_mutex_base (wait_lock, the waiters' rb_root_cached, owner: four words, all zero when unlocked); since 6.12
    /// the f_path shape covers it, before that struct file declares f_pos_lock right after f_mode.
    /// </summary>
    private void InferFilePos(List<ulong> files, PathEvidence p)
    {
        const string rule = "loff_t (0..2^48 in every file) right after the unlocked mutex f_pos_lock: after an empty wait_list list_head in every file (up to 6.x), "
            + "or a PREEMPT_RT mutex (four words, zero in every file) declared right after f_mode (before 6.12), "
            + "or (6.12+) after f_path, an owner word and words that are zero in every file, non-zero in some file";
        var windows = files.Select(f => (F: f, W: SmallWindow(f)!)).ToList();
        var candidates = new List<int>();
        bool IsPosition(int at) => at + 8 <= _smallBytes && windows.All(x => U64(x.W, at) < 1UL << 48);
        for (int l = 0; l + 2 * _p + 8 <= _smallBytes && windows.Count > 0; l += _p)
        {
            Step(windows.Count);
            if (windows.All(x => OpenFileRule.IsEmptyList(x.F + (ulong)l, _p, va => Word(x.W, (int)(va - x.F)))) && IsPosition(l + 2 * _p))
                candidates.Add(l + 2 * _p);
        }
        if (_report.Find("file", "f_mode")?.Offset is { } mode && windows.Count > 0)
        {
            int mutex = (mode + 4 + _p - 1) / _p * _p, at = mutex + RtMutexWords * _p;
            Step(windows.Count);
            if (Enumerable.Range(0, RtMutexWords).All(i => windows.All(x => mutex + (i + 1) * _p <= _smallBytes && Word(x.W, mutex + i * _p) == 0))
                && IsPosition(at) && windows.Any(x => U64(x.W, at) != 0) && !candidates.Contains(at))
                candidates.Add(at);
        }
        if (p.FilePath is { } path && windows.Count > 0)
        {
            int zerosFrom = path + 3 * _p; // f_path { mnt, dentry }, then the mutex's owner word
            for (int at = zerosFrom + _p; at + 8 <= _smallBytes; at += _p)
            {
                Step(windows.Count);
                if (!windows.All(x => Word(x.W, at - _p) == 0)) break; // the words between the owner and f_pos are zero
                if (IsPosition(at) && windows.Any(x => U64(x.W, at) != 0) && !candidates.Contains(at)) candidates.Add(at);
            }
        }
        _report.Add("file", "f_pos", candidates, rule);
    }

    /// <summary>inode.i_mode: the first member of struct inode (since 2.6), checked: every mapped file is S_IFREG there and
    /// every open file's inode has a file type (or none: anon_inodefs).</summary>
    private void InferInodeMode(List<ulong> fds, List<ulong> mapped, PathEvidence p)
    {
        if (p.FileInode is not { } fi || mapped.Count == 0)
        {
            _report.AddUnknown("inode", "i_mode", "needs file.f_inode and a mapped file");
            return;
        }
        uint ModeOf(ulong file) => _r.TryU32(Ptr(file + (ulong)fi), out uint v) ? v & 0xFFFF : 0;
        Step(fds.Count + mapped.Count);
        bool ok = mapped.All(f => (ModeOf(f) & S_IFMT) == S_IFREG)
            // anon_inodefs' shared inode has no type bits before 6.14 (i_mode = S_IRUSR | S_IWUSR).
            && fds.All(f => (ModeOf(f) & S_IFMT) is 0 or 0x1000 or 0x2000 or 0x4000 or 0x6000 or 0x8000 or 0xA000 or 0xC000);
        if (!ok) _report.AddUnknown("inode", "i_mode", "offset 0 does not hold S_IFREG in every mapped file's inode");
        else _report.AddStructural("inode", "i_mode", 0, "umode_t i_mode is struct inode's first member (since 2.6); checked: S_IFREG in every mapped file's inode, a file type in every open file's");
    }

    /// <summary>dentry.d_op and dentry_operations.d_dname: the pointer pair that leads from open files' dentries to the pseudo
    /// filesystems' d_dname functions (kallsyms names them even without data symbols). Also path's layout and d_hash.pprev.
    /// Returns the socket files (d_dname == sockfs_dname).</summary>
    private List<ulong> InferDentryOps(List<ulong> fds, PathEvidence p)
    {
        if (p.MntRoot is not null)
        {
            const string pathRule = "struct path { struct vfsmount *mnt; struct dentry *dentry; } (since 2.6.25); checked: every mapped file's f_path.dentry climbs to the root its f_path.mnt's mnt_root holds";
            _report.AddStructural("path", "mnt", 0, pathRule);
            _report.AddStructural("path", "dentry", _p, pathRule);
        }
        var dnames = new Dictionary<ulong, string>();
        foreach (var name in new[] { "sockfs_dname", "pipefs_dname", "anon_inodefs_dname" })
            if (_symbols.TryGetAddress(name, out ulong va)) dnames[va] = name;
        if (p.FilePath is not { } fpath || p.DentryParent is not { } dparent || dnames.Count == 0 || fds.Count == 0)
        {
            foreach (var (s, mb) in new[] { ("dentry", "d_op"), ("dentry_operations", "d_dname") })
                _report.AddUnknown(s, mb, "needs file.f_path.dentry, open files and the pseudo filesystems' d_dname functions in kallsyms");
            return [];
        }
        var dentries = fds.Select(f => Ptr(f + (ulong)(fpath + _p))).Where(IsKernel).Distinct().ToList();
        var pairs = new List<(int Op, int Dname)>();
        var dentryWindows = dentries.Select(d => SmallWindow(d)).Where(w => w is not null).Select(w => w!).ToList();
        for (int op = 0; op + _p <= _smallBytes; op += _p)
        {
            Step(dentryWindows.Count);
            var ops = dentryWindows.Select(w => Word(w, op)).Where(v => v != 0).Distinct().ToList();
            if (ops.Any(v => !IsKernel(v))) continue;
            for (int dn = 0; dn < DentryOpsSlots * _p; dn += _p)
            {
                Step(ops.Count);
                if (ops.Any(v => dnames.ContainsKey(Ptr(v + (ulong)dn)))) pairs.Add((op, dn));
            }
        }
        const string rule = "pointer in open files' dentries (0 or a kernel pointer in all) to an ops table whose slot is sockfs_dname, pipefs_dname or anon_inodefs_dname (kallsyms functions)";
        int? dop = _report.Add("dentry", "d_op", pairs.Select(c => c.Op).Distinct().ToList(), rule, c => c.Min(),
            SlabNeighbourTieBreak);
        int? dname = _report.Add("dentry_operations", "d_dname", pairs.Where(c => c.Op == dop).Select(c => c.Dname).Distinct().ToList(), rule);

        // d_hash (struct hlist_bl_node { next, pprev }) is declared right before d_parent: a hashed dentry's *pprev (its
        // bucket head's lock bit masked) is the node itself.
        int pprevOff = dparent - _p, node = dparent - 2 * _p;
        Step(dentries.Count);
        int hashed = 0;
        bool linked = node >= 0 && dentries.All(d =>
        {
            ulong pprev = Ptr(d + (ulong)pprevOff);
            if (pprev == 0) return true;
            if (!IsKernel(pprev) || (Ptr(pprev) & ~1UL) != d + (ulong)node) return false;
            hashed++;
            return true;
        });
        if (linked && hashed > 0) _report.AddStructural("dentry", "d_hash.pprev", pprevOff, "struct hlist_bl_node d_hash is declared right before d_parent; checked: *pprev is the node in every hashed dentry of an open file");
        else _report.AddUnknown("dentry", "d_hash.pprev", "the word before d_parent is not a hash-chain back link in every open file's dentry");
        if (dop is not { } o || dname is not { } n || !_symbols.TryGetAddress("sockfs_dname", out ulong sockfs)) return [];
        return fds.Where(f => Ptr(Ptr(Ptr(f + (ulong)(fpath + _p)) + (ulong)o) + (ulong)n) == sockfs).ToList();
    }

    /// <summary>file.private_data, socket.{state, file, sk}, socket_alloc.{socket, vfs_inode}, sock.sk_socket from the socket
    /// files' back links (<see cref="OpenFileRule.LinksBack"/>).</summary>
    private void InferSocketLinks(List<ulong> sockets, PathEvidence p)
    {
        string[] members = ["file.private_data", "socket.state", "socket.file", "socket.sk", "socket_alloc.socket", "socket_alloc.vfs_inode", "sock.sk_socket"];
        if (p.FileInode is not { } fi || sockets.Count == 0)
        {
            foreach (var mb in members) _report.AddUnknown(mb[..mb.IndexOf('.')], mb[(mb.IndexOf('.') + 1)..], "needs open socket files (d_dname == sockfs_dname) and file.f_inode");
            return;
        }
        ulong? WordAt(ulong va) => _r.TryPointer(va, out ulong v) ? v : null;
        var found = new List<(int Pd, int VfsInode, int File, int Sk, int SkSocket)>();
        var fw = sockets.Select(f => (F: f, W: SmallWindow(f)!, Inode: Ptr(f + (ulong)fi))).ToList();
        for (int pd = 0; pd + _p <= _smallBytes; pd += _p)
        {
            Step(fw.Count);
            ulong s0 = Word(fw[0].W, pd), i0 = fw[0].Inode;
            if (!IsKernel(s0) || s0 >= i0 || i0 - s0 > MaxSocketBytes) continue;
            int vfsInode = (int)(i0 - s0);
            if (!fw.All(x => Word(x.W, pd) == x.Inode - (ulong)vfsInode)) continue;
            for (int sf = _p; sf < SocketWindow; sf += _p)
                for (int sk = _p; sk < SocketWindow; sk += _p)
                {
                    if (sk == sf || WordAt(s0 + (ulong)sk) is not { } sock0 || !IsKernel(sock0)) continue;
                    Step();
                    if (WordAt(s0 + (ulong)sf) != fw[0].F || StructWindow(sock0) is not { } skw) continue;
                    for (int ss = 0; ss + _p <= skw.Length; ss += _p)
                    {
                        if (Word(skw, ss) != s0) continue;
                        Step(fw.Count);
                        if (fw.All(x => OpenFileRule.LinksBack(x.F, x.Inode, Word(x.W, pd), vfsInode, sf, sk, ss, WordAt, IsKernel)))
                            found.Add((pd, vfsInode, sf, sk, ss));
                    }
                }
        }
        const string rule = "in every open socket file: private_data is the struct socket at inode - vfs_inode (socket_alloc { socket; vfs_inode }), whose file points back to the file and whose sk is a sock whose sk_socket points back to the socket";
        int? pdOff = _report.Add("file", "private_data", found.Select(c => c.Pd).Distinct().ToList(), rule);
        var f1 = found.Where(c => c.Pd == pdOff).ToList();
        int? vi = _report.Add("socket_alloc", "vfs_inode", f1.Select(c => c.VfsInode).Distinct().ToList(), rule);
        int? sfOff = _report.Add("socket", "file", f1.Select(c => c.File).Distinct().ToList(), rule);
        var f2 = f1.Where(c => c.File == sfOff).ToList();
        int? skOff = _report.Add("socket", "sk", f2.Select(c => c.Sk).Distinct().ToList(), rule);
        _report.Add("sock", "sk_socket", f2.Where(c => c.Sk == skOff).Select(c => c.SkSocket).Distinct().ToList(), rule, c => c.Min(), "lowest offset");
        if (pdOff is null || vi is null)
        {
            _report.AddUnknown("socket_alloc", "socket", "needs socket_alloc.vfs_inode");
            _report.AddUnknown("socket", "state", "needs file.private_data");
            return;
        }
        _report.AddStructural("socket_alloc", "socket", 0, "struct socket_alloc { struct socket socket; struct inode vfs_inode; }; checked by the back links");
        Step(fw.Count);
        if (fw.All(x => _r.TryU32(Word(x.W, pdOff.Value), out uint st) && st <= MaxSocketState))
            _report.AddStructural("socket", "state", 0, "socket_state state is struct socket's first member; checked: SS_FREE..SS_DISCONNECTING in every socket");
        else _report.AddUnknown("socket", "state", "offset 0 of a socket holds no socket_state");
    }
}
