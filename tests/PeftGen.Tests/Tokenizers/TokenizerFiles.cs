using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json.Nodes;

namespace PeftGen.Tests.Tokenizers;

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
internal sealed class TokenizerFolder : IDisposable
{
    public TokenizerFolder() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "peftgen-tok-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Write(string name, string text) => System.IO.File.WriteAllText(File(name), text, new UTF8Encoding(false));

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}

/// <summary>
/// A tiny byte-level BPE written the way GPT-2's files are, from its algorithm rather than from the code under test:
/// ids 0-255 are the single bytes (id = byte value, each spelled by GPT-2's byte-to-unicode table), then six merges,
/// then the added tokens.
/// </summary>
internal static class TinyBpe
{
    /// <summary>Merges in priority order; merge i makes token 256 + i.</summary>
    public static readonly (string Left, string Right)[] Merges =
    [
        ("Ġ", "t"),   // 256 Ġt
        ("h", "e"),   // 257 he
        ("Ġt", "he"), // 258 Ġthe
        ("l", "l"),   // 259 ll
        ("ll", "o"),  // 260 llo
        ("Ġ", "w"),   // 261 Ġw
    ];

    public const int EndOfText = 262;
    public const int ImStart = 263;
    public const int ImEnd = 264;
    public const int Tool = 265;

    /// <summary>Added tokens: three special, one not (decoding keeps it).</summary>
    public static readonly (int Id, string Content, bool Special)[] Added =
    [
        (EndOfText, "<|endoftext|>", true), (ImStart, "<|im_start|>", true), (ImEnd, "<|im_end|>", true), (Tool, "<tool>", false),
    ];

    /// <summary>GPT-2's <c>bytes_to_unicode</c>: printable Latin-1 bytes stand for themselves, the rest for U+0100 onwards in byte order.</summary>
    public static string ByteChar(int b)
    {
        static bool Printable(int x) => x is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        if (Printable(b)) return ((char)b).ToString();
        var shifted = 0;
        for (var x = 0; x < b; x++)
        {
            if (!Printable(x)) shifted++;
        }
        return ((char)(256 + shifted)).ToString();
    }

    public static JsonObject Vocabulary(bool withAdded = false)
    {
        var vocab = new JsonObject();
        for (var b = 0; b < 256; b++) vocab[ByteChar(b)] = b;
        for (var i = 0; i < Merges.Length; i++) vocab[Merges[i].Left + Merges[i].Right] = 256 + i;
        if (withAdded)
        {
            foreach (var (id, content, _) in Added) vocab[content] = id;
        }
        return vocab;
    }

    /// <summary>A <c>tokenizer.json</c> as transformers writes it for GPT-2 (merges as strings) or newer models (pairs).</summary>
    public static JsonObject TokenizerJson(bool mergesAsPairs, JsonNode? postProcessor = null, string? splitPattern = null)
    {
        var merges = new JsonArray();
        foreach (var (left, right) in Merges) merges.Add(mergesAsPairs ? new JsonArray(left, right) : JsonValue.Create($"{left} {right}"));
        var added = new JsonArray();
        foreach (var (id, content, special) in Added)
            added.Add(new JsonObject { ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = special });
        JsonNode byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = splitPattern is null };
        var preTokenizer = splitPattern is null
            ? byteLevel
            : new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = splitPattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    byteLevel),
            };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = postProcessor,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false,
                ["vocab"] = Vocabulary(), ["merges"] = merges,
            },
        };
    }

    /// <summary>Llama 3's post-processor: <c>&lt;|endoftext|&gt;</c> stands in for its BOS, in front of the text.</summary>
    public static JsonObject BosTemplate() => new()
    {
        ["type"] = "TemplateProcessing",
        ["single"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<|endoftext|>", ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
        ["pair"] = new JsonArray(),
        ["special_tokens"] = new JsonObject
        {
            ["<|endoftext|>"] = new JsonObject { ["id"] = "<|endoftext|>", ["ids"] = new JsonArray(EndOfText), ["tokens"] = new JsonArray("<|endoftext|>") },
        },
    };

    public static string MergesText() => "#version: 0.2\n" + string.Concat(Merges.Select(m => $"{m.Left} {m.Right}\n"));

    /// <summary>Writes <c>tokenizer.json</c> and a Qwen2-like <c>tokenizer_config.json</c> (EOS <c>&lt;|endoftext|&gt;</c>, no BOS).</summary>
    public static void WriteTokenizerJson(TokenizerFolder folder, bool mergesAsPairs = false, JsonNode? postProcessor = null)
    {
        folder.Write("tokenizer.json", TokenizerJson(mergesAsPairs, postProcessor).ToJsonString());
        folder.Write("tokenizer_config.json", Config().ToJsonString());
    }

    /// <summary>Writes GPT-2's pair of files (the added tokens live in the vocabulary and the config's <c>added_tokens_decoder</c>).</summary>
    public static void WriteVocabAndMerges(TokenizerFolder folder)
    {
        folder.Write("vocab.json", Vocabulary(withAdded: true).ToJsonString());
        folder.Write("merges.txt", MergesText());
        var config = Config();
        var decoder = new JsonObject();
        foreach (var (id, content, special) in Added) decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject { ["content"] = content, ["special"] = special };
        config["added_tokens_decoder"] = decoder;
        folder.Write("tokenizer_config.json", config.ToJsonString());
    }

    public static JsonObject Config() => new() { ["bos_token"] = null, ["eos_token"] = "<|endoftext|>", ["pad_token"] = "<|endoftext|>", ["model_max_length"] = 32768 };
}
