using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Formats;

namespace PeftGen.Tokenizers;

/// <summary>
/// The special tokens of a brought tokenizer resolved to ids once: which tokens the text may name whole, which ids
/// decoding drops, and what the model's encodings start and end with.
/// </summary>
internal sealed class SpecialTokenIds
{
    private SpecialTokenIds(IReadOnlyDictionary<string, int> matched, HashSet<int> dropped, int eos, int? bos, int? pad, int[] prefix, int[] suffix, int vocabularySize, IReadOnlyList<AddedToken> added)
    {
        Matched = matched;
        Dropped = dropped;
        EndOfSequenceId = eos;
        BeginningOfSequenceId = bos;
        PaddingId = pad;
        Prefix = prefix;
        Suffix = suffix;
        VocabularySize = vocabularySize;
        AddedTokens = added;
    }

    /// <summary>Tokens matched whole in the text, never split: the added tokens and the named special tokens.</summary>
    public IReadOnlyDictionary<string, int> Matched { get; }

    /// <summary>Ids decoding drops: special added tokens and the named BOS, EOS, padding and unknown tokens.</summary>
    public HashSet<int> Dropped { get; }

    public int EndOfSequenceId { get; }

    public int? BeginningOfSequenceId { get; }

    public int? PaddingId { get; }

    /// <summary>Ids the model's encodings start with (BOS when the model adds it).</summary>
    public int[] Prefix { get; }

    /// <summary>Ids the model's encodings end with (EOS when the model adds it).</summary>
    public int[] Suffix { get; }

    public int VocabularySize { get; }

    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>What an encoding of the model looks like when <c>tokenizer_config.json</c> does not say (a template of <c>tokenizer.json</c>).</summary>
    public sealed record Defaults(int? Bos, int? Eos, IReadOnlyList<int> Prefix, IReadOnlyList<int> Suffix)
    {
        public static Defaults None { get; } = new(null, null, [], []);
    }

    /// <summary>Resolves <paramref name="config"/>'s token names against the vocabulary and the added tokens.</summary>
    /// <param name="folder">The tokenizer's folder, named by errors.</param>
    /// <param name="config">The folder's <c>tokenizer_config.json</c>.</param>
    /// <param name="added">Added tokens from the tokenizer file itself; <paramref name="config"/>'s are merged in.</param>
    /// <param name="learnedId">The id of a token of the learned vocabulary, or null.</param>
    /// <param name="learnedSize">One past the largest id of the learned vocabulary.</param>
    /// <param name="defaults">BOS, EOS and the model's encoding template when the config names none.</param>
    /// <exception cref="PeftFormatException">A named token is not in the vocabulary, or no end-of-sequence token can be told.</exception>
    public static SpecialTokenIds Resolve(string folder, TokenizerConfig config, IEnumerable<AddedToken> added, Func<string, int?> learnedId, int learnedSize, Defaults defaults)
    {
        var byId = new SortedDictionary<int, AddedToken>();
        foreach (var token in added.Concat(config.AddedTokens)) byId.TryAdd(token.Id, token);
        var addedTokens = byId.Values.ToArray();
        var matched = new Dictionary<string, int>(StringComparer.Ordinal);
        var dropped = new HashSet<int>();
        foreach (var token in addedTokens)
        {
            matched.TryAdd(token.Content, token.Id);
            if (token.Special) dropped.Add(token.Id);
        }

        var configPath = System.IO.Path.Combine(folder, TokenizerConfig.FileName);
        int? Named(string field, string? content)
        {
            if (content is null) return null;
            var id = matched.TryGetValue(content, out var addedId) ? addedId : learnedId(content);
            if (id is not { } found)
                throw new PeftFormatException(configPath, null, $"{field} \"{content}\" is neither a token of the vocabulary nor an added token.");
            matched.TryAdd(content, found);
            dropped.Add(found);
            return found;
        }

        var bos = Named("bos_token", config.BosToken) ?? defaults.Bos;
        var eos = Named("eos_token", config.EosToken) ?? defaults.Eos ?? OnlySpecial(addedTokens)
            ?? throw new PeftFormatException(configPath, null, $"names no eos_token, and '{folder}' has no single special token to take for it: add \"eos_token\" to {TokenizerConfig.FileName}.");
        var pad = Named("pad_token", config.PadToken);
        Named("unk_token", config.UnkToken);
        if (defaults.Bos is { } modelBos) dropped.Add(modelBos);
        if (defaults.Eos is { } modelEos) dropped.Add(modelEos);
        dropped.Add(eos);

        var prefix = config.AddBosToken switch
        {
            true => [bos ?? throw new PeftFormatException(configPath, null, "sets add_bos_token but names no bos_token.")],
            false => [],
            null => defaults.Prefix.ToArray(),
        };
        var suffix = config.AddEosToken switch
        {
            true => [eos],
            false => [],
            null => defaults.Suffix.ToArray(),
        };
        var size = Math.Max(learnedSize, addedTokens.Length == 0 ? 0 : addedTokens[^1].Id + 1);
        return new SpecialTokenIds(matched, dropped, eos, bos, pad, prefix, suffix, size, addedTokens);
    }

    private static int? OnlySpecial(IReadOnlyList<AddedToken> added)
    {
        var special = added.Where(t => t.Special).ToArray();
        return special.Length == 1 ? special[0].Id : null;
    }

    /// <summary>The ids of <paramref name="ids"/> that decoding keeps.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public List<int> Kept(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = new List<int>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is outside the vocabulary of {VocabularySize}.");
            if (!Dropped.Contains(id)) kept.Add(id);
        }
        return kept;
    }
}
