using System.IO.Compression;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Memory;

namespace Periscope.UnitTests.Integrity;

/// <summary>Stored evidence round-trips, and stored data that is not what Periscope wrote is one clear error (or a
/// reason the region is not verified), never an exception from deep inside or an allocation sized by the file.</summary>
public sealed class EvidenceSerializerTests
{
    private static EvidenceSnapshot Sample() => new()
    {
        KernelTextStart = 0xffffffff81000000, KernelTextEnd = 0xffffffff82000000,
        Modules = [new ModuleEvidence(0xffffffffc0003000, "dummy", 0xffffffffc0000000, 0x4000, 0x1000, Hidden: false),
            new ModuleEvidence(0xffffffffc0203000, "dummy", 0xffffffffc0200000, 0x4000, 0x1000, Hidden: true)],
        Symbols = [new CodeSymbol(0xffffffff81001000, 0, "func_a", 0), new CodeSymbol(0xffffffffc0000100, 0x80, "dummy_fn", 0xffffffffc0003000)],
        JumpEntries = [new JumpEntry(0xffffffff81001010, 0xffffffff81001080)],
        StaticCallSites = [0xffffffff81001020], FtraceSites = [0xffffffff81006000, 0xffffffff81007000],
        FtraceOps = [new FtraceOpsEvidence(0xffffffffc0002000, 0xffffffffc0000100, 0xffffffffc0100000, 0x100)],
        FtraceEntryCode = [new CodeRange("ftrace_caller", 0xffffffff81003000, 0xffffffff81003080)],
        FtracePatchSites = [new FtracePatchSite(0xffffffff81003020, "ftrace_call", FtracePatchKind.Call)],
        FtraceDispatchTargets = [0xffffffff81003300], FtraceGraphTargets = [0xffffffff81003500],
        Gaps = [new EvidenceGap(EvidenceFamily.StaticCalls, "module x: static_call_sites unreadable")],
    };

    [Fact]
    public void Evidence_round_trips_through_the_stored_form()
    {
        var e = Sample();
        var back = EvidenceSerializer.Deserialize(EvidenceSerializer.Serialize(e), IntrospectionLimits.Default, "test");
        Assert.Equal(e.KernelTextStart, back.KernelTextStart);
        Assert.Equal(e.KernelTextEnd, back.KernelTextEnd);
        Assert.Equal(e.Modules, back.Modules);
        Assert.Equal(e.Symbols, back.Symbols);
        Assert.Equal(e.JumpEntries, back.JumpEntries);
        Assert.Equal(e.StaticCallSites, back.StaticCallSites);
        Assert.Equal(e.FtraceSites, back.FtraceSites);
        Assert.Equal(e.FtraceOps, back.FtraceOps);
        Assert.Equal(e.FtraceEntryCode, back.FtraceEntryCode);
        Assert.Equal(e.FtracePatchSites, back.FtracePatchSites);
        Assert.Equal(e.FtraceDispatchTargets, back.FtraceDispatchTargets);
        Assert.Equal(e.FtraceGraphTargets, back.FtraceGraphTargets);
        Assert.Equal(e.Gaps, back.Gaps);
    }

    [Fact]
    public void Truncated_evidence_is_one_error_naming_the_source()
    {
        var raw = Decompress(EvidenceSerializer.Serialize(Sample()));
        var e = Assert.Throws<EvidenceFormatException>(() => EvidenceSerializer.Deserialize(Compress(raw[..(raw.Length / 2)]), IntrospectionLimits.Default, "db.sqlite baseline 7"));
        Assert.StartsWith("db.sqlite baseline 7: ", e.Message);
    }

    [Fact]
    public void A_huge_count_is_refused_before_allocating()
    {
        var raw = Decompress(EvidenceSerializer.Serialize(Sample()));
        // The module count sits right after magic, version and the two text bounds.
        BitConverter.TryWriteBytes(raw.AsSpan(24), int.MaxValue);
        var e = Assert.Throws<EvidenceFormatException>(() => EvidenceSerializer.Deserialize(Compress(raw), IntrospectionLimits.Default, "db"));
        Assert.Contains($"list of {int.MaxValue} entries does not fit", e.Message);
    }

    [Fact]
    public void Random_bytes_and_oversized_blobs_are_refused()
    {
        var random = new byte[4096];
        new Random(7).NextBytes(random);
        Assert.Throws<EvidenceFormatException>(() => EvidenceSerializer.Deserialize(random, IntrospectionLimits.Default, "db"));
        var zeros = Compress(new byte[1 << 20]);
        var e = Assert.Throws<EvidenceFormatException>(() => EvidenceSerializer.Deserialize(zeros, IntrospectionLimits.Default with { MaxEvidenceBytes = 1 << 16 }, "db"));
        Assert.Contains("more than 65536 bytes (the limit)", e.Message);
    }

    /// <summary>Issue 6 #4: a stored page length of 100,000 (content of that length, one byte changed) made the
    /// disassembly of a finding index past its buffer.</summary>
    [Fact]
    public void A_stored_page_longer_than_a_page_is_rejected_and_never_copied()
    {
        var region = new MeasuredRegion("kernel text", RegionKind.KernelText, 0xffffffff81000000, 0x2000);
        var content = new byte[100_000];
        content[10] = 0xcc;
        var stored = new RegionMeasurement(region,
        [
            new PageMeasurement(0, 0xffffffff81000000, 0x1000000, 100_000, 1, null, content),
            new PageMeasurement(1, 0xffffffff81001000, 0x1001000, 4096, 2, null, new byte[4096]),
        ]);
        Assert.Contains("stored page 0", Verifier.ValidatePages(stored));
        var window = new byte[64];
        window.AsSpan().Fill(0x90);
        Verifier.CopyStored(stored.Pages, 0xffffffff81000ff0, window);
        Assert.All(window.AsSpan(0, 16).ToArray(), b => Assert.Equal(0x90, b));   // the bad page is ignored
        Assert.All(window.AsSpan(16, 48).ToArray(), b => Assert.Equal(0, b));     // the good one is copied
        var good = stored with { Pages = [stored.Pages[0] with { Length = 4096, Content = new byte[4096] }, stored.Pages[1]] };
        Assert.Null(Verifier.ValidatePages(good));
    }

    private static byte[] Decompress(byte[] blob)
    {
        using var input = new BrotliStream(new MemoryStream(blob), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }

    private static byte[] Compress(byte[] raw)
    {
        using var output = new MemoryStream();
        using (var b = new BrotliStream(output, CompressionLevel.Fastest, leaveOpen: true)) b.Write(raw);
        return output.ToArray();
    }
}
