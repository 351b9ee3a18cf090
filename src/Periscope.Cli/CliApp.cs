using System.CommandLine;
using Periscope.Cli.Commands;
using Periscope.Cli.Output;

namespace Periscope.Cli;

/// <summary>The `periscope` command line. Output writers are injected so tests can assert what a user sees.</summary>
public static class CliApp
{
    /// <summary>
    /// Runs one command. Everything printed goes through <see cref="TerminalSafeWriter"/> (guest text cannot drive the
    /// terminal). Usage errors and expected failures are one line on stderr with exit 2; anything unexpected is one
    /// "internal error" line with exit 70 (the stack trace too when PERISCOPE_DEBUG=1), never an abort.
    /// </summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var safeOutput = TerminalSafeWriter.Wrap(output);
        var safeError = TerminalSafeWriter.Wrap(error);
        try
        {
            return Execute(args, safeOutput, safeError);
        }
        catch (Exception e) when (CliErrors.IsExpected(e))
        {
            safeError.WriteLine($"periscope: {CliErrors.Describe(e)}");
            return CliErrors.ErrorExitCode;
        }
        catch (Exception e)
        {
            safeError.WriteLine($"periscope: {CliErrors.DescribeInternal(e)}");
            if (CliErrors.DebugRequested()) safeError.WriteLine(e.ToString());
            return CliErrors.InternalErrorExitCode;
        }
        finally
        {
            safeOutput.Flush();
            safeError.Flush();
        }
    }

    private static int Execute(string[] args, TextWriter output, TextWriter error)
    {
        var common = new CommonOptions();
        var root = new RootCommand("Periscope: introspection of Linux guests from outside, live or from memory dumps, with no profile.");
        common.AddTo(root);
        var context = new CommandContext(common, output, error);
        foreach (var command in new ICliCommand[]
                 {
                     new InfoCommand(),
                     new PsCommand(),
                     new ThreadsCommand(),
                     new PsxviewCommand(),
                     new LsofCommand(),
                     new SocketsCommand(),
                     new BpfCommand(),
                     new DumpCommand(),
                     new ModulesCommand(),
                     new MapsCommand(),
                     new SymbolsCommand(),
                     new ProfileCommand(),
                     new BaselineCommand(),
                     new VerifyCommand(),
                     new CheckCommand(),
                     new BenchCommand(),
                     new DemoCommand(),
                     new RecordCommand(),
                     new ReplayCommand(),
                     new RecordingCommand(),
                     new JournalCommand(),
                     new WatchCommand(),
                     new StructCommand(),
                     new ReadCommand(),
                     new DerefCommand(),
                     new DmesgCommand(),
                     new NamespacesCommand(),
                     new MountsCommand(),
                     new TimelineCommand(),
                     new TraceCommand(),
                 })
        {
            root.Subcommands.Add(command.Build(context));
        }
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One line and a pointer to the help, not the whole help text: the mistake stays visible.
            error.WriteLine($"periscope: {TerminalText.Escape(parse.Errors[0].Message)}");
            error.WriteLine($"see '{CommandPath(parse)} --help'");
            return CliErrors.ErrorExitCode;
        }
        var config = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        return parse.Invoke(config);
    }

    /// <summary>"periscope baseline create": the command the user typed, for the hint line.</summary>
    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var c = parse.CommandResult; c is not null && c.Command is not RootCommand; c = c.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(c.Command.Name);
        names.Add("periscope");
        names.Reverse();
        return string.Join(' ', names);
    }
}
