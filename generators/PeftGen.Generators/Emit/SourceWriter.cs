using System.Text;

namespace PeftGen.Generators.Emit;

/// <summary>Writes C# source with indentation managed for the caller (after STJ's SourceWriter).</summary>
internal sealed class SourceWriter
{
    private const int IndentSize = 4;
    private readonly StringBuilder builder = new();

    public int Indentation { get; set; }

    public SourceWriter WriteLine(string text = "")
    {
        if (text.Length == 0)
        {
            builder.Append('\n');
            return this;
        }
        foreach (var line in text.Replace("\r\n", "\n").Split('\n'))
        {
            if (line.Length > 0) builder.Append(' ', Indentation * IndentSize).Append(line);
            builder.Append('\n');
        }
        return this;
    }

    /// <summary>Writes <paramref name="header"/> and an opening brace, then indents.</summary>
    public SourceWriter OpenBlock(string header)
    {
        if (header.Length > 0) WriteLine(header);
        WriteLine("{");
        Indentation++;
        return this;
    }

    public SourceWriter CloseBlock(string suffix = "")
    {
        Indentation--;
        WriteLine("}" + suffix);
        return this;
    }

    public override string ToString() => builder.ToString();
}
