using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.ML.Tokenizers;
using PeftGen.Formats;

namespace PeftGen.Tokenizers;

/// <summary>
/// A SentencePiece model (<c>tokenizer.model</c>: Llama 2, Mistral; BPE or unigram) read by Microsoft.ML.Tokenizers,
/// with the special tokens of <c>tokenizer_config.json</c>. Without a config, BOS and EOS are the model's own
/// (<c>trainer_spec.bos_id</c>, <c>eos_id</c>) and nothing is added to encodings.
/// </summary>
public sealed class SentencePieceTextTokenizer : PretrainedTokenizer
{
    private readonly SentencePieceTokenizer tokenizer;

    private SentencePieceTextTokenizer(SentencePieceTokenizer tokenizer, SpecialTokenIds special)
        : base(special)
    {
        this.tokenizer = tokenizer;
    }

    /// <inheritdoc />
    public override Tokenizer Inner => tokenizer;

    /// <summary>Reads <c>tokenizer.model</c> and the special tokens of <paramref name="folder"/>.</summary>
    /// <exception cref="FileNotFoundException">The folder has no <c>tokenizer.model</c>.</exception>
    /// <exception cref="PeftFormatException">A file is malformed.</exception>
    public static SentencePieceTextTokenizer FromSentencePieceModel(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var path = Path.Combine(folder, SentencePieceFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{folder}' has no {SentencePieceFileName}.", path);
        var config = TokenizerConfig.ReadFolder(folder);
        var bytes = File.ReadAllBytes(path);
        var model = Load(path, bytes, null);
        var learned = model.Vocabulary;
        var defaults = new SpecialTokenIds.Defaults(
            model.BeginningOfSentenceId >= 0 ? model.BeginningOfSentenceId : null,
            model.EndOfSentenceId >= 0 ? model.EndOfSentenceId : null, [], []);
        var special = SpecialTokenIds.Resolve(folder, config, [], t => learned.TryGetValue(t, out var id) ? id : null, LearnedSize(path, bytes), defaults);
        // Load again with the added tokens, so that the text may name them (Microsoft.ML.Tokenizers takes them at creation only).
        return new SentencePieceTextTokenizer(special.Matched.Count == 0 ? model : Load(path, bytes, special.Matched), special);
    }

    private static SentencePieceTokenizer Load(string path, byte[] bytes, IReadOnlyDictionary<string, int>? specialTokens)
    {
        try
        {
            return SentencePieceTokenizer.Create(new MemoryStream(bytes, writable: false), addBeginningOfSentence: false, addEndOfSentence: false, specialTokens);
        }
        catch (Exception e)
        {
            // A truncated or foreign file fails deep inside the protobuf reader, as whatever exception it hits first.
            throw new PeftFormatException(path, null, $"is not a SentencePiece model (a ModelProto of BPE or unigram pieces): {e.Message}", e);
        }
    }

    // Microsoft.ML.Tokenizers' Vocabulary leaves out the byte pieces (<0x00>..<0xFF>) of unigram models; every piece has an id.
    private static int LearnedSize(string path, byte[] bytes) =>
        ModelProtoPieces.Count(bytes) is { } count && count > 0
            ? count
            : throw new PeftFormatException(path, null, "is not a SentencePiece model: it lists no pieces.");

    private protected override IReadOnlyList<int> EncodeText(string text) =>
        tokenizer.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);

    private protected override string DecodeKept(IReadOnlyList<int> ids) => tokenizer.Decode(ids, considerSpecialTokens: true);
}
