using System;
using System.Collections.Generic;
using Microsoft.ML.Tokenizers;

namespace PeftGen;

/// <summary>Turns a soft prompt's init text into token ids, offline, with the tokenizer the model names.</summary>
internal static class PromptTokenizer
{
    // Building the GPT-2 BPE tables takes a noticeable moment; build them once per process.
    private static readonly Lazy<Tokenizer> Gpt2 = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    /// <summary>The token ids of <paramref name="text"/>, without special tokens (as GPT-2's Hugging Face tokenizer).</summary>
    public static IReadOnlyList<int> Encode(PeftTokenizer tokenizer, string text) => tokenizer switch
    {
        PeftTokenizer.Gpt2 => Gpt2.Value.EncodeToIds(text),
        _ => throw new ArgumentException($"No tokenizer is configured ({tokenizer}); text initialisation needs one.", nameof(tokenizer)),
    };

    /// <summary>The Hugging Face name of a tokenizer, as PEFT's <c>tokenizer_name_or_path</c>; null for none.</summary>
    public static string? HubName(PeftTokenizer tokenizer) => tokenizer == PeftTokenizer.Gpt2 ? "gpt2" : null;

    /// <summary>The tokenizer a PEFT <c>tokenizer_name_or_path</c> stands for; <see cref="PeftTokenizer.None"/> when unknown.</summary>
    public static PeftTokenizer FromHubName(string? name) => name switch
    {
        "gpt2" or "openai-community/gpt2" => PeftTokenizer.Gpt2,
        _ => PeftTokenizer.None,
    };

    /// <summary>
    /// Fits token ids to exactly <paramref name="count"/> entries as PEFT does: truncate when longer, otherwise
    /// repeat the whole list ⌈count / length⌉ times and truncate.
    /// </summary>
    public static int[] FitToLength(IReadOnlyList<int> ids, int count)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Count == 0) throw new ArgumentException("The init text produced no tokens.", nameof(ids));
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "Count must be positive.");
        var result = new int[count];
        for (var i = 0; i < count; i++) result[i] = ids[i % ids.Count];
        return result;
    }
}
