namespace Periscope.Integrity.Baselines;

/// <summary>
/// A baseline database that cannot be trusted to be what it claims: not a SQLite file, corrupt, a schema we did not
/// create, a value of the wrong type or out of range, or work beyond the store's budget. The message is one line that
/// names the file and, where there is one, the table and row.
/// </summary>
public sealed class BaselineFormatException(string message) : Exception(message);
