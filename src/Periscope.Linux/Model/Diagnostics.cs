namespace Periscope.Linux.Model;

/// <summary>
/// Problems found while reading hostile guest structures: a bad pointer, a cycle, a cap reached. Walks report here
/// and carry on with what they could read instead of throwing (lenient parsing, like AsmResolver's error listener).
/// A problem that left something out of a result (a walk cut short, an object rejected) is reported with
/// <see cref="ReportIncomplete"/>: the kernel model is then incomplete, which callers must not read as clean.
/// </summary>
public sealed class Diagnostics
{
    private readonly List<Diagnostic> _items = [];
    private const int MaxItems = 10_000;
    private int _dropped;
    private bool _incomplete;

    public IReadOnlyList<Diagnostic> Items { get { lock (_items) return _items.ToArray(); } }

    /// <summary>Diagnostics beyond the first 10,000 are counted, not kept.</summary>
    public int Dropped { get { lock (_items) return _dropped; } }

    /// <summary>True once any result lost something (kept even when the item itself was dropped).</summary>
    public bool IsIncomplete { get { lock (_items) return _incomplete; } }

    /// <summary>An inconsistency that did not cost any result (for example a list_head whose prev disagrees).</summary>
    public void Report(string area, string message, ulong? address = null) => Add(new Diagnostic(area, message, address));

    /// <summary>A problem that made a result incomplete: a walk stopped early, an object was rejected, a budget ran out.</summary>
    public void ReportIncomplete(string area, string message, ulong? address = null) =>
        Add(new Diagnostic(area, message, address, Incomplete: true));

    private void Add(Diagnostic d)
    {
        lock (_items)
        {
            _incomplete |= d.Incomplete;
            if (_items.Count < MaxItems) _items.Add(d);
            else _dropped++;
        }
    }
}

/// <param name="Incomplete">The problem left something out of a result (see <see cref="Diagnostics.ReportIncomplete"/>).</param>
public sealed record Diagnostic(string Area, string Message, ulong? Address, bool Incomplete = false)
{
    public override string ToString() => Address is { } a ? $"{Area}: {Message} (at 0x{a:x})" : $"{Area}: {Message}";
}
