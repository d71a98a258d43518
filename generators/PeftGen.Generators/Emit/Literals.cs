using System.Globalization;
using System.Text;

namespace PeftGen.Generators.Emit;

/// <summary>C# literals in invariant culture.</summary>
internal static class Literals
{
    public static string String(string value)
    {
        var builder = new StringBuilder("\"");
        foreach (var c in value)
        {
            builder.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\0' => "\\0",
                // Lone surrogates would not survive the UTF-8 source file; escaped, pairs and singles keep their value.
                _ when char.IsControl(c) || char.IsSurrogate(c) => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture),
                _ => c.ToString(),
            });
        }
        return builder.Append('"').ToString();
    }

    public static string Long(long value) => value.ToString(CultureInfo.InvariantCulture) + "L";

    public static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>A round-trippable double literal (<c>16d</c>, <c>0.05d</c>, <c>1E-05d</c>); NaN and infinities by name.</summary>
    public static string Double(double value)
        => double.IsNaN(value) ? "global::System.Double.NaN"
            : double.IsPositiveInfinity(value) ? "global::System.Double.PositiveInfinity"
            : double.IsNegativeInfinity(value) ? "global::System.Double.NegativeInfinity"
            : value.ToString("R", CultureInfo.InvariantCulture) + "d";

    /// <summary>Text for an XML doc comment line: XML-escaped, with line breaks and other control characters escaped.</summary>
    public static string DocText(string value)
    {
        var builder = new StringBuilder();
        foreach (var c in System.Security.SecurityElement.Escape(value) ?? "")
            builder.Append(char.IsControl(c) || char.IsSurrogate(c) ? "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture) : c.ToString());
        return builder.ToString();
    }

    public static string Bool(bool value) => value ? "true" : "false";

    /// <summary>A C# identifier made from an arbitrary name (adapter names become constant names).</summary>
    public static string Identifier(string name)
    {
        var builder = new StringBuilder();
        foreach (var c in name) builder.Append(char.IsLetterOrDigit(c) || c == '_' ? c : '_');
        if (builder.Length == 0 || char.IsDigit(builder[0])) builder.Insert(0, '_');
        return builder.ToString();
    }
}
