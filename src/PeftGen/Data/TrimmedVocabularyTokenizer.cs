using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PeftGen.Data;

/// <summary>
/// A byte-level tokenizer restricted to a subset of its tokens: the ones a corpus uses most, every single-byte token
/// and end-of-sequence. A token outside the subset is written as the byte tokens of its bytes, so every text still
/// encodes and decodes exactly; ids are renumbered densely, in the order of the original ids.
/// </summary>
/// <remarks>
/// A small model spends most of its parameters and FLOPs on the vocabulary head: GPT-2's 50,257 rows are 80 % of a
/// 4-layer, 256-wide model. Keeping the 8,192 most frequent tokens of the corpus keeps nearly all of its text in
/// whole tokens (the rest costs a few byte tokens each) at a sixth of the head's cost.
/// </remarks>
public sealed class TrimmedVocabularyTokenizer : ITextTokenizer
{
    /// <summary>The file <see cref="Save"/> writes.</summary>
    public const string FileName = "vocabulary.json";

    private readonly IByteLevelTokenizer inner;
    private readonly int[] kept;
    private readonly Dictionary<int, int> trimmedOf;
    private readonly int[] byteTokens = new int[256];

    /// <summary>Restricts <paramref name="inner"/> to <paramref name="keptIds"/> (its ids; each once).</summary>
    /// <exception cref="ArgumentException">An id repeats or is out of range, or a single-byte token or EOS is missing.</exception>
    public TrimmedVocabularyTokenizer(IByteLevelTokenizer inner, IEnumerable<int> keptIds)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(keptIds);
        this.inner = inner;
        kept = keptIds.Order().ToArray();
        trimmedOf = new Dictionary<int, int>(kept.Length);
        for (int i = 0; i < kept.Length; i++)
        {
            if (kept[i] < 0 || kept[i] >= inner.VocabularySize)
                throw new ArgumentException($"Token id {kept[i]} is outside {inner.Name}'s vocabulary of {inner.VocabularySize}.", nameof(keptIds));
            if (!trimmedOf.TryAdd(kept[i], i))
                throw new ArgumentException($"Token id {kept[i]} is listed twice.", nameof(keptIds));
        }
        for (int b = 0; b < 256; b++)
        {
            if (!trimmedOf.TryGetValue(inner.ByteToken((byte)b), out byteTokens[b]))
                throw new ArgumentException($"The token of byte {b} is missing: every single-byte token must be kept so that any text can be encoded.", nameof(keptIds));
        }
        if (!trimmedOf.TryGetValue(inner.EndOfSequenceId, out var eos))
            throw new ArgumentException("The end-of-sequence token must be kept.", nameof(keptIds));
        EndOfSequenceId = eos;
    }

    /// <summary>The vocabulary this one is a subset of.</summary>
    public IByteLevelTokenizer Inner => inner;

    /// <summary>For each id of this tokenizer, the inner tokenizer's id.</summary>
    public IReadOnlyList<int> KeptIds => kept;

    /// <inheritdoc />
    public int EndOfSequenceId { get; }

    /// <inheritdoc />
    public int VocabularySize => kept.Length;

    /// <summary>
    /// Keeps the <paramref name="size"/> − 257 most frequent non-byte tokens of <paramref name="texts"/> (ties: lower id
    /// first) besides the 256 single-byte tokens and EOS; fewer when the texts use fewer distinct tokens.
    /// </summary>
    public static TrimmedVocabularyTokenizer Select(IByteLevelTokenizer inner, IEnumerable<string> texts, int size)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(texts);
        var required = new HashSet<int>(Enumerable.Range(0, 256).Select(b => inner.ByteToken((byte)b))) { inner.EndOfSequenceId };
        if (size < required.Count || size > inner.VocabularySize)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"A trimmed vocabulary holds between {required.Count} (the byte tokens and EOS) and {inner.VocabularySize} tokens.");
        var counts = new Dictionary<int, long>();
        foreach (var text in texts)
        {
            foreach (var id in inner.Encode(text))
            {
                if (!required.Contains(id)) counts[id] = counts.GetValueOrDefault(id) + 1;
            }
        }
        var frequent = counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key).Take(size - required.Count).Select(c => c.Key);
        return new TrimmedVocabularyTokenizer(inner, required.Concat(frequent));
    }

    /// <inheritdoc />
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        foreach (var id in inner.Encode(text))
        {
            if (trimmedOf.TryGetValue(id, out var trimmed)) ids.Add(trimmed);
            else foreach (var b in inner.TokenBytes(id).Span) ids.Add(byteTokens[b]);
        }
        return ids;
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= kept.Length) throw new ArgumentOutOfRangeException(nameof(ids), id, $"Not a token id of this {kept.Length}-token vocabulary.");
            if (id != EndOfSequenceId) bytes.AddRange(inner.TokenBytes(kept[id]).Span);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Writes <c>vocabulary.json</c> (the inner vocabulary's name and the kept ids) into <paramref name="folder"/>.</summary>
    public string Save(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, FileName);
        var json = new JsonObject
        {
            ["base_vocabulary"] = inner.Name,
            ["size"] = kept.Length,
            ["kept_ids"] = new JsonArray(kept.Select(id => (JsonNode)id).ToArray()),
        };
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + "\n");
        return path;
    }

    /// <summary>Reads what <see cref="Save"/> wrote, over <paramref name="inner"/> (whose name must match).</summary>
    /// <exception cref="InvalidDataException">The file is not a trimmed vocabulary of <paramref name="inner"/>.</exception>
    public static TrimmedVocabularyTokenizer Load(string folder, IByteLevelTokenizer inner)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(inner);
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"No trimmed vocabulary ({FileName}) in '{folder}'.", path);
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var name = (string?)json["base_vocabulary"];
            if (name != inner.Name) throw new InvalidDataException($"'{path}' trims the '{name}' vocabulary, not '{inner.Name}'.");
            var ids = json["kept_ids"]!.AsArray().Select(n => (int)n!).ToArray();
            if ((int?)json["size"] != ids.Length) throw new InvalidDataException($"'{path}' says size {json["size"]} but lists {ids.Length} ids.");
            return new TrimmedVocabularyTokenizer(inner, ids);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"'{path}' is not a trimmed vocabulary: {e.Message}", e);
        }
    }
}
