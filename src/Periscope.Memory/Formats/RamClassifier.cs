namespace Periscope.Memory.Formats;

/// <summary>
/// QEMU dumps device memory (VGA VRAM, BIOS ROM) as PT_LOADs indistinguishable from RAM. On PC machines RAM is the run
/// that starts at physical 0 (with only the small legacy VGA hole at 0xa0000–0xc0000 in it) plus everything at or
/// above 4 GiB; whatever sits alone in the 32-bit PCI hole is device memory.
/// </summary>
public static class RamClassifier
{
    private const ulong FourGiB = 1UL << 32;
    private const ulong MaxGapInLowRam = 1UL << 20;

    public static IReadOnlyList<FileSegment> Classify(IReadOnlyList<FileSegment> sorted)
    {
        var result = new FileSegment[sorted.Count];
        ulong lowRunEnd = 0;
        bool inLowRun = true;
        for (int i = 0; i < sorted.Count; i++)
        {
            var s = sorted[i];
            bool ram;
            if (s.PhysicalStart >= FourGiB) ram = true;
            else if (inLowRun && s.PhysicalStart <= lowRunEnd + MaxGapInLowRam) { ram = true; lowRunEnd = s.PhysicalEnd; }
            else { ram = false; inLowRun = false; }
            result[i] = s with { Kind = ram ? PhysicalRangeKind.Ram : PhysicalRangeKind.Device };
        }
        return result;
    }
}
