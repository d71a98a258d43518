using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using PeftGen.Formats;

namespace PeftGen.Tokenizers;

/// <summary>
/// A byte-level BPE tokenizer (GPT-2, Qwen2, Llama 3) read by Microsoft.ML.Tokenizers from <c>tokenizer.json</c>
/// (<c>model.vocab</c>, <c>model.merges</c> as <c>"a b"</c> strings or <c>["a", "b"]</c> pairs, <c>added_tokens</c>,
/// the pre-tokenizer's split pattern and the post-processor's template) or from <c>vocab.json</c> + <c>merges.txt</c>,
/// with the special tokens of <c>tokenizer_config.json</c>.
/// </summary>
/// <remarks>
/// Text is split with the pre-tokenizer's regular expression (GPT-2's when the file names none) and each piece is
/// merged from its UTF-8 bytes, so every text encodes and decodes exactly. Not read: <c>ignore_merges</c> (Llama 3),
/// which can give a whole-word token where the merges give two.
/// </remarks>
public sealed class BpeTextTokenizer : PretrainedTokenizer
{
    /// <summary>GPT-2's pre-tokenizer pattern: contractions, letters, digits, other symbols, each with one leading space; whitespace runs.</summary>
    public const string Gpt2SplitPattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer tokenizer;

    private BpeTextTokenizer(BpeTokenizer tokenizer, SpecialTokenIds special)
        : base(special)
    {
        this.tokenizer = tokenizer;
    }

    /// <inheritdoc />
    public override Tokenizer Inner => tokenizer;

    /// <summary>Reads <c>tokenizer.json</c> and the special tokens of <paramref name="folder"/>.</summary>
    /// <exception cref="PeftFormatException">A file is malformed, or the BPE is not byte-level.</exception>
    public static BpeTextTokenizer FromTokenizerJson(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var path = Path.Combine(folder, TokenizerJsonFileName);
        using var document = TokenizerJson.Parse(path);
        var root = document.RootElement;
        Exception Error(string detail) => new PeftFormatException(path, null, detail);
        if (root.ValueKind != JsonValueKind.Object) throw Error("must be a JSON object.");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object) throw Error("has no \"model\" object.");
        if (model.TryGetProperty("type", out var type) && type.GetString() != "BPE")
            throw Error($"holds a {type.GetString()} model; PeftGen reads byte-level BPE from it (and SentencePiece from {SentencePieceFileName}).");
        if (!IsByteLevel(root))
            throw Error($"is a BPE without byte-level pre-tokenization (a SentencePiece conversion): put the model's {SentencePieceFileName} beside it.");
        if (!model.TryGetProperty("vocab", out var vocabElement)) throw Error("has no \"model.vocab\".");
        var vocab = ReadVocabulary(vocabElement, "model.vocab", Error);
        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesElement))
        {
            if (mergesElement.ValueKind != JsonValueKind.Array) throw Error("\"model.merges\" must be a list.");
            foreach (var merge in mergesElement.EnumerateArray()) merges.Add(ReadMerge(merge, merges.Count, Error));
        }
        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedElement) && addedElement.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in addedElement.EnumerateArray()) added.Add(TokenizerJson.AddedToken(token, null, Error));
        }
        var (prefix, suffix) = Template(root, Error);
        return Create(folder, path, vocab, merges, added, SplitPattern(root, Error), Normalizer(root, Error), new SpecialTokenIds.Defaults(null, null, prefix, suffix));
    }

    /// <summary>Reads <c>vocab.json</c> + <c>merges.txt</c> (GPT-2's files) and the special tokens of <paramref name="folder"/>; text is split with <see cref="Gpt2SplitPattern"/>.</summary>
    /// <exception cref="PeftFormatException">A file is malformed.</exception>
    public static BpeTextTokenizer FromVocabAndMerges(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var vocabPath = Path.Combine(folder, VocabFileName);
        var mergesPath = Path.Combine(folder, MergesFileName);
        Dictionary<string, int> vocab;
        using (var document = TokenizerJson.Parse(vocabPath))
            vocab = ReadVocabulary(document.RootElement, "the vocabulary", detail => new PeftFormatException(vocabPath, null, detail));
        var merges = new List<(string, string)>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(mergesPath))
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new PeftFormatException(mergesPath, null, $"line {lineNumber} must be two tokens separated by one space, not \"{line}\".");
            merges.Add((parts[0], parts[1]));
        }
        return Create(folder, mergesPath, vocab, merges, [], Gpt2SplitPattern, null, SpecialTokenIds.Defaults.None);
    }

    /// <summary>Whether <c>tokenizer.json</c> at <paramref name="path"/> is byte-level (a ByteLevel pre-tokenizer or decoder).</summary>
    /// <exception cref="PeftFormatException">The file is not JSON.</exception>
    internal static bool IsByteLevel(string path)
    {
        using var document = TokenizerJson.Parse(path);
        return IsByteLevel(document.RootElement);
    }

    private static bool IsByteLevel(JsonElement root) =>
        Steps(root, "pre_tokenizer", "pretokenizers").Any(s => TypeOf(s) == "ByteLevel")
        || Steps(root, "decoder", "decoders").Any(s => TypeOf(s) == "ByteLevel");

    private static BpeTextTokenizer Create(string folder, string source, Dictionary<string, int> vocab, List<(string Left, string Right)> merges,
        List<AddedToken> added, string pattern, Normalizer? normalizer, SpecialTokenIds.Defaults defaults)
    {
        for (var i = 0; i < merges.Count; i++)
        {
            var (left, right) = merges[i];
            foreach (var token in new[] { left, right, left + right })
            {
                if (!vocab.ContainsKey(token))
                    throw new PeftFormatException(source, null, $"merge {i + 1} (\"{left} {right}\") names \"{token}\", which is not in the vocabulary.");
            }
        }
        var learnedSize = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        var special = SpecialTokenIds.Resolve(folder, TokenizerConfig.ReadFolder(folder), added, t => vocab.TryGetValue(t, out var id) ? id : null, learnedSize, defaults);
        Regex split;
        try
        {
            split = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new PeftFormatException(source, null, $"the pre-tokenizer's pattern is not a .NET regular expression: {e.Message}", e);
        }
        var matched = special.Matched.Count == 0 ? null : special.Matched;
        try
        {
            var options = new BpeOptions(vocab)
            {
                Merges = merges.Select(m => m.Left + " " + m.Right),
                SpecialTokens = matched,
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(split, matched),
                Normalizer = normalizer,
            };
            return new BpeTextTokenizer(BpeTokenizer.Create(options), special);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new PeftFormatException(source, null, $"is not a byte-level BPE vocabulary Microsoft.ML.Tokenizers accepts: {e.Message}", e);
        }
    }

    private static Dictionary<string, int> ReadVocabulary(JsonElement element, string what, Func<string, Exception> error)
    {
        if (element.ValueKind != JsonValueKind.Object) throw error($"{what} must be an object of token: id.");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in element.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0) throw error($"{what}: the id of \"{entry.Name}\" must be a non-negative integer.");
            vocab[entry.Name] = id;
        }
        return vocab;
    }

    // Older files write a merge as "a b"; newer ones as ["a", "b"], which lets tokens hold spaces.
    private static (string, string) ReadMerge(JsonElement merge, int index, Func<string, Exception> error)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            var parts = merge.GetString()!.Split(' ');
            if (parts.Length == 2 && parts[0].Length > 0 && parts[1].Length > 0) return (parts[0], parts[1]);
        }
        else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
            && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String
            && !merge[0].GetString()!.Contains(' ') && !merge[1].GetString()!.Contains(' '))
        {
            return (merge[0].GetString()!, merge[1].GetString()!);
        }
        throw error($"merge {index + 1} must be \"a b\" or [\"a\", \"b\"] (tokens without spaces), not {merge.GetRawText()}.");
    }

    private static string SplitPattern(JsonElement root, Func<string, Exception> error)
    {
        foreach (var step in Steps(root, "pre_tokenizer", "pretokenizers"))
        {
            switch (TypeOf(step))
            {
                case "Split":
                    if (step.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object
                        && pattern.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String)
                        return regex.GetString()!;
                    throw error("the pre-tokenizer's Split must have a {\"Regex\": ...} pattern.");
                case "ByteLevel" when step.TryGetProperty("add_prefix_space", out var prefixSpace) && prefixSpace.ValueKind == JsonValueKind.True:
                    throw error("the ByteLevel pre-tokenizer adds a prefix space (add_prefix_space), which PeftGen does not read.");
            }
        }
        return Gpt2SplitPattern;
    }

    private static Normalizer? Normalizer(JsonElement root, Func<string, Exception> error)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null) return null;
        return TypeOf(normalizer) == "NFC"
            ? new NfcNormalizer()
            : throw error($"the normalizer {TypeOf(normalizer) ?? normalizer.GetRawText()} is not one PeftGen reads (none, or NFC as Qwen2's).");
    }

    // The post-processor's single-sequence template, e.g. Llama 3's [<|begin_of_text|>, A]: the special ids around the text.
    private static (int[] Prefix, int[] Suffix) Template(JsonElement root, Func<string, Exception> error)
    {
        var template = Steps(root, "post_processor", "processors").FirstOrDefault(s => TypeOf(s) == "TemplateProcessing");
        if (template.ValueKind != JsonValueKind.Object || !template.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array)
            return ([], []);
        var prefix = new List<int>();
        var suffix = new List<int>();
        var seenText = false;
        foreach (var piece in single.EnumerateArray())
        {
            if (piece.TryGetProperty("Sequence", out _))
            {
                seenText = true;
                continue;
            }
            if (!piece.TryGetProperty("SpecialToken", out var token) || !token.TryGetProperty("id", out var name)
                || !template.TryGetProperty("special_tokens", out var specials) || !specials.TryGetProperty(name.GetString() ?? "", out var entry)
                || !entry.TryGetProperty("ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
                throw error($"the post-processor's template piece {piece.GetRawText()} names no special token with ids.");
            foreach (var id in ids.EnumerateArray())
            {
                if (!id.TryGetInt32(out var value) || value < 0) throw error($"the post-processor's special token {name.GetRawText()} has an id that is not a non-negative integer.");
                (seenText ? suffix : prefix).Add(value);
            }
        }
        return (prefix.ToArray(), suffix.ToArray());
    }

    // A pipeline step is one object, or a {"type": "Sequence", <list>: [...]} of them.
    private static IEnumerable<JsonElement> Steps(JsonElement root, string name, string listName)
    {
        if (!root.TryGetProperty(name, out var step) || step.ValueKind != JsonValueKind.Object) yield break;
        if (TypeOf(step) == "Sequence" && step.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var inner in list.EnumerateArray()) yield return inner;
        }
        else
        {
            yield return step;
        }
    }

    private static string? TypeOf(JsonElement step) =>
        step.ValueKind == JsonValueKind.Object && step.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String ? type.GetString() : null;

    private protected override IReadOnlyList<int> EncodeText(string text) => tokenizer.EncodeToIds(text);

    private protected override string DecodeKept(IReadOnlyList<int> ids) => tokenizer.Decode(ids, considerSpecialTokens: true);

    /// <summary>Unicode NFC, as Qwen2's <c>tokenizer.json</c> asks before splitting.</summary>
    private sealed class NfcNormalizer : Microsoft.ML.Tokenizers.Normalizer
    {
        public override string Normalize(string original) => original.Normalize(System.Text.NormalizationForm.FormC);

        public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
    }
}
