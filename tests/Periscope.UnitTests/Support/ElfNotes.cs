using System.Buffers.Binary;
using System.Text;

namespace Periscope.UnitTests.Support;

/// <summary>ELF note records as both ELF classes lay them out: a 12-byte header (name size, descriptor size, type),
/// then name and descriptor, each padded to 4 bytes.</summary>
internal static class ElfNotes
{
    public static byte[] Serialize(IEnumerable<(string Name, uint Type, byte[] Desc)> notes)
    {
        var stream = new MemoryStream();
        foreach (var (name, type, desc) in notes)
        {
            var nb = Encoding.ASCII.GetBytes(name + "\0");
            var h = new byte[12];
            BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)nb.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), (uint)desc.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), type);
            stream.Write(h);
            stream.Write(nb); stream.Write(new byte[(4 - nb.Length % 4) % 4]);
            stream.Write(desc); stream.Write(new byte[(4 - desc.Length % 4) % 4]);
        }
        return stream.ToArray();
    }
}
