using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.Targets;

public sealed record TargetVerificationResult(StoredBaseline Baseline, VerificationResult Result, ProcessCodeResult ProcessCode);

/// <summary>
/// Verification of a whole target against its newest matching baseline and that baseline's evidence: kernel regions,
/// allow-lists and process code. On a live guest the first pass runs unpaused; anything it finds (or first sees) is
/// re-read with the vCPUs stopped before it is reported or recorded, so a torn read never becomes a finding or a reference.
/// </summary>
public static class TargetVerification
{
    public static TargetVerificationResult Verify(Target target, BaselineStore store)
    {
        var kernel = target.Kernel;
        string buildId = KernelIdentity.BuildId(kernel);
        // Page contents stay compressed until a changed page needs them (to show the expected bytes).
        var baseline = store.Latest(buildId, kernel.Layout.TextVa, lazyContent: true)
            ?? throw new InvalidOperationException($"no baseline in {store.Path} for kernel build {buildId} with _text at 0x{kernel.Layout.TextVa:x} (different kernel or a new boot?)");
        var evidence = EvidenceStore.Load(store, baseline.Info.Id, kernel.Limits);
        var result = Run(kernel, baseline, evidence, store, record: !target.IsLive, out var code);
        if (target.IsLive && (result.Findings.Count > 0 || code.FirstSeen > 0))
        {
            using (target.Pause())
            {
                kernel.Refresh();
                result = Run(kernel, baseline, evidence, store, record: true, out code);
            }
        }
        return new TargetVerificationResult(baseline, result, code);
    }

    private static VerificationResult Run(LinuxKernel kernel, StoredBaseline baseline, EvidenceSnapshot? evidence, BaselineStore store, bool record, out ProcessCodeResult code)
    {
        var result = Verifier.Verify(kernel, baseline, evidence);
        code = ProcessCodeVerifier.Verify(kernel, store, record);
        return result with
        {
            Findings = [.. result.Findings, .. code.Findings], BytesChecked = result.BytesChecked + code.Bytes,
            // A walk of the kernel model that was cut short (budget, corrupt list) leaves regions or processes unseen.
            Incomplete = [.. result.Incomplete, .. code.Incomplete.Select(reason => $"process code: {reason}"),
                .. kernel.IncompleteReasons.Select(reason => $"kernel model: {reason}")],
        };
    }
}
