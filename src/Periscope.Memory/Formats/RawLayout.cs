namespace Periscope.Memory.Formats;

/// <summary>How a raw RAM file maps to guest physical addresses.</summary>
public enum RawLayout
{
    /// <summary>File offset = physical address (a plain raw dump).</summary>
    Flat,
    /// <summary>QEMU q35 RAM backend: below-4G RAM ends at 2 GiB when the guest has more than 2.75 GiB; the rest sits at 4 GiB.</summary>
    Q35,
    /// <summary>QEMU i440fx (pc) RAM backend: below-4G RAM ends at 3.5 GiB.</summary>
    I440fx,
}

public static class RawImage
{
    private const ulong FourGiB = 1UL << 32;

    public static IReadOnlyList<FileSegment> Segments(ulong fileLength, RawLayout layout)
    {
        ulong lowLimit = layout switch
        {
            RawLayout.Q35 => fileLength > 0xb0000000UL ? 0x80000000UL : fileLength,
            RawLayout.I440fx => fileLength > 0xe0000000UL ? 0xe0000000UL : fileLength,
            _ => fileLength,
        };
        var list = new List<FileSegment> { new(0, Math.Min(lowLimit, fileLength), 0, PhysicalRangeKind.Ram) };
        if (fileLength > lowLimit) list.Add(new FileSegment(FourGiB, fileLength - lowLimit, lowLimit, PhysicalRangeKind.Ram));
        return list;
    }
}
