using System.CommandLine;
using Periscope.Cli.Commands;

namespace Periscope.Cli;

/// <summary>The `periscope` command line. Output writers are injected so tests can assert what a user sees.</summary>
public static class CliApp
{
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var common = new CommonOptions();
        var root = new RootCommand("Periscope: introspection of Linux guests from outside, live or from memory dumps, with no profile.");
        common.AddTo(root);
        var context = new CommandContext(common, output, error);
        foreach (var command in new ICliCommand[]
                 {
                     new InfoCommand(), new PsCommand(), new ThreadsCommand(), new ModulesCommand(), new MapsCommand(),
                     new SymbolsCommand(), new BaselineCommand(), new VerifyCommand(), new CheckCommand(), new BenchCommand(), new DemoCommand(),
                 })
        {
            root.Subcommands.Add(command.Build(context));
        }
        var config = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        try
        {
            return root.Parse(args).Invoke(config);
        }
        catch (Exception e) when (CliErrors.IsUserFacing(e))
        {
            error.WriteLine($"periscope: {CliErrors.Describe(e)}");
            return 2;
        }
    }
}
