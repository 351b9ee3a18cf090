namespace Periscope.Linux.Objects;

/// <summary>One value of an object printout: a member, an array element or a followed pointer's target.</summary>
/// <param name="Name">Member name, <c>[i]</c> for an element, <c>*</c> for a pointer's target, empty for the root or an anonymous member.</param>
/// <param name="Value">The value as text for scalars and char arrays; null for structs, unions and arrays (see Children).</param>
/// <param name="Error">Why the value is missing (unreadable memory, a NULL pointer, a budget), or null.</param>
/// <param name="Cut">True when children were left out (depth, element or node limit, a pointer cycle).</param>
/// <param name="Text">For a char array: its text as read (unquoted); null otherwise.</param>
public sealed record ObjectNode(string Name, string TypeName, ObjectKind Kind, ulong Address, int BitOffset, int BitSize,
    string? Value, IReadOnlyList<ObjectNode> Children, string? Error, bool Cut)
{
    public string? Text { get; init; }
}

/// <summary>What an object printout expands.</summary>
public sealed record ObjectPrintOptions
{
    /// <summary>Levels of embedded structs, unions and arrays expanded below the root (capped by MaxObjectPrintDepth).</summary>
    public int Depth { get; init; } = 8;

    /// <summary>Pointer members followed (by member name, at any level); each prints its target as a child named "*".</summary>
    public IReadOnlySet<string> Follow { get; init; } = new HashSet<string>();

    /// <summary>Elements shown per array (capped by MaxObjectArrayElements).</summary>
    public int MaxArrayElements { get; init; } = 64;
}

/// <summary>
/// Builds a bounded tree of an object's values for printing (drgn's object formatting): depth, elements per array and
/// nodes in all are capped by <see cref="Periscope.Memory.IntrospectionLimits"/>, followed pointers are checked for
/// cycles, and a value that cannot be read becomes an error on its node, never an exception.
/// </summary>
public sealed class ObjectTree
{
    private readonly ObjectPrintOptions _options;
    private readonly int _depth;
    private readonly int _elements;
    private readonly HashSet<(ulong, int)> _followed = [];
    private int _nodes;

    private ObjectTree(KernelObjects space, ObjectPrintOptions options)
    {
        _options = options;
        _depth = Math.Clamp(options.Depth, 0, space.Limits.MaxObjectPrintDepth);
        _elements = Math.Clamp(options.MaxArrayElements, 0, space.Limits.MaxObjectArrayElements);
        _nodes = space.Limits.MaxObjectPrintNodes;
    }

    /// <summary>True when some node was cut for the node limit (the printout is incomplete).</summary>
    public bool NodeLimitReached { get; private set; }

    public static ObjectNode Build(KernelObject root, ObjectPrintOptions? options = null) => Build(root, options, out _);

    public static ObjectNode Build(KernelObject root, ObjectPrintOptions? options, out bool nodeLimitReached)
    {
        ArgumentNullException.ThrowIfNull(root);
        var tree = new ObjectTree(root.Space, options ?? new ObjectPrintOptions());
        tree._followed.Add((root.Address, root.Type.ResolvedId));
        var node = tree.Node("", root, 0);
        nodeLimitReached = tree.NodeLimitReached;
        return node;
    }

    private ObjectNode Node(string name, KernelObject obj, int depth)
    {
        _nodes--;
        var type = obj.Type;
        ObjectNode Leaf(string? value, string? error, bool cut = false) =>
            new(name, type.Name, type.Kind, obj.Address, obj.BitOffset, obj.BitSize, value, [], error, cut);
        try
        {
            if (type.IsComposite || (type.Kind == ObjectKind.Array && !obj.IsCharArray))
            {
                if (depth >= _depth) return Leaf(null, null, cut: true);
                var children = new List<ObjectNode>();
                bool cut = false;
                if (type.IsComposite)
                {
                    foreach (var (memberName, member) in obj.Members())
                    {
                        if (_nodes <= 0) { cut = NodeLimitReached = true; break; }
                        children.Add(Node(memberName, member, depth + 1));
                    }
                }
                else
                {
                    long count = type.Length;
                    long shown = Math.Min(count, _elements);
                    for (long i = 0; i < shown; i++)
                    {
                        if (_nodes <= 0) { NodeLimitReached = true; break; }
                        children.Add(Node($"[{i}]", obj.Element(i), depth + 1));
                    }
                    cut = children.Count < count;
                }
                return new ObjectNode(name, type.Name, type.Kind, obj.Address, 0, 0, null, children, null, cut);
            }
            if (type.Kind is ObjectKind.Void or ObjectKind.Function or ObjectKind.Opaque) return Leaf(null, null);
            if (obj.IsCharArray)
            {
                string text = obj.ReadString(int.MaxValue);
                return Leaf(KernelObject.Quote(text), null) with { Text = text };
            }
            string? value = obj.FormatValue();
            if (type.Kind == ObjectKind.Pointer && _options.Follow.Contains(name) && depth < _depth && _nodes > 0)
            {
                var target = obj.Space.Type(type.TargetId);
                if (target.Kind is ObjectKind.Void or ObjectKind.Function or ObjectKind.Opaque)
                    return Leaf(value, null);
                ulong p = obj.ReadPointer();
                if (p == 0) return Leaf(value, null);
                if (!_followed.Add((p, target.ResolvedId))) return Leaf(value, "already shown above (a pointer cycle)", cut: true);
                var child = Node("*", obj.Deref(), depth + 1);
                return new ObjectNode(name, type.Name, type.Kind, obj.Address, 0, 0, value, [child], null, false);
            }
            return Leaf(value, null);
        }
        catch (ObjectFaultException e)
        {
            return Leaf(null, e.Message);
        }
    }
}
