using Microsoft.Data.Sqlite;
using Periscope.Cli.Commands;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Tests.Shared;

namespace Periscope.UnitTests.Integrity;

/// <summary>The shared exit-code scheme of verify, guest text made harmless in its output, and the schema version.</summary>
public sealed class VerifyOutcomeTests
{
    private static Finding Make(Severity severity) => new()
    {
        Region = "kernel text", Kind = RegionKind.KernelText, VirtualAddress = 0xffffffff81000000, Location = "x", Expected = [], Found = [],
        Classification = Classification.StaticKeyFlipped, Severity = severity,
    };

    [Theory]
    [InlineData(new Severity[0], 0, 0)]
    [InlineData(new[] { Severity.Info }, 0, 0)]
    [InlineData(new[] { Severity.Info }, 1, 3)]
    [InlineData(new Severity[0], 2, 3)]
    [InlineData(new[] { Severity.Warning }, 0, 1)]
    [InlineData(new[] { Severity.Info, Severity.Critical }, 1, 1)]
    public void Exit_code_is_0_clean_1_findings_3_incomplete(Severity[] severities, int reasons, int expected)
    {
        var result = new VerificationResult(severities.Select(Make).ToList(), 1, 1, 4096, 1)
        {
            Incomplete = Enumerable.Range(0, reasons).Select(i => $"reason {i}").ToList(),
        };
        Assert.Equal(expected, VerifyCommand.ExitCode(result));
        Assert.Equal(reasons == 0, result.Complete);
    }

    [Fact]
    public void Control_characters_from_the_guest_are_shown_escaped()
    {
        Assert.Equal("module \\x1b]0;pwned\\x07x", VerifyCommand.Safe("module \u001b]0;pwned\u0007x"));
        Assert.Equal("a\\x1b[2Jb\nc", VerifyCommand.Safe("a\u001b[2Jb\nc"));
        Assert.Equal("plain", VerifyCommand.Safe("plain"));
    }
}
