using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Periscope.Storage;

/// <summary>
/// The parts of opening a SQLite file a user handed us that do not depend on what the file is for (the baseline
/// database, the journal): its header checked before SQLite parses anything, and text from it made safe for a
/// one-line message. The stores keep their own schemas, checks and error types.
/// </summary>
public static class HostileSqlite
{
    /// <summary>Bytes of the database header that <see cref="HeaderProblem"/> needs.</summary>
    public const int HeaderBytes = 100;

    private static ReadOnlySpan<byte> Magic => "SQLite format 3\0"u8;

    /// <summary>Null when <paramref name="header"/> (the file's first bytes) is a SQLite header with a valid page size;
    /// otherwise what is wrong, starting with its offset ("at offset 16: ...").</summary>
    public static string? HeaderProblem(ReadOnlySpan<byte> header)
    {
        if (header.Length < HeaderBytes || !header.StartsWith(Magic)) return "at offset 0: no SQLite header";
        // Page size at offset 16, big-endian: a power of two from 512 to 32768, or 1 meaning 65536.
        int pageSize = header[16] << 8 | header[17];
        if (pageSize != 1 && (pageSize < 512 || (pageSize & (pageSize - 1)) != 0))
            return $"at offset 16: page size {pageSize} is not a power of two from 512 to 65536";
        return null;
    }

    /// <summary>SQL with its whitespace runs made single spaces: how a schema object from the file is compared with ours.</summary>
    public static string NormalizeSql(string sql) => string.Join(' ', sql.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    /// <summary>Text from the file, cut at 200 characters and with control characters escaped, for a message that stays
    /// one line and cannot drive a terminal.</summary>
    public static string OneLine(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s.Length > 200 ? s[..200] + "…" : s) sb.Append(char.IsControl(c) ? $"\\x{(int)c:x2}" : c);
        return sb.ToString();
    }
}

/// <summary>
/// Settings that make a hostile database file inert on one connection — nothing in its schema executes (no triggers,
/// views or untrusted schema functions; defensive mode), values and SQL statements are length-limited — and a budget
/// on the virtual-machine steps its queries may take, so a crafted file cannot make a query run for ever.
/// </summary>
public sealed class SqliteHardening
{
    private const int LimitLength = 0, LimitSqlLength = 1, MaxSqlBytes = 1 << 20;
    private const int DbConfigEnableTrigger = 1003, DbConfigDefensive = 1010, DbConfigEnableView = 1015, DbConfigTrustedSchema = 1017;
    /// <summary>SQLite calls the progress handler every this many virtual-machine instructions.</summary>
    private const int ProgressEveryInstructions = 1_000;

    private readonly long _maxSteps;
    private readonly delegate_progress _progress; // kept alive for as long as SQLite holds the callback
    private long _calls;

    /// <param name="maxSteps">The budget of SQLite virtual-machine steps between two <see cref="ResetBudget"/> calls.</param>
    public SqliteHardening(long maxSteps)
    {
        _maxSteps = maxSteps;
        _progress = _ =>
        {
            if (++_calls * ProgressEveryInstructions <= _maxSteps) return 0;
            BudgetExceeded = true;
            return 1; // SQLite stops the statement with SQLITE_INTERRUPT
        };
    }

    public long MaxSteps => _maxSteps;

    /// <summary>True once a statement was stopped for running past the budget (until <see cref="ResetBudget"/>).</summary>
    public bool BudgetExceeded { get; private set; }

    /// <summary>Applies the settings to an open connection. <paramref name="maxValueBytes"/> caps every string or blob.</summary>
    public void Apply(SqliteConnection db, int maxValueBytes)
    {
        var handle = db.Handle!;
        raw.sqlite3_limit(handle, LimitLength, maxValueBytes);
        raw.sqlite3_limit(handle, LimitSqlLength, MaxSqlBytes);
        raw.sqlite3_db_config(handle, DbConfigDefensive, 1, out _);
        raw.sqlite3_db_config(handle, DbConfigTrustedSchema, 0, out _);
        raw.sqlite3_db_config(handle, DbConfigEnableTrigger, 0, out _);
        raw.sqlite3_db_config(handle, DbConfigEnableView, 0, out _);
        raw.sqlite3_progress_handler(handle, ProgressEveryInstructions, _progress, null);
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA trusted_schema=OFF";
        cmd.ExecuteNonQuery();
    }

    /// <summary>Starts a new budget (per operation, for a store whose operations are independent).</summary>
    public void ResetBudget()
    {
        _calls = 0;
        BudgetExceeded = false;
    }
}
