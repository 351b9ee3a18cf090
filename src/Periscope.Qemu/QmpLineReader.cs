using System.Diagnostics.CodeAnalysis;

namespace Periscope.Qemu;

/// <summary>
/// Reads newline-terminated lines from a QMP socket with a cap on their length: QEMU's side of the socket is as
/// hostile as the guest (a compromised QEMU can send one endless line), and a StreamReader would buffer all of it.
/// A line longer than the cap is an <see cref="IOException"/> naming the socket and the limit; the connection is not
/// usable afterwards.
/// </summary>
public sealed class QmpLineReader(Stream stream, int maxLineBytes, string source)
{
    private readonly byte[] _chunk = new byte[4096];
    private int _start, _end;
    private byte[] _line = new byte[Math.Min(4096, maxLineBytes)];

    public int MaxLineBytes => maxLineBytes;

    /// <summary>The next line without its "\n" (a trailing "\r" is dropped too), or null at the end of the stream.
    /// A last line without a newline is returned as it is.</summary>
    public ReadOnlyMemory<byte>? ReadLine()
    {
        int length = 0;
        while (true)
        {
            if (_start == _end)
            {
                _start = 0;
                _end = stream.Read(_chunk, 0, _chunk.Length);
                if (_end == 0) return length == 0 ? (ReadOnlyMemory<byte>?)null : Trim(length); // typed: null would convert to an empty memory
            }
            int newline = Array.IndexOf(_chunk, (byte)'\n', _start, _end - _start);
            int take = (newline < 0 ? _end : newline) - _start;
            if ((long)length + take > maxLineBytes) ThrowTooLong();
            if (length + take > _line.Length) Array.Resize(ref _line, (int)Math.Min(maxLineBytes, Math.Max((long)_line.Length * 2, length + take)));
            Array.Copy(_chunk, _start, _line, length, take);
            length += take;
            if (newline >= 0)
            {
                _start = newline + 1;
                return Trim(length);
            }
            _start = _end;
        }
    }

    private ReadOnlyMemory<byte> Trim(int length) => _line.AsMemory(0, length > 0 && _line[length - 1] == '\r' ? length - 1 : length);

    [DoesNotReturn]
    private void ThrowTooLong() =>
        throw new IOException($"{source}: QMP sent a line longer than {maxLineBytes} bytes (IntrospectionLimits.MaxQmpLineBytes); not reading further");
}
