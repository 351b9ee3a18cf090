using System.Diagnostics.CodeAnalysis;

namespace Periscope.Memory;

/// <summary>A memory image or guest structure is malformed. The message names the file (or guest address) and offset.</summary>
public sealed class MemoryFormatException : Exception
{
    public MemoryFormatException(string message) : base(message) { }
    public MemoryFormatException(string message, Exception inner) : base(message, inner) { }
}

internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void Format(string file, ulong offset, string what) =>
        throw new MemoryFormatException($"{file}: at offset 0x{offset:x}: {what}");

    [DoesNotReturn]
    public static void Format(string file, string what) =>
        throw new MemoryFormatException($"{file}: {what}");
}
