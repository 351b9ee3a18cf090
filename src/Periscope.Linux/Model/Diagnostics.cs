namespace Periscope.Linux.Model;

/// <summary>
/// Problems found while reading hostile guest structures: a bad pointer, a cycle, a cap reached. Walks report here
/// and carry on with what they could read instead of throwing (lenient parsing, like AsmResolver's error listener).
/// </summary>
public sealed class Diagnostics
{
    private readonly List<Diagnostic> _items = [];
    private const int MaxItems = 10_000;

    public IReadOnlyList<Diagnostic> Items { get { lock (_items) return _items.ToArray(); } }

    public void Report(string area, string message, ulong? address = null)
    {
        lock (_items)
        {
            if (_items.Count < MaxItems) _items.Add(new Diagnostic(area, message, address));
        }
    }
}

public sealed record Diagnostic(string Area, string Message, ulong? Address)
{
    public override string ToString() => Address is { } a ? $"{Area}: {Message} (at 0x{a:x})" : $"{Area}: {Message}";
}
