using Periscope.Cli;

namespace Periscope.Tests.Shared;

/// <summary>Runs the periscope command in process with captured output, as a user would see it.</summary>
public static class CliRun
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
