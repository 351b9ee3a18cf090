using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Periscope.Linux.Model;

namespace Periscope.Linux;

/// <summary>
/// Which kernel build this is: the GNU build-id note the linker put in the image (read from guest memory between
/// __start_notes and __stop_notes), or, if the kernel has none, a hash of the banner. Baselines are keyed by it.
/// </summary>
public static class KernelIdentity
{
    public static string BuildId(LinuxKernel kernel)
    {
        if (kernel.Symbols.TryGetAddress("__start_notes", out ulong start) && kernel.Symbols.TryGetAddress("__stop_notes", out ulong stop)
            && stop > start && stop - start <= (ulong)kernel.Limits.MaxKernelNotesBytes)
        {
            var notes = new byte[stop - start];
            // Unreadable notes (a guest caught early in its boot) are not "no build id": keying by the banner then would
            // give the same kernel a second identity for one read, so the caller fails this attempt instead.
            if (kernel.KernelSpace.Read(start, notes) != notes.Length)
                throw new KernelModelException($"the kernel's notes at 0x{start:x} ({notes.Length} bytes) are unreadable: its build id cannot be read");
            if (FindGnuBuildId(notes) is { } id) return id;
        }
        return "banner-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(kernel.Banner)))[..40];
    }

    /// <summary>Walks ELF notes {namesz, descsz, type, name, desc} looking for NT_GNU_BUILD_ID (3) named "GNU".</summary>
    public static string? FindGnuBuildId(ReadOnlySpan<byte> notes)
    {
        int pos = 0;
        while (notes.Length - pos >= 12)
        {
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(notes[pos..]);
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(notes[(pos + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes[(pos + 8)..]);
            long nameStart = pos + 12, descStart = nameStart + ((namesz + 3) & ~3L), next = descStart + ((descsz + 3) & ~3L);
            if (namesz > 4096 || descsz > 4096 || next > notes.Length) return null;
            if (type == 3 && namesz == 4 && notes.Slice((int)nameStart, 3).SequenceEqual("GNU"u8) && descsz is > 0 and <= 64)
                return Convert.ToHexStringLower(notes.Slice((int)descStart, (int)descsz));
            pos = (int)next;
        }
        return null;
    }
}
