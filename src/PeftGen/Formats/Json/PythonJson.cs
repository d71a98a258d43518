using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PeftGen.Formats.Json;

/// <summary>
/// Writes JSON the way Python's <c>json.dumps(obj, indent=2, sort_keys=True)</c> does (PEFT's and transformers'
/// config files): two-space indent, sorted keys, ASCII-only output, Python's float spelling. Files we write are then
/// byte-identical to the ones PEFT writes for the same values.
/// </summary>
internal static class PythonJson
{
    /// <summary>Serializes <paramref name="node"/>; doubles use Python's <c>repr</c>, integers stay integers.</summary>
    public static string Serialize(JsonNode? node)
    {
        var text = new StringBuilder();
        Write(text, node, 0);
        return text.ToString();
    }

    private static void Write(StringBuilder text, JsonNode? node, int depth)
    {
        switch (node)
        {
            case null:
                text.Append("null");
                break;
            case JsonObject obj:
                WriteObject(text, obj, depth);
                break;
            case JsonArray array:
                if (array.Count == 0)
                {
                    text.Append("[]");
                    break;
                }
                text.Append('[');
                for (var i = 0; i < array.Count; i++)
                {
                    text.Append(i == 0 ? "\n" : ",\n").Append(' ', 2 * (depth + 1));
                    Write(text, array[i], depth + 1);
                }
                text.Append('\n').Append(' ', 2 * depth).Append(']');
                break;
            case JsonValue value:
                WriteValue(text, value);
                break;
        }
    }

    private static void WriteObject(StringBuilder text, JsonObject obj, int depth)
    {
        if (obj.Count == 0)
        {
            text.Append("{}");
            return;
        }
        var keys = new List<string>(obj.Count);
        foreach (var (key, _) in obj)
            keys.Add(key);
        keys.Sort(StringComparer.Ordinal);
        text.Append('{');
        for (var i = 0; i < keys.Count; i++)
        {
            text.Append(i == 0 ? "\n" : ",\n").Append(' ', 2 * (depth + 1));
            AppendString(text, keys[i]);
            text.Append(": ");
            Write(text, obj[keys[i]], depth + 1);
        }
        text.Append('\n').Append(' ', 2 * depth).Append('}');
    }

    private static void WriteValue(StringBuilder text, JsonValue value)
    {
        if (value.TryGetValue<JsonElement>(out var element))
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.String:
                    AppendString(text, element.GetString()!);
                    return;
                case JsonValueKind.Number:
                    // A number read from a file keeps its spelling (it came from Python already).
                    text.Append(element.GetRawText());
                    return;
                case JsonValueKind.True:
                    text.Append("true");
                    return;
                case JsonValueKind.False:
                    text.Append("false");
                    return;
                default:
                    text.Append("null");
                    return;
            }
        }
        if (value.TryGetValue<string>(out var s))
            AppendString(text, s);
        else if (value.TryGetValue<bool>(out var b))
            text.Append(b ? "true" : "false");
        else if (value.TryGetValue<int>(out var n))
            text.Append(n.ToString(CultureInfo.InvariantCulture));
        else if (value.TryGetValue<long>(out var l))
            text.Append(l.ToString(CultureInfo.InvariantCulture));
        else if (value.TryGetValue<double>(out var d))
            text.Append(Float(d));
        else
            throw new InvalidOperationException($"Unsupported JSON value {value}.");
    }

    /// <summary>Python's <c>repr(float)</c>: shortest round-trip digits, positional for exponents -4..15, else <c>1e-05</c> style.</summary>
    public static string Float(double value)
    {
        if (double.IsNaN(value))
            return "NaN";
        if (double.IsInfinity(value))
            return value > 0 ? "Infinity" : "-Infinity";
        var sign = value < 0 || (value == 0 && double.IsNegative(value)) ? "-" : "";
        if (value == 0)
            return sign + "0.0";

        // Shortest round-trip digits and the decimal exponent of the first digit.
        var (digits, exponent) = Decompose(Math.Abs(value).ToString("R", CultureInfo.InvariantCulture));

        string body;
        if (exponent is >= -4 and < 16)
        {
            if (exponent >= 0)
            {
                var integer = digits.Length > exponent + 1 ? digits[..(exponent + 1)] : digits.PadRight(exponent + 1, '0');
                var fraction = digits.Length > exponent + 1 ? digits[(exponent + 1)..] : "0";
                body = integer + "." + fraction;
            }
            else
            {
                body = "0." + new string('0', -exponent - 1) + digits;
            }
        }
        else
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            body = mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
        }
        return sign + body;
    }

    private static (string Digits, int Exponent) Decompose(string number)
    {
        var exponentPart = 0;
        var e = number.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponentPart = int.Parse(number[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            number = number[..e];
        }
        var point = number.IndexOf('.');
        var integerDigits = point < 0 ? number.Length : point;
        var all = number.Replace(".", "", StringComparison.Ordinal);
        var leadingZeros = 0;
        while (leadingZeros < all.Length && all[leadingZeros] == '0')
            leadingZeros++;
        var digits = all[leadingZeros..].TrimEnd('0');
        return (digits, integerDigits - leadingZeros - 1 + exponentPart);
    }

    // Python's ensure_ascii escaping: everything outside printable ASCII becomes \uXXXX (lower-case hex).
    private static void AppendString(StringBuilder text, string value)
    {
        text.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                case < ' ' or > '~': text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: text.Append(c); break;
            }
        }
        text.Append('"');
    }
}
