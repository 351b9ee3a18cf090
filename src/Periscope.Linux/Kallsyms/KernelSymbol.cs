namespace Periscope.Linux.Kallsyms;

/// <summary>One kallsyms entry: the run-time address, the nm-style type letter and the name.</summary>
/// <remarks><see cref="ToString"/> prints the entry the way <c>/proc/kallsyms</c> does.</remarks>
public readonly record struct KernelSymbol(ulong Address, char Type, string Name)
{
    public override string ToString() => $"{Address:x16} {Type} {Name}";
}
