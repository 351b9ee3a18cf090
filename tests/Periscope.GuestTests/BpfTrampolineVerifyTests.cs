using System.Globalization;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Verification;
using Periscope.Targets;
using Xunit.Abstractions;

namespace Periscope.GuestTests;

/// <summary>
/// verify against a legitimate fentry program attached after the baseline (`bpfload fentry`, alone on its function, so
/// the function's ftrace site calls the bpf trampoline's image directly): the changed ftrace site is a "bpf trampoline
/// attached" warning naming the trampoline and the program as the guest's own BPF_OBJ_GET_INFO_BY_FD gives them, not a
/// critical hook; when the tamper module unlinks that program from prog_idr, the same call is critical; and when it
/// rewrites one call of the live trampoline image to its own function, the image is no trampoline code: critical with
/// the program still listed. Shares the tamper guest (no boot of its own); each test takes its own baseline before the
/// loader starts and ends the loader.
/// </summary>
[Collection("tamper guest")]
public sealed class BpfTrampolineVerifyTests(TamperGuest guest, ITestOutputHelper output) : IDisposable
{
    /// <summary>A kernel function with a BTF id and an ftrace site that no other test of this guest traces.</summary>
    private const string Function = "do_sys_openat2";
    private readonly string _db = Path.Combine(guest.Guest.WorkDirectory, $"bpf-verify-{Guid.NewGuid():n}.db");
    private readonly Target _live = guest.AttachLive();

    public void Dispose()
    {
        _live.Dispose();
        File.Delete(_db);
    }

    [Fact]
    public void A_listed_fentry_program_attached_after_the_baseline_is_a_warning_naming_its_trampoline()
    {
        StopLoader();
        var baseline = Baseline();
        try
        {
            uint id = StartLoader();
            string tag = GuestTag(id);
            var findings = Verify(baseline);
            var f = Assert.Single(findings, x => x.Kind != Periscope.Integrity.Regions.RegionKind.Evidence && x.Location.StartsWith(Function, StringComparison.Ordinal));
            Assert.True(f.Classification == Classification.BpfTrampolineAttached, $"{f.Classification} {f.Severity}: {f.Detail}");
            Assert.Equal(Severity.Warning, f.Severity);
            Assert.Contains(f.VirtualAddress - guest.Symbol(Function), new ulong[] { 0, 4 });
            Assert.Contains($"(for {Function}, image 0x", f.Detail);
            Assert.Contains($"for fentry program {id} (pscope_fv, tracing, tag {tag}); attached since the baseline", f.Detail);
            Assert.Equal(CodeOwnerKind.Unowned, f.Destination!.Owner);
            Assert.StartsWith("bpf_trampoline_", f.Destination.Description, StringComparison.Ordinal);
            Assert.Empty(Critical(findings));
        }
        finally
        {
            StopLoader();
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void An_fentry_program_hidden_from_prog_idr_stays_critical()
    {
        StopLoader();
        var baseline = Baseline();
        try
        {
            uint id = StartLoader();
            TamperReport.Parse(guest.Tamper($"hidebpf {id}")[0], "hidebpf");
            Assert.DoesNotContain($"prog {id} ", guest.Run("/bin/bpfload list"));
            var findings = Verify(baseline);
            var f = Assert.Single(findings, x => x.Kind != Periscope.Integrity.Regions.RegionKind.Evidence && x.Location.StartsWith(Function, StringComparison.Ordinal));
            Assert.True(f.Classification == Classification.HiddenBpfProgramAttached, $"{f.Classification} {f.Severity}: {f.Detail}");
            Assert.Equal(Severity.Critical, f.Severity);
            Assert.Contains($"fentry program {id} (pscope_fv, tracing, tag ", f.Detail);
            Assert.Contains("NOT in prog_idr", f.Detail);
        }
        finally
        {
            guest.Restore();
            StopLoader();
        }
        guest.AssertKernelHealthy();
    }

    [Fact]
    public void A_trampoline_image_rewritten_to_call_elsewhere_is_critical_though_its_program_stays_listed()
    {
        StopLoader();
        var baseline = Baseline();
        try
        {
            uint id = StartLoader();
            // One call in the live image (to __bpf_prog_exit* or enter*) now goes to a function of the tamper module.
            var r = TamperReport.Parse(guest.Tamper($"bpftramp {Function}")[0], "bpftramp");
            ulong image = r.Hex("image"), call = r.Hex("call"), helper = r.Hex("new");
            Assert.Contains($"prog {id} ", guest.Run("/bin/bpfload list"));
            var findings = Verify(baseline);
            var f = Assert.Single(findings, x => x.Kind != Periscope.Integrity.Regions.RegionKind.Evidence && x.Location.StartsWith(Function, StringComparison.Ordinal));
            Assert.True(f.Classification == Classification.BpfTrampolineForged, $"{f.Classification} {f.Severity}: {f.Detail}");
            Assert.Equal(Severity.Critical, f.Severity);
            Assert.Contains($"image 0x{image:x} ", f.Detail);
            Assert.Contains($"the image is not trampoline code: +0x{call - image:x} call ", f.Detail);
            Assert.Equal((CodeOwnerKind.ListedModule, helper), (f.Destination!.Owner, f.Destination.Address));
            // The image itself, found by the pass over every trampoline (also when no changed site leads to it).
            var e = Assert.Single(findings, x => x.Classification == Classification.BpfTrampolineForged && x.Kind == Periscope.Integrity.Regions.RegionKind.Evidence);
            Assert.Equal((Severity.Critical, image, $"bpf trampoline {Function}"), (e.Severity, e.VirtualAddress, e.Location));
            Assert.Contains($"+0x{call - image:x} call ", e.Detail);
        }
        finally
        {
            guest.Restore();
            StopLoader();
        }
        guest.AssertKernelHealthy();
    }

    private (StoredBaseline Regions, EvidenceSnapshot Evidence) Baseline()
    {
        using var pause = _live.Pause();
        _live.Kernel.Refresh();
        using var store = BaselineStore.Open(_db);
        var summary = BaselineRecorder.Record(_live.Kernel, store, "bpf trampoline test");
        return (store.Latest(summary.BuildId, _live.Kernel.Layout.TextVa)!, EvidenceStore.Load(store, summary.Id, _live.Kernel.Limits)!);
    }

    private List<Finding> Verify((StoredBaseline Regions, EvidenceSnapshot Evidence) baseline)
    {
        using var pause = _live.Pause();
        _live.Kernel.Refresh();
        var result = Verifier.Verify(_live.Kernel, baseline.Regions, baseline.Evidence);
        foreach (var reason in result.Incomplete) output.WriteLine($"incomplete: {reason}");
        foreach (var f in result.Findings) output.WriteLine($"{f.Severity} {f.Classification} {f.Location} 0x{f.VirtualAddress:x} {f.Detail}");
        return [.. result.Findings];
    }

    private static IEnumerable<Finding> Critical(IEnumerable<Finding> findings) =>
        findings.Where(f => f.Severity == Severity.Critical && f.Classification != Classifications.RegionGone);

    /// <summary>Starts `/bin/bpfload fentry FUNCTION`, waits (bounded; early when the loader exits) until it says the
    /// program is attached, and returns the id it printed.</summary>
    private uint StartLoader()
    {
        string attached = guest.Run($"/bin/bpfload fentry {Function} > /tmp/bpfload-fentry.out 2>&1 & p=$!; i=0; "
                                    + "while [ ! -e /tmp/bpfload-fentry.ready ] && kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do sleep 1; i=$((i + 1)); done; cat /tmp/bpfload-fentry.out");
        var line = attached.Split('\n').Select(l => l.Trim().Split(' ')).FirstOrDefault(f => f is ["attach", "fentry", _]);
        Assert.True(line is not null, attached);
        return uint.Parse(line[2], CultureInfo.InvariantCulture);
    }

    /// <summary>The program's tag as the guest's own BPF_OBJ_GET_INFO_BY_FD gives it ("prog ID TYPE NAME TAG ...").</summary>
    private string GuestTag(uint id)
    {
        var fields = guest.Run("/bin/bpfload list").Split('\n').Select(l => l.Trim().Split(' '))
            .Single(f => f.Length >= 5 && f[0] == "prog" && f[1] == id.ToString(CultureInfo.InvariantCulture));
        Assert.Equal("pscope_fv", fields[3]);
        return fields[4];
    }

    /// <summary>Ends `bpfload fentry` and waits, bounded, until the kernel lists its program no more (its link, and with
    /// it the patched call, is released before the program leaves prog_idr).</summary>
    private void StopLoader()
    {
        string left = guest.Run("for p in $(pidof bpfload); do grep -q fentry /proc/$p/cmdline 2>/dev/null && kill $p; done; i=0; "
                                + "while /bin/bpfload list | grep -q ' pscope_fv ' && [ $i -lt 50 ]; do sleep 1; i=$((i + 1)); done; "
                                + "rm -f /tmp/bpfload-fentry.ready; /bin/bpfload list | grep ' pscope_fv ' || true");
        Assert.True(left.Trim().Length == 0, $"bpfload fentry's program is still loaded: {left}");
    }
}
