using System;
using System.IO;
using System.Text.Json;
using PeftGen.Formats;

namespace PeftGen.Tokenizers;

/// <summary>The JSON reading the tokenizer files share: whole-file parsing and transformers' added-token objects.</summary>
internal static class TokenizerJson
{
    /// <summary>Parses <paramref name="path"/>; a file that is not JSON becomes a <see cref="PeftFormatException"/> naming it.</summary>
    public static JsonDocument Parse(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new PeftFormatException(path, null, $"is not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>
    /// An added token written as <c>{"content": ..., "special": ...}</c>, with <c>"id"</c> inside it unless
    /// <paramref name="id"/> gives it (<c>added_tokens_decoder</c> keys the objects by id).
    /// </summary>
    public static AddedToken AddedToken(JsonElement value, int? id, Func<string, Exception> error)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw error("an added token must be an object with \"content\".");
        if (!value.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String || content.GetString()!.Length == 0)
            throw error("an added token needs a non-empty \"content\" string.");
        if (id is null)
        {
            if (!value.TryGetProperty("id", out var idValue) || !idValue.TryGetInt32(out var read) || read < 0)
                throw error($"the added token \"{content.GetString()}\" needs a non-negative integer \"id\".");
            id = read;
        }
        var special = value.TryGetProperty("special", out var flag) && flag.ValueKind == JsonValueKind.True;
        return new AddedToken(id.Value, content.GetString()!, special);
    }
}
