using Microsoft.Data.Sqlite;
using Periscope.Cli.Output;
using Periscope.Integrity.Baselines;
using Periscope.Linux.Btf;
using Periscope.Linux.Discovery;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Qemu;

namespace Periscope.Cli;

/// <summary>
/// Turns expected failures (bad input files, guests that are not Linux, unreachable QEMU, usage mistakes) into one-line
/// errors with exit code 2, and anything else into one line naming it an internal error, exit 70. Exceptions that
/// reflect bad guest data reaching unchecked code (OverflowException, ArgumentOutOfRangeException, ArgumentException, ...)
/// are deliberately NOT expected: they are bugs to fix where the data is read, and must stay visible as such.
/// </summary>
internal static class CliErrors
{
    /// <summary>Bad input or usage: the shared scheme's "error" code.</summary>
    public const int ErrorExitCode = 2;

    /// <summary>A bug in Periscope (EX_SOFTWARE of sysexits.h): distinct from every code the commands return.</summary>
    public const int InternalErrorExitCode = 70;

    /// <summary>Set to 1 to get the stack trace of an internal error on stderr.</summary>
    public const string DebugVariable = "PERISCOPE_DEBUG";

    public static bool IsExpected(Exception e) => e switch
    {
        MemoryFormatException or KernelNotFoundException or KernelModelException or BtfFormatException or CliUsageException
            or IOException or UnauthorizedAccessException or TimeoutException or QmpException or SqliteException
            or Periscope.Integrity.Evidence.EvidenceFormatException or BaselineFormatException
            or Periscope.Journal.JournalFormatException or Periscope.Watch.WatchConfigException
            or Periscope.Events.Ring.TraceRingFormatException => true,
        // Generic types: expected only when Periscope threw them on purpose, with a message for the user (a missing
        // kernel symbol or struct member, no matching baseline). Thrown by the BCL (a dictionary indexer, Single(),
        // a collection changed while enumerated) they are bugs.
        KeyNotFoundException or InvalidOperationException => ThrownByPeriscope(e),
        _ => false,
    };

    public static string Describe(Exception e) => TerminalText.Escape(e switch
    {
        FileNotFoundException f => f.Message,
        KernelNotFoundException k => $"no Linux kernel found: {k.Message}",
        SqliteException s => $"baseline database: {s.Message}",
        _ => e.Message,
    });

    /// <summary>The one line printed for an unexpected exception (its message may come from guest data: escaped).</summary>
    public static string DescribeInternal(Exception e) =>
        $"internal error: {e.GetType().FullName}: {TerminalText.Escape(e.Message)} (please report)";

    public static bool DebugRequested() => Environment.GetEnvironmentVariable(DebugVariable) == "1";

    /// <summary>
    /// Whether the innermost frame of <paramref name="e"/>'s stack trace is Periscope's own code. Uses the stack trace
    /// text, which JIT and Native AOT both produce ("   at Namespace.Type.Method(...)"); reflection on frames is not
    /// available under AOT. Without a stack trace the exception counts as unexpected.
    /// </summary>
    internal static bool ThrownByPeriscope(Exception e)
    {
        string? trace = e.StackTrace;
        if (string.IsNullOrEmpty(trace)) return false;
        var first = trace.AsSpan().TrimStart();
        int eol = first.IndexOf('\n');
        if (eol >= 0) first = first[..eol];
        return first.StartsWith("at Periscope.", StringComparison.Ordinal);
    }
}

/// <summary>A mistake in how periscope was called (or what it was pointed at); one line, exit 2.</summary>
public sealed class CliUsageException(string message) : Exception(message);
