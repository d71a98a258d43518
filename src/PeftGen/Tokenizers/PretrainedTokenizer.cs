using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.ML.Tokenizers;
using PeftGen.Data;
using PeftGen.Formats;

namespace PeftGen.Tokenizers;

/// <summary>
/// The tokenizer a brought model ships in its folder (transformers' files), read with Microsoft.ML.Tokenizers:
/// byte-level BPE (<see cref="BpeTextTokenizer"/>: GPT-2, Qwen2, Llama 3) or SentencePiece
/// (<see cref="SentencePieceTextTokenizer"/>: Llama 2, Mistral), with the special tokens of <c>tokenizer_config.json</c>.
/// </summary>
public abstract class PretrainedTokenizer : ITextTokenizer
{
    /// <summary>transformers' fast-tokenizer file: the vocabulary, the merges and the added tokens in one.</summary>
    public const string TokenizerJsonFileName = "tokenizer.json";

    /// <summary>A byte-level BPE vocabulary (GPT-2's layout), read with <see cref="MergesFileName"/>.</summary>
    public const string VocabFileName = "vocab.json";

    /// <summary>The merges of <see cref="VocabFileName"/>, one <c>a b</c> pair a line, highest priority first.</summary>
    public const string MergesFileName = "merges.txt";

    /// <summary>A SentencePiece model (a <c>ModelProto</c> in protobuf).</summary>
    public const string SentencePieceFileName = "tokenizer.model";

    private readonly SpecialTokenIds special;

    private protected PretrainedTokenizer(SpecialTokenIds special)
    {
        this.special = special;
    }

    /// <summary>
    /// Reads the tokenizer of <paramref name="folder"/>, picked by the files it holds: <c>tokenizer.json</c> first (unless
    /// it is a SentencePiece conversion and <c>tokenizer.model</c> is there), then <c>vocab.json</c> + <c>merges.txt</c>,
    /// then <c>tokenizer.model</c>; special tokens from <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">It holds none of the tokenizer files.</exception>
    /// <exception cref="PeftFormatException">A file is malformed, or of a kind PeftGen does not read.</exception>
    public static PretrainedTokenizer FromFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The tokenizer folder '{folder}' does not exist.");
        var tokenizerJson = Path.Combine(folder, TokenizerJsonFileName);
        var vocab = Path.Combine(folder, VocabFileName);
        var merges = Path.Combine(folder, MergesFileName);
        var sentencePiece = Path.Combine(folder, SentencePieceFileName);
        // Llama 2's and Mistral's tokenizer.json is a conversion of tokenizer.model (byte fallback, no byte level): read the original.
        if (File.Exists(tokenizerJson) && !(File.Exists(sentencePiece) && !BpeTextTokenizer.IsByteLevel(tokenizerJson)))
            return BpeTextTokenizer.FromTokenizerJson(folder);
        if (File.Exists(vocab) && File.Exists(merges)) return BpeTextTokenizer.FromVocabAndMerges(folder);
        if (File.Exists(sentencePiece)) return SentencePieceTextTokenizer.FromSentencePieceModel(folder);
        throw new FileNotFoundException(
            $"'{folder}' holds no tokenizer: looked for {TokenizerJsonFileName}, {VocabFileName} + {MergesFileName}, and {SentencePieceFileName}; copy them from the model's repository.",
            tokenizerJson);
    }

    /// <summary>Whether <paramref name="folder"/> holds a file <see cref="FromFolder"/> reads a tokenizer from.</summary>
    public static bool HasTokenizerFiles(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        return File.Exists(Path.Combine(folder, TokenizerJsonFileName))
            || (File.Exists(Path.Combine(folder, VocabFileName)) && File.Exists(Path.Combine(folder, MergesFileName)))
            || File.Exists(Path.Combine(folder, SentencePieceFileName));
    }

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer.</summary>
    public abstract Tokenizer Inner { get; }

    /// <inheritdoc />
    public int EndOfSequenceId => special.EndOfSequenceId;

    /// <summary>The beginning-of-sequence id, or null when the model names none.</summary>
    public int? BeginningOfSequenceId => special.BeginningOfSequenceId;

    /// <summary>The padding id, or null when the model names none (pad with <see cref="EndOfSequenceId"/> then).</summary>
    public int? PaddingId => special.PaddingId;

    /// <summary>One past the largest id: the learned vocabulary and the added tokens.</summary>
    public int VocabularySize => special.VocabularySize;

    /// <summary>The tokens added on top of the learned vocabulary, in id order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens => special.AddedTokens;

    /// <summary>
    /// Token ids of <paramref name="text"/> without BOS or EOS (transformers' <c>add_special_tokens=False</c>); an added
    /// token written in the text, such as <c>&lt;|im_start|&gt;</c>, is its own id.
    /// </summary>
    /// <exception cref="NotSupportedException">Microsoft.ML.Tokenizers gave an id outside the vocabulary (its unigram byte fallback).</exception>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Checked(EncodeText(text));
    }

    /// <summary>
    /// Token ids of <paramref name="text"/> as the model was trained to see them: with BOS in front when the model adds
    /// it (<c>add_bos_token</c>, or <c>tokenizer.json</c>'s template), and EOS behind when it adds that.
    /// </summary>
    public IReadOnlyList<int> EncodeForModel(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(special.Prefix);
        ids.AddRange(Checked(EncodeText(text)));
        ids.AddRange(special.Suffix);
        return ids;
    }

    /// <summary>The text of <paramref name="ids"/>; special tokens are dropped (transformers' <c>skip_special_tokens=True</c>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids) => DecodeKept(special.Kept(ids));

    // A model would index past its embedding with such an id: refuse it here, where the text is known.
    private IReadOnlyList<int> Checked(IReadOnlyList<int> ids)
    {
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)VocabularySize)
                throw new NotSupportedException($"Microsoft.ML.Tokenizers encoded the text to id {id}, outside the vocabulary of {VocabularySize} (its unigram models give such ids for byte-fallback characters).");
        }
        return ids;
    }

    private protected abstract IReadOnlyList<int> EncodeText(string text);

    /// <summary>Decodes ids with the special ones already dropped; added tokens that remain are written as their text.</summary>
    private protected abstract string DecodeKept(IReadOnlyList<int> ids);
}
