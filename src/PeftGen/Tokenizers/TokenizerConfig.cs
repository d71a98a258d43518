using System;
using System.Collections.Generic;
using System.IO;
using System.Text.Json;
using PeftGen.Formats;
using PeftGen.Formats.Json;

namespace PeftGen.Tokenizers;

/// <summary>
/// The special tokens of a brought model, as transformers keeps them beside the vocabulary: <c>tokenizer_config.json</c>
/// (<c>bos_token</c>, <c>eos_token</c>, <c>pad_token</c>, <c>unk_token</c>, <c>add_bos_token</c>, <c>add_eos_token</c>,
/// <c>added_tokens_decoder</c>), with <c>special_tokens_map.json</c> filling tokens the config leaves out.
/// </summary>
public sealed class TokenizerConfig
{
    /// <summary>The file transformers writes the tokenizer's settings to.</summary>
    public const string FileName = "tokenizer_config.json";

    /// <summary>The older file that names the special tokens only.</summary>
    public const string SpecialTokensMapFileName = "special_tokens_map.json";

    /// <summary>A folder without either file: no special tokens named, nothing added to encodings.</summary>
    public static TokenizerConfig Empty { get; } = new(null, null, null, null, null, null, []);

    private TokenizerConfig(string? bos, string? eos, string? pad, string? unk, bool? addBos, bool? addEos, IReadOnlyList<AddedToken> added)
    {
        BosToken = bos;
        EosToken = eos;
        PadToken = pad;
        UnkToken = unk;
        AddBosToken = addBos;
        AddEosToken = addEos;
        AddedTokens = added;
    }

    /// <summary>The beginning-of-sequence token, or null when none is named.</summary>
    public string? BosToken { get; }

    /// <summary>The end-of-sequence token, or null when none is named.</summary>
    public string? EosToken { get; }

    /// <summary>The padding token, or null when none is named.</summary>
    public string? PadToken { get; }

    /// <summary>The unknown token, or null when none is named.</summary>
    public string? UnkToken { get; }

    /// <summary>Whether the model's encodings start with <see cref="BosToken"/>; null when the config does not say.</summary>
    public bool? AddBosToken { get; }

    /// <summary>Whether the model's encodings end with <see cref="EosToken"/>; null when the config does not say.</summary>
    public bool? AddEosToken { get; }

    /// <summary>The tokens of <c>added_tokens_decoder</c>, in id order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>
    /// Reads <see cref="FileName"/> of <paramref name="folder"/> and fills the special tokens it leaves out from
    /// <see cref="SpecialTokensMapFileName"/>; <see cref="Empty"/> when neither file is there.
    /// </summary>
    /// <exception cref="PeftFormatException">A file is not JSON or a field has the wrong shape.</exception>
    public static TokenizerConfig ReadFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var configPath = Path.Combine(folder, FileName);
        var mapPath = Path.Combine(folder, SpecialTokensMapFileName);
        var config = File.Exists(configPath) ? Read(configPath) : Empty;
        if (!File.Exists(mapPath)) return config;
        var map = Read(mapPath);
        return new TokenizerConfig(
            config.BosToken ?? map.BosToken, config.EosToken ?? map.EosToken, config.PadToken ?? map.PadToken, config.UnkToken ?? map.UnkToken,
            config.AddBosToken, config.AddEosToken, config.AddedTokens);
    }

    /// <summary>Reads one <c>tokenizer_config.json</c> (or <c>special_tokens_map.json</c>, which has the same token fields).</summary>
    /// <exception cref="PeftFormatException">The file is not JSON or a field has the wrong shape.</exception>
    public static TokenizerConfig Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var document = TokenizerJson.Parse(path);
        var fields = new ConfigFields(document.RootElement, path);
        var added = new List<AddedToken>();
        foreach (var (_, token) in fields.Map("added_tokens_decoder", (name, value) => ReadAddedToken(fields, name, value)))
            added.Add(token);
        added.Sort((a, b) => a.Id.CompareTo(b.Id));
        return new TokenizerConfig(
            fields.Optional("bos_token", TokenContent), fields.Optional("eos_token", TokenContent),
            fields.Optional("pad_token", TokenContent), fields.Optional("unk_token", TokenContent),
            fields.Has("add_bos_token") ? fields.Bool("add_bos_token", false) : null,
            fields.Has("add_eos_token") ? fields.Bool("add_eos_token", false) : null,
            added);

        // A token is written as its text, or as transformers' AddedToken object {"content": ..., ...}.
        string TokenContent(string name, JsonElement value) => value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!,
            JsonValueKind.Object when value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String => content.GetString()!,
            _ => throw fields.Error(name, "must be a token's text or an object with a \"content\" string."),
        };
    }

    private static AddedToken ReadAddedToken(ConfigFields fields, string name, JsonElement value)
    {
        var id = name[(name.IndexOf('.') + 1)..];
        if (!int.TryParse(id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var tokenId))
            throw fields.Error(name, "the key must be a token id (a non-negative integer).");
        return TokenizerJson.AddedToken(value, tokenId, message => fields.Error(name, message));
    }
}
