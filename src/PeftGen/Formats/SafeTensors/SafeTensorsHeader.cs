using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using PeftGen.Formats;

namespace PeftGen.Formats.SafeTensors;

/// <summary>A parsed, validated safetensors header.</summary>
internal sealed record SafeTensorsHeader(IReadOnlyDictionary<string, SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>The largest header the reference implementation accepts (100 MB); we accept no more.</summary>
    public const long MaxLength = 100_000_000;

    /// <summary>The key of the free-form string map in the header.</summary>
    public const string MetadataKey = "__metadata__";

    private const int MaxRank = 64;

    /// <summary>
    /// Parses <paramref name="json"/> strictly and checks every tensor against a data section of
    /// <paramref name="dataLength"/> bytes: known dtypes, byte lengths that match the shapes, and offsets that tile the
    /// data section exactly (no overlap, no gap, nothing after the last tensor).
    /// </summary>
    public static SafeTensorsHeader Parse(ReadOnlySpan<byte> json, long dataLength, string path)
    {
        if (json.Length == 0 || json[0] != (byte)'{')
            throw new PeftFormatException(path, null, "the header must be a JSON object starting with '{'.");
        if (!Utf8.IsValid(json))
            throw new PeftFormatException(path, null, "the header is not valid UTF-8.");

        SafeTensorsHeader header;
        try
        {
            header = ParseJson(json, path);
        }
        catch (JsonException e)
        {
            throw new PeftFormatException(path, null, $"the header is not valid JSON ({e.Message}).", e);
        }
        catch (InvalidOperationException e)
        {
            throw new PeftFormatException(path, null, $"the header holds an unreadable JSON value ({e.Message}).", e);
        }
        CheckLayout(header.Tensors.Values, dataLength, path);
        return header;
    }

    private static SafeTensorsHeader ParseJson(ReadOnlySpan<byte> json, string path)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 4 });
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seenMetadata = false;

        Expect(ref reader, JsonTokenType.StartObject, path, null, "the header");
        while (true)
        {
            Next(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndObject)
                break;
            var key = reader.GetString()!;
            if (key == MetadataKey)
            {
                if (seenMetadata)
                    throw new PeftFormatException(path, null, $"'{MetadataKey}' appears twice in the header.");
                seenMetadata = true;
                ReadMetadata(ref reader, metadata, path);
                continue;
            }
            if (tensors.ContainsKey(key))
                throw new PeftFormatException(path, key, "the name appears twice in the header.");
            tensors.Add(key, ReadTensor(ref reader, key, path));
        }
        if (reader.Read())
            throw new PeftFormatException(path, null, "the header has content after its JSON object.");
        return new SafeTensorsHeader(tensors, metadata);
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string path)
    {
        Next(ref reader, path);
        if (reader.TokenType == JsonTokenType.Null)
            return;
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new PeftFormatException(path, null, $"'{MetadataKey}' must be an object of strings, not {Describe(reader.TokenType)}.");
        while (true)
        {
            Next(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndObject)
                return;
            var key = reader.GetString()!;
            Next(ref reader, path);
            if (reader.TokenType != JsonTokenType.String)
                throw new PeftFormatException(path, null, $"metadata value '{key}' must be a string, not {Describe(reader.TokenType)}.");
            if (!metadata.TryAdd(key, reader.GetString()!))
                throw new PeftFormatException(path, null, $"metadata key '{key}' appears twice.");
        }
    }

    private static SafeTensorInfo ReadTensor(ref Utf8JsonReader reader, string name, string path)
    {
        Expect(ref reader, JsonTokenType.StartObject, path, name, "the tensor entry");
        string? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        while (true)
        {
            Next(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndObject)
                break;
            var field = reader.GetString()!;
            switch (field)
            {
                case "dtype" when dtype is null:
                    Expect(ref reader, JsonTokenType.String, path, name, "'dtype'");
                    dtype = reader.GetString()!;
                    break;
                case "shape" when shape is null:
                    shape = ReadIntegers(ref reader, path, name, "'shape'");
                    break;
                case "data_offsets" when offsets is null:
                    offsets = ReadIntegers(ref reader, path, name, "'data_offsets'");
                    break;
                case "dtype" or "shape" or "data_offsets":
                    throw new PeftFormatException(path, name, $"field '{field}' appears twice.");
                default:
                    throw new PeftFormatException(path, name, $"unknown field '{field}' (expected dtype, shape, data_offsets).");
            }
        }
        if (dtype is null || shape is null || offsets is null)
            throw new PeftFormatException(path, name, "the entry needs 'dtype', 'shape' and 'data_offsets'.");
        if (!SafeTensorsDType.TryParse(dtype, out var scalarType, out var elementSize))
            throw new PeftFormatException(path, name, $"unsupported dtype '{dtype}' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL).");
        if (shape.Length > MaxRank)
            throw new PeftFormatException(path, name, $"the shape has {shape.Length} dimensions; at most {MaxRank} are supported.");
        if (offsets.Length != 2)
            throw new PeftFormatException(path, name, $"'data_offsets' must hold exactly two numbers, not {offsets.Length}.");
        var (begin, end) = (offsets[0], offsets[1]);
        if (end < begin)
            throw new PeftFormatException(path, name, $"'data_offsets' [{begin}, {end}] ends before it begins.");

        long byteLength;
        try
        {
            // Torch computes strides from the non-zero dimensions even when another one is zero, so those must fit too.
            var count = 1L;
            var strideSpan = (long)elementSize;
            foreach (var dim in shape)
            {
                count = checked(count * dim);
                strideSpan = checked(strideSpan * Math.Max(dim, 1));
            }
            byteLength = checked(count * elementSize);
        }
        catch (OverflowException)
        {
            throw new PeftFormatException(path, name, $"the shape [{string.Join(", ", shape)}] is too large to address.");
        }
        if (byteLength != end - begin)
            throw new PeftFormatException(path, name,
                $"{dtype} with shape [{string.Join(", ", shape)}] needs {byteLength} bytes but 'data_offsets' [{begin}, {end}] spans {end - begin}.");
        return new SafeTensorInfo(name, dtype, scalarType, elementSize, shape, begin, end);
    }

    private static long[] ReadIntegers(ref Utf8JsonReader reader, string path, string name, string what)
    {
        Expect(ref reader, JsonTokenType.StartArray, path, name, what);
        var values = new List<long>();
        while (true)
        {
            Next(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndArray)
                return values.ToArray();
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var value) || value < 0)
                throw new PeftFormatException(path, name, $"{what} must hold non-negative integers.");
            values.Add(value);
        }
    }

    private static void CheckLayout(IEnumerable<SafeTensorInfo> tensors, long dataLength, string path)
    {
        var ordered = new List<SafeTensorInfo>(tensors);
        ordered.Sort(static (a, b) => a.DataBegin != b.DataBegin ? a.DataBegin.CompareTo(b.DataBegin) : a.DataEnd.CompareTo(b.DataEnd));
        var expected = 0L;
        SafeTensorInfo? previous = null;
        foreach (var tensor in ordered)
        {
            if (tensor.DataEnd > dataLength)
                throw new PeftFormatException(path, tensor.Name,
                    $"'data_offsets' [{tensor.DataBegin}, {tensor.DataEnd}] reach past the end of the data section ({dataLength} bytes).");
            if (tensor.DataBegin < expected)
                throw new PeftFormatException(path, tensor.Name,
                    $"'data_offsets' [{tensor.DataBegin}, {tensor.DataEnd}] overlap tensor '{previous!.Name}' [{previous.DataBegin}, {previous.DataEnd}].");
            if (tensor.DataBegin > expected)
                throw new PeftFormatException(path, tensor.Name,
                    $"'data_offsets' [{tensor.DataBegin}, {tensor.DataEnd}] leave a gap of {tensor.DataBegin - expected} unused bytes before the tensor.");
            expected = tensor.DataEnd;
            previous = tensor;
        }
        if (expected != dataLength)
            throw new PeftFormatException(path, null,
                $"the data section holds {dataLength} bytes but the tensors cover {expected}: {dataLength - expected} trailing bytes belong to no tensor.");
    }

    /// <summary>Writes the header exactly as the reference implementation does: compact JSON, padded with spaces to a multiple of 8 bytes.</summary>
    public static byte[] Serialize(IReadOnlyList<(string Name, string DType, long[] Shape, long Begin, long End)> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new StringBuilder();
        json.Append('{');
        var first = true;
        if (metadata is not null)
        {
            json.Append("\"" + MetadataKey + "\":{");
            var keys = new List<string>(metadata.Keys);
            keys.Sort(StringComparer.Ordinal);
            for (var i = 0; i < keys.Count; i++)
            {
                if (i > 0)
                    json.Append(',');
                AppendString(json, keys[i]);
                json.Append(':');
                AppendString(json, metadata[keys[i]]);
            }
            json.Append('}');
            first = false;
        }
        foreach (var (name, dtype, shape, begin, end) in tensors)
        {
            if (!first)
                json.Append(',');
            first = false;
            AppendString(json, name);
            json.Append(":{\"dtype\":");
            AppendString(json, dtype);
            json.Append(",\"shape\":[");
            for (var i = 0; i < shape.Length; i++)
            {
                if (i > 0)
                    json.Append(',');
                json.Append(shape[i].ToString(CultureInfo.InvariantCulture));
            }
            json.Append("],\"data_offsets\":[")
                .Append(begin.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(end.ToString(CultureInfo.InvariantCulture)).Append("]}");
        }
        json.Append('}');
        var padding = (8 - Encoding.UTF8.GetByteCount(json.ToString()) % 8) % 8;
        json.Append(' ', padding);
        return Encoding.UTF8.GetBytes(json.ToString());
    }

    // serde_json's escaping: quote, backslash and control characters only; everything else is written as UTF-8.
    private static void AppendString(StringBuilder json, string value)
    {
        json.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                case < ' ': json.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
                default: json.Append(c); break;
            }
        }
        json.Append('"');
    }

    private static void Next(ref Utf8JsonReader reader, string path)
    {
        if (!reader.Read())
            throw new PeftFormatException(path, null, "the header's JSON ends too early.");
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType type, string path, string? name, string what)
    {
        Next(ref reader, path);
        if (reader.TokenType != type)
            throw new PeftFormatException(path, name, $"{what} must be {Describe(type)}, not {Describe(reader.TokenType)}.");
    }

    private static string Describe(JsonTokenType type) => type switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => type.ToString(),
    };
}
