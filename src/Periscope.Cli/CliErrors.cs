using Periscope.Integrity.Baselines;
using Periscope.Linux.Btf;
using Periscope.Linux.Discovery;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.Cli;

/// <summary>Turns expected failures (bad input files, guests that are not Linux, unreachable QEMU) into one-line errors.</summary>
internal static class CliErrors
{
    public static bool IsUserFacing(Exception e) => e is MemoryFormatException or KernelNotFoundException or KernelModelException
        or BtfFormatException or FileNotFoundException or IOException or UnauthorizedAccessException or TimeoutException
        or CliUsageException or KeyNotFoundException or InvalidOperationException or BaselineFormatException;

    public static string Describe(Exception e) => e switch
    {
        FileNotFoundException f => f.Message,
        KernelNotFoundException k => $"no Linux kernel found: {k.Message}",
        _ => e.Message,
    };
}

public sealed class CliUsageException(string message) : Exception(message);
