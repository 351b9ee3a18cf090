using System.Globalization;
using Periscope.Linux.Kallsyms;

namespace Periscope.Cli.Commands;

/// <summary>
/// Addresses as users type them for `struct`, `read` and `deref`: a kernel symbol (<c>init_task</c>), a symbol plus an
/// offset (<c>init_task+0x10</c>), or a hexadecimal number with or without <c>0x</c> (crash's convention: addresses are
/// hex). A name kallsyms knows wins over the same letters read as hex (<c>dead</c> could be either).
/// </summary>
internal static class KernelAddressParser
{
    public static ulong Parse(string text, KernelSymbols? symbols)
    {
        string s = text.Trim();
        ulong offset = 0;
        int plus = s.IndexOf('+');
        if (plus > 0)
        {
            offset = ParseNumber(s[(plus + 1)..], text);
            s = s[..plus];
        }
        if (symbols is not null && symbols.TryGetAddress(s, out ulong address)) return unchecked(address + offset);
        if (TryHex(s, out ulong value)) return unchecked(value + offset);
        throw new CliUsageException(symbols is null
            ? $"'{text}' is not a hexadecimal address"
            : $"'{text}' is neither a kernel symbol nor a hexadecimal address");
    }

    /// <summary>A length or count: decimal, or hexadecimal with 0x.</summary>
    public static ulong ParseNumber(string text, string whole)
    {
        string s = text.Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v)
            : ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v))
            return v;
        throw new CliUsageException($"'{whole}': '{text}' is not a number (decimal, or hexadecimal with 0x)");
    }

    /// <summary>True when <paramref name="text"/> needs no kernel to be understood (a plain hex number).</summary>
    public static bool TryHex(string text, out ulong value)
    {
        var s = text.AsSpan().Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        return ulong.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && s.Length > 0;
    }
}
