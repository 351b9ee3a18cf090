using System.Text;

namespace Periscope.Cli.Output;

/// <summary>
/// Human output: borderless, ps-like tables (each column as wide as its widest cell, two spaces between columns, no
/// trailing blanks, never wrapped), easy to read and to grep. Rendered here rather than by a layout library: a
/// 2,000-process `ps` spent three quarters of its time laying out the table (BENCHMARKS.md, scale section).
/// </summary>
public static class TableWriter
{
    private const int ColumnGap = 2;

    public static PlainTable Plain(params string[] columns) => new(columns);

    /// <summary>Writes the header and every row, one line each; cells must already be escaped (<see cref="Esc"/>).</summary>
    public static void Write(TextWriter output, PlainTable table)
    {
        var widths = new int[table.Columns.Count];
        for (int c = 0; c < widths.Length; c++) widths[c] = table.Columns[c].Length;
        foreach (var row in table.Rows)
            for (int c = 0; c < widths.Length; c++) widths[c] = Math.Max(widths[c], row[c].Length);

        var line = new StringBuilder();
        WriteLine(output, line, table.Columns, widths);
        foreach (var row in table.Rows) WriteLine(output, line, row, widths);
    }

    private static void WriteLine(TextWriter output, StringBuilder line, IReadOnlyList<string> cells, int[] widths)
    {
        line.Clear();
        for (int c = 0; c < cells.Count; c++)
        {
            line.Append(cells[c]);
            if (c < cells.Count - 1) line.Append(' ', widths[c] - cells[c].Length + ColumnGap);
        }
        int end = line.Length;
        while (end > 0 && line[end - 1] == ' ') end--;
        line.Length = end;
        if (end > 0) output.WriteLine(line);
    }

    public static string Hex(ulong v) => $"0x{v:x}";
    /// <summary>A table cell from text the guest controls: controls escaped, so that it stays one line and inert.</summary>
    public static string Esc(string s) => TerminalText.Escape(s);
}

/// <summary>Rows of text cells under named columns; a row with fewer cells than columns is padded with empty ones.</summary>
public sealed class PlainTable(IReadOnlyList<string> columns)
{
    private readonly List<string[]> _rows = [];

    public IReadOnlyList<string> Columns { get; } = columns;
    public IReadOnlyList<string[]> Rows => _rows;

    public PlainTable AddRow(params string[] cells)
    {
        if (cells.Length > Columns.Count) throw new ArgumentException($"{cells.Length} cells for {Columns.Count} columns", nameof(cells));
        var row = new string[Columns.Count];
        for (int c = 0; c < row.Length; c++) row[c] = c < cells.Length ? cells[c] ?? "" : "";
        _rows.Add(row);
        return this;
    }
}
