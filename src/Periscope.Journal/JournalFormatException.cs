namespace Periscope.Journal;

/// <summary>A journal or key file is not what Periscope wrote (not SQLite, foreign schema, bad values, too large).
/// The message names the file and, where there is one, the table and row or byte offset.</summary>
public sealed class JournalFormatException(string message, Exception? inner = null) : Exception(message, inner);
