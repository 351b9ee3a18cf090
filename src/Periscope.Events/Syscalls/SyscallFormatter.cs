using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Periscope.Events.Tasks;

namespace Periscope.Events.Syscalls;

/// <summary>How one argument is shown.</summary>
public enum ArgumentKind
{
    Hex,
    /// <summary>A C int (32 bits: the upper half of the register is not part of it).</summary>
    Int,
    Long,
    UInt,
    Fd,
    DirFd,
    Path,
    OpenFlags,
    Mode,
    AtFlags,
    Argv,
    SockAddr,
    Size,
    Prot,
    MapFlags,
}

/// <summary>One argument of an event: the raw register and, for the kinds decoded, what it means.</summary>
public sealed record DecodedArgument(ArgumentKind Kind, ulong Raw, string Text, string? Path = null, IReadOnlyList<string>? Argv = null);

/// <summary>
/// strace-style argument and return-value text for the common calls. The argument kinds are the x86-64 syscall ABI
/// (stable across kernels); the calls are found by the names the guest's own dispatch gives them.
/// </summary>
public sealed class SyscallFormatter(TaskResolver tasks, Periscope.Memory.IntrospectionLimits limits)
{
    private static readonly Dictionary<string, ArgumentKind[]> s_signatures = new(StringComparer.Ordinal)
    {
        ["read"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Size],
        ["write"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Size],
        ["pread64"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Size, ArgumentKind.Long],
        ["pwrite64"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Size, ArgumentKind.Long],
        ["open"] = [ArgumentKind.Path, ArgumentKind.OpenFlags, ArgumentKind.Mode],
        ["openat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.OpenFlags, ArgumentKind.Mode],
        ["creat"] = [ArgumentKind.Path, ArgumentKind.Mode],
        ["close"] = [ArgumentKind.Fd],
        ["stat"] = [ArgumentKind.Path, ArgumentKind.Hex],
        ["lstat"] = [ArgumentKind.Path, ArgumentKind.Hex],
        ["fstat"] = [ArgumentKind.Fd, ArgumentKind.Hex],
        ["newfstatat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.Hex, ArgumentKind.AtFlags],
        ["statx"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.AtFlags, ArgumentKind.Hex, ArgumentKind.Hex],
        ["access"] = [ArgumentKind.Path, ArgumentKind.Int],
        ["faccessat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.Int],
        ["faccessat2"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.Int, ArgumentKind.AtFlags],
        ["execve"] = [ArgumentKind.Path, ArgumentKind.Argv, ArgumentKind.Hex],
        ["execveat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.Argv, ArgumentKind.Hex, ArgumentKind.AtFlags],
        ["chdir"] = [ArgumentKind.Path],
        ["mkdir"] = [ArgumentKind.Path, ArgumentKind.Mode],
        ["mkdirat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.Mode],
        ["rmdir"] = [ArgumentKind.Path],
        ["unlink"] = [ArgumentKind.Path],
        ["unlinkat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.AtFlags],
        ["readlink"] = [ArgumentKind.Path, ArgumentKind.Hex, ArgumentKind.Size],
        ["readlinkat"] = [ArgumentKind.DirFd, ArgumentKind.Path, ArgumentKind.Hex, ArgumentKind.Size],
        ["chmod"] = [ArgumentKind.Path, ArgumentKind.Mode],
        ["truncate"] = [ArgumentKind.Path, ArgumentKind.Long],
        ["dup"] = [ArgumentKind.Fd],
        ["dup2"] = [ArgumentKind.Fd, ArgumentKind.Fd],
        ["dup3"] = [ArgumentKind.Fd, ArgumentKind.Fd, ArgumentKind.Hex],
        ["lseek"] = [ArgumentKind.Fd, ArgumentKind.Long, ArgumentKind.Int],
        ["ioctl"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Hex],
        ["fcntl"] = [ArgumentKind.Fd, ArgumentKind.Int, ArgumentKind.Hex],
        ["socket"] = [ArgumentKind.Int, ArgumentKind.Int, ArgumentKind.Int],
        ["connect"] = [ArgumentKind.Fd, ArgumentKind.SockAddr, ArgumentKind.Size],
        ["bind"] = [ArgumentKind.Fd, ArgumentKind.SockAddr, ArgumentKind.Size],
        ["sendto"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Size, ArgumentKind.Hex, ArgumentKind.SockAddr, ArgumentKind.Size],
        ["listen"] = [ArgumentKind.Fd, ArgumentKind.Int],
        ["accept"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Hex],
        ["accept4"] = [ArgumentKind.Fd, ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Hex],
        ["mmap"] = [ArgumentKind.Hex, ArgumentKind.Size, ArgumentKind.Prot, ArgumentKind.MapFlags, ArgumentKind.Fd, ArgumentKind.Hex],
        ["mprotect"] = [ArgumentKind.Hex, ArgumentKind.Size, ArgumentKind.Prot],
        ["munmap"] = [ArgumentKind.Hex, ArgumentKind.Size],
        ["brk"] = [ArgumentKind.Hex],
        ["exit"] = [ArgumentKind.Int],
        ["exit_group"] = [ArgumentKind.Int],
        ["kill"] = [ArgumentKind.Int, ArgumentKind.Int],
        ["wait4"] = [ArgumentKind.Int, ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Hex],
        ["clone"] = [ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Hex],
        ["getpid"] = [], ["getppid"] = [], ["gettid"] = [], ["getuid"] = [], ["geteuid"] = [], ["getgid"] = [], ["getegid"] = [],
        ["fork"] = [], ["vfork"] = [], ["sched_yield"] = [], ["sync"] = [], ["pause"] = [],
        ["nanosleep"] = [ArgumentKind.Hex, ArgumentKind.Hex],
        ["pipe"] = [ArgumentKind.Hex],
        ["pipe2"] = [ArgumentKind.Hex, ArgumentKind.Hex],
        ["uname"] = [ArgumentKind.Hex],
        ["set_tid_address"] = [ArgumentKind.Hex],
        ["arch_prctl"] = [ArgumentKind.Hex, ArgumentKind.Hex],
        ["rt_sigaction"] = [ArgumentKind.Int, ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Size],
        ["rt_sigprocmask"] = [ArgumentKind.Int, ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Size],
    };

    private static readonly Dictionary<int, string> s_errno = new()
    {
        [1] = "EPERM", [2] = "ENOENT", [3] = "ESRCH", [4] = "EINTR", [5] = "EIO", [6] = "ENXIO", [7] = "E2BIG", [8] = "ENOEXEC",
        [9] = "EBADF", [10] = "ECHILD", [11] = "EAGAIN", [12] = "ENOMEM", [13] = "EACCES", [14] = "EFAULT", [16] = "EBUSY",
        [17] = "EEXIST", [18] = "EXDEV", [19] = "ENODEV", [20] = "ENOTDIR", [21] = "EISDIR", [22] = "EINVAL", [23] = "ENFILE",
        [24] = "EMFILE", [25] = "ENOTTY", [26] = "ETXTBSY", [27] = "EFBIG", [28] = "ENOSPC", [29] = "ESPIPE", [30] = "EROFS",
        [32] = "EPIPE", [34] = "ERANGE", [36] = "ENAMETOOLONG", [38] = "ENOSYS", [39] = "ENOTEMPTY", [40] = "ELOOP",
        [88] = "ENOTSOCK", [95] = "EOPNOTSUPP", [97] = "EAFNOSUPPORT", [98] = "EADDRINUSE", [99] = "EADDRNOTAVAIL",
        [110] = "ETIMEDOUT", [111] = "ECONNREFUSED", [512] = "ERESTARTSYS", [513] = "ERESTARTNOINTR", [514] = "ERESTARTNOHAND",
        [516] = "ERESTART_RESTARTBLOCK",
    };

    private static readonly ArgumentKind[] s_unknownCall = [ArgumentKind.Hex, ArgumentKind.Hex, ArgumentKind.Hex];

    public static bool IsKnown(string name) => s_signatures.ContainsKey(name);

    /// <summary>Index of the first path argument of <paramref name="name"/>, or -1.</summary>
    public static int PathArgument(string? name) =>
        name is not null && s_signatures.TryGetValue(name, out var kinds) ? Array.IndexOf(kinds, ArgumentKind.Path) : -1;

    /// <summary>
    /// What the plugin copies from the caller's memory when <paramref name="name"/> enters (TraceRingLayout.CaptureTable):
    /// its first path, else its sockaddr (its length is the next argument, as in connect, bind, sendto's last two), else nothing.
    /// </summary>
    public static byte CaptureCode(string? name)
    {
        if (name is null || !s_signatures.TryGetValue(name, out var kinds)) return 0;
        int path = Array.IndexOf(kinds, ArgumentKind.Path);
        if (path >= 0) return (byte)(path + 1);
        int sockAddr = Array.IndexOf(kinds, ArgumentKind.SockAddr);
        return sockAddr is >= 0 and < 5 ? (byte)((sockAddr + 1) | TraceRing.TraceRingLayout.CaptureSockAddr) : (byte)0;
    }

    /// <summary>Decodes the arguments of one call; unknown calls show their first three registers in hex.</summary>
    /// <param name="captured">The argument <see cref="CaptureCode"/> names, as the plugin copied it at entry (preferred:
    /// the caller's buffer may hold something else by the time we read it); empty when it did not.</param>
    public IReadOnlyList<DecodedArgument> Arguments(string? name, SyscallArguments args, ulong mm, ReadOnlySpan<byte> captured = default, bool capturedTruncated = false)
    {
        string? capturedPath = null;
        if (!captured.IsEmpty && PathArgument(name) >= 0)
        {
            capturedPath = Encoding.UTF8.GetString(captured);
            captured = default;
        }
        ArgumentKind[] kinds = name is not null && s_signatures.TryGetValue(name, out var k) ? k : s_unknownCall;
        if (kinds.Length == 0) return [];
        var list = new DecodedArgument[kinds.Length];
        for (int i = 0; i < kinds.Length; i++)
        {
            if (kinds[i] == ArgumentKind.Path && capturedPath is not null)
            {
                list[i] = new DecodedArgument(ArgumentKind.Path, args[i], Quote(capturedPath) + (capturedTruncated ? "..." : ""), Path: capturedPath);
                capturedPath = null;
                continue;
            }
            if (kinds[i] == ArgumentKind.SockAddr && !captured.IsEmpty && !capturedTruncated && (ulong)captured.Length == (i + 1 < 6 ? args[i + 1] : 0))
            {
                list[i] = new DecodedArgument(ArgumentKind.SockAddr, args[i], SockAddrText(captured));
                captured = default;
                continue;
            }
            list[i] = Decode(kinds[i], args[i], i + 1 < 6 ? args[i + 1] : 0, mm);
        }
        return list;
    }

    private DecodedArgument Decode(ArgumentKind kind, ulong raw, ulong next, ulong mm)
    {
        switch (kind)
        {
            case ArgumentKind.Int: return new(kind, raw, ((int)raw).ToString(CultureInfo.InvariantCulture));
            case ArgumentKind.Long: return new(kind, raw, ((long)raw).ToString(CultureInfo.InvariantCulture));
            case ArgumentKind.UInt:
            case ArgumentKind.Size: return new(kind, raw, raw.ToString(CultureInfo.InvariantCulture));
            case ArgumentKind.Fd: return new(kind, raw, ((int)raw).ToString(CultureInfo.InvariantCulture));
            case ArgumentKind.DirFd: return new(kind, raw, (int)raw == -100 ? "AT_FDCWD" : ((int)raw).ToString(CultureInfo.InvariantCulture));
            case ArgumentKind.Mode: return new(kind, raw, "0" + Convert.ToString((long)(raw & 0xffff), 8));
            case ArgumentKind.OpenFlags: return new(kind, raw, OpenFlags(raw));
            case ArgumentKind.AtFlags: return new(kind, raw, AtFlags(raw));
            case ArgumentKind.Prot: return new(kind, raw, Flags(raw, [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")], "PROT_NONE"));
            case ArgumentKind.MapFlags: return new(kind, raw, Flags(raw, [(1, "MAP_SHARED"), (2, "MAP_PRIVATE"), (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100000, "MAP_FIXED_NOREPLACE")], "0"));
            case ArgumentKind.Path:
            {
                string? path = tasks.ReadUserString(mm, raw, out bool truncated);
                return path is null ? new(kind, raw, $"0x{raw:x}") : new(kind, raw, Quote(path) + (truncated ? "..." : ""), Path: path);
            }
            case ArgumentKind.Argv:
            {
                var argv = ReadArgv(mm, raw);
                return argv is null ? new(kind, raw, $"0x{raw:x}") : ArgvArgument(raw, argv);
            }
            case ArgumentKind.SockAddr: return new(kind, raw, SockAddr(mm, raw, next));
            default: return new(kind, raw, raw == 0 ? "NULL" : $"0x{raw:x}");
        }
    }

    public static DecodedArgument ArgvArgument(ulong array, IReadOnlyList<string> argv) =>
        new(ArgumentKind.Argv, array, "[" + string.Join(", ", argv.Select(Quote)) + "]", Argv: argv);

    /// <summary>argv as the process passed it, bounded in entries and bytes; null when the array is unreadable.</summary>
    public IReadOnlyList<string>? ReadArgv(ulong mm, ulong array)
    {
        if (array == 0) return null;
        var list = new List<string>();
        int bytes = 0;
        for (int i = 0; i < limits.MaxTraceArgvEntries; i++)
        {
            if (!tasks.TryReadUserU64(mm, array + (ulong)i * 8, out ulong p)) return list.Count == 0 ? null : list;
            if (p == 0) return list;
            string s = tasks.ReadUserString(mm, p, out _) ?? "?";
            bytes += s.Length;
            if (bytes > limits.MaxTraceArgvBytes) { list.Add("..."); return list; }
            list.Add(s);
        }
        list.Add("...");
        return list;
    }

    private string SockAddr(ulong mm, ulong address, ulong length)
    {
        if (address == 0) return "NULL";
        Span<byte> b = stackalloc byte[110];
        int want = (int)Math.Min(length, (ulong)b.Length);
        if (want < 2 || tasks.ReadUser(mm, address, b[..want]) != want) return $"0x{address:x}";
        return SockAddrText(b[..want]);
    }

    /// <summary>strace's text of a sockaddr's bytes (AF_UNIX, AF_INET, AF_INET6; other families by number).</summary>
    public static string SockAddrText(ReadOnlySpan<byte> b)
    {
        if (b.Length < 2) return "{}";
        int want = b.Length;
        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(b);
        switch (family)
        {
            case 1:   // AF_UNIX
            {
                var path = b[2..];
                bool abstractName = path.Length > 0 && path[0] == 0;
                if (abstractName) path = path[1..];
                int nul = path.IndexOf((byte)0);
                string name = Encoding.UTF8.GetString(nul < 0 ? path : path[..nul]);
                return $"{{sa_family=AF_UNIX, sun_path={(abstractName ? "@" : "")}{Quote(name)}}}";
            }
            case 2 when want >= 8:   // AF_INET
                return $"{{sa_family=AF_INET, sin_port=htons({BinaryPrimitives.ReadUInt16BigEndian(b[2..])}), sin_addr=inet_addr(\"{b[4]}.{b[5]}.{b[6]}.{b[7]}\")}}";
            case 10 when want >= 24:  // AF_INET6
                return $"{{sa_family=AF_INET6, sin6_port=htons({BinaryPrimitives.ReadUInt16BigEndian(b[2..])}), sin6_addr=\"{new System.Net.IPAddress(b.Slice(8, 16))}\"}}";
            default:
                return $"{{sa_family={family}}}";
        }
    }

    private static string OpenFlags(ulong raw)
    {
        string access = (raw & 3) switch { 0 => "O_RDONLY", 1 => "O_WRONLY", 2 => "O_RDWR", _ => "O_ACCMODE" };
        string rest = Flags(raw & ~3UL, [(0x40, "O_CREAT"), (0x80, "O_EXCL"), (0x100, "O_NOCTTY"), (0x200, "O_TRUNC"), (0x400, "O_APPEND"),
            (0x800, "O_NONBLOCK"), (0x10000, "O_DIRECTORY"), (0x20000, "O_NOFOLLOW"), (0x80000, "O_CLOEXEC"), (0x8000, "O_LARGEFILE"), (0x200000, "O_PATH")], "");
        return rest.Length == 0 ? access : access + "|" + rest;
    }

    private static string AtFlags(ulong raw) =>
        Flags(raw, [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH")], "0");

    private static string Flags(ulong raw, (ulong Bit, string Name)[] names, string none)
    {
        if (raw == 0) return none;
        var parts = new List<string>();
        ulong left = raw;
        foreach (var (bit, name) in names)
            if ((raw & bit) == bit) { parts.Add(name); left &= ~bit; }
        if (left != 0) parts.Add($"0x{left:x}");
        return string.Join("|", parts);
    }

    /// <summary>"= 3", "= -1 ENOENT", "= 0x7f..." (addresses from mmap/brk).</summary>
    public static string ReturnText(string? name, long value)
    {
        if (value < 0 && value >= -4095)
        {
            int errno = (int)-value;
            return ErrnoName(errno) is { } e ? $"-1 {e}" : $"-1 errno {errno}";
        }
        return ReturnsAddress(name) ? $"0x{value:x}" : value.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The errno's name ("ENOENT"), or null for a number this table does not name.</summary>
    public static string? ErrnoName(int errno) => s_errno.GetValueOrDefault(errno);

    /// <summary>True for the calls whose return value is an address (shown in hex).</summary>
    public static bool ReturnsAddress(string? name) => name is "mmap" or "brk" or "mremap" or "shmat";

    /// <summary>A C-like quoted string (the CLI escapes terminal controls again on output).</summary>
    public static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20 || c == 0x7f) sb.Append($"\\x{(int)c:x2}");
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
