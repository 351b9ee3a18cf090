using Microsoft.Data.Sqlite;
using Periscope.Integrity.Evidence;
using Periscope.Memory;

namespace Periscope.Integrity.Baselines;

/// <summary>
/// The evidence of a baseline (what makes a later change legitimate), one compressed blob per baseline in the
/// `evidence` table of the baseline database (schema version 2).
/// </summary>
public static class EvidenceStore
{
    public static void Save(BaselineStore store, long baselineId, EvidenceSnapshot evidence)
    {
        using var cmd = store.Connection.CreateCommand();
        cmd.CommandText = "INSERT OR REPLACE INTO evidence(baseline_id, blob) VALUES($b, $e)";
        cmd.Parameters.AddWithValue("$b", baselineId);
        cmd.Parameters.AddWithValue("$e", EvidenceSerializer.Serialize(evidence));
        cmd.ExecuteNonQuery();
    }

    /// <summary>The evidence stored with a baseline, or null when none was stored.</summary>
    public static EvidenceSnapshot? Load(BaselineStore store, long baselineId, IntrospectionLimits limits)
    {
        using var cmd = store.Connection.CreateCommand();
        cmd.CommandText = "SELECT blob FROM evidence WHERE baseline_id=$b";
        cmd.Parameters.AddWithValue("$b", baselineId);
        object? value;
        try { value = cmd.ExecuteScalar(); }
        catch (SqliteException e) { throw new EvidenceFormatException($"{store.Path}: evidence of baseline {baselineId} cannot be read ({e.Message})"); }
        if (value is null or DBNull) return null;
        if (value is not byte[] blob) throw new EvidenceFormatException($"{store.Path}: evidence of baseline {baselineId} is stored as {value.GetType().Name}, not a blob");
        return EvidenceSerializer.Deserialize(blob, limits, $"{store.Path} baseline {baselineId}");
    }
}
