using System.CommandLine;

namespace Periscope.Cli.Commands;

public interface ICliCommand
{
    Command Build(CommandContext context);
}
