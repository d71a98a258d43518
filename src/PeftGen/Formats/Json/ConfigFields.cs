using System;
using System.Collections.Generic;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftGen.Formats;

namespace PeftGen.Formats.Json;

/// <summary>
/// Strict, typed access to the top-level fields of a JSON config object; remembers which fields were consumed so
/// the rest can be kept verbatim.
/// </summary>
internal sealed class ConfigFields
{
    private readonly Dictionary<string, JsonElement> fields = new(StringComparer.Ordinal);
    private readonly HashSet<string> consumed = new(StringComparer.Ordinal);

    public ConfigFields(JsonElement root, string? path)
    {
        Path = path;
        if (root.ValueKind != JsonValueKind.Object)
            throw new PeftFormatException(path, null, $"the config must be a JSON object, not {root.ValueKind}.");
        foreach (var property in root.EnumerateObject())
            fields.Add(property.Name, property.Value);
    }

    public string? Path { get; }

    public PeftFormatException Error(string field, string detail) => new(Path, null, $"field '{field}': {detail}");

    private bool TryGet(string name, out JsonElement value)
    {
        consumed.Add(name);
        return fields.TryGetValue(name, out value) && value.ValueKind != JsonValueKind.Null;
    }

    public bool Has(string name) => fields.TryGetValue(name, out var value) && value.ValueKind != JsonValueKind.Null;

    public string RequiredString(string name) =>
        String(name) ?? throw Error(name, "is required.");

    public string? String(string name)
    {
        if (!TryGet(name, out var value))
            return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Error(name, $"must be a string, not {Describe(value)}.");
    }

    /// <summary>A field of a shape of its own, converted by <paramref name="convert"/>; null when absent.</summary>
    public T? Optional<T>(string name, Func<string, JsonElement, T> convert) where T : class =>
        TryGet(name, out var value) ? convert(name, value) : null;

    public bool Bool(string name, bool fallback)
    {
        if (!TryGet(name, out var value))
            return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(name, $"must be true or false, not {Describe(value)}."),
        };
    }

    public int? PositiveInt(string name)
    {
        if (!TryGet(name, out var value))
            return null;
        return AsPositiveInt(name, value);
    }

    public int AsPositiveInt(string name, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n > 0
            ? n
            : throw Error(name, $"must be a positive integer, not {Describe(value)}.");

    public double? Number(string name)
    {
        if (!TryGet(name, out var value))
            return null;
        return AsNumber(name, value);
    }

    public double AsNumber(string name, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && double.IsFinite(d)
            ? d
            : throw Error(name, $"must be a finite number, not {Describe(value)}.");

    /// <summary>A list of strings; a single string is returned as <paramref name="single"/> instead when allowed.</summary>
    public IReadOnlyList<string>? StringList(string name, out string? single, bool allowSingle)
    {
        single = null;
        if (!TryGet(name, out var value))
            return null;
        if (allowSingle && value.ValueKind == JsonValueKind.String)
        {
            single = value.GetString();
            return null;
        }
        if (value.ValueKind != JsonValueKind.Array)
            throw Error(name, $"must be {(allowSingle ? "a string or " : "")}a list of strings, not {Describe(value)}.");
        var list = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
                throw Error(name, $"must hold strings only, not {Describe(item)}.");
            list.Add(item.GetString()!);
        }
        return list;
    }

    public IReadOnlyList<int>? IntList(string name)
    {
        if (!TryGet(name, out var value))
            return null;
        if (value.ValueKind == JsonValueKind.Number)
            return [AsNonNegativeInt(name, value)];
        if (value.ValueKind != JsonValueKind.Array)
            throw Error(name, $"must be an integer or a list of integers, not {Describe(value)}.");
        var list = new List<int>();
        foreach (var item in value.EnumerateArray())
            list.Add(AsNonNegativeInt(name, item));
        return list;
    }

    private int AsNonNegativeInt(string name, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n >= 0
            ? n
            : throw Error(name, $"must hold non-negative integers, not {Describe(value)}.");

    public IReadOnlyDictionary<string, T> Map<T>(string name, Func<string, JsonElement, T> convert)
    {
        var map = new Dictionary<string, T>(StringComparer.Ordinal);
        if (!TryGet(name, out var value))
            return map;
        if (value.ValueKind != JsonValueKind.Object)
            throw Error(name, $"must be an object, not {Describe(value)}.");
        foreach (var property in value.EnumerateObject())
            map.Add(property.Name, convert($"{name}.{property.Name}", property.Value));
        return map;
    }

    /// <summary>A field that is either a boolean or a string (PEFT's <c>init_lora_weights</c>).</summary>
    public (bool Flag, string? Text) BoolOrString(string name, bool fallback)
    {
        if (!TryGet(name, out var value))
            return (fallback, null);
        return value.ValueKind switch
        {
            JsonValueKind.True => (true, null),
            JsonValueKind.False => (false, null),
            JsonValueKind.String => (true, value.GetString()),
            _ => throw Error(name, $"must be true, false or a method name, not {Describe(value)}."),
        };
    }

    /// <summary>Every field not consumed so far, as JSON nodes.</summary>
    public IReadOnlyDictionary<string, JsonNode?> Remaining()
    {
        var rest = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (name, value) in fields)
        {
            if (!consumed.Contains(name))
                rest.Add(name, value.ValueKind == JsonValueKind.Null ? null : JsonNode.Parse(value.GetRawText()));
        }
        return rest;
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{value.GetString()}\"",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        _ => value.GetRawText(),
    };

    /// <summary>Runs the config's own checks; a rule it breaks becomes a <see cref="PeftFormatException"/> naming this file.</summary>
    public T Validated<T>(T config, Action<T> validate)
    {
        try
        {
            validate(config);
        }
        catch (ArgumentException e)
        {
            throw new PeftFormatException(Path, null, e.Message, e);
        }
        return config;
    }
}
