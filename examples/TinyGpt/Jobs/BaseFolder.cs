using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text.Json;
using PeftGen;
using PeftGen.Checkpoints;
using PeftGen.Data;
using TinyGpt.Models;
using static TorchSharp.torch;

namespace TinyGpt.Jobs;

/// <summary>How a base was pretrained and how good it is on held-out Brown documents.</summary>
/// <param name="Command">The command that reproduces it.</param>
/// <param name="Settings">The pretraining settings' key.</param>
/// <param name="Seed">Seed of data order, initialisation and dropout.</param>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="BatchSequences">Sequences per step.</param>
/// <param name="SequenceTokens">Tokens per sequence.</param>
/// <param name="TokensSeen">Tokens trained on (steps × batch × sequence).</param>
/// <param name="CorpusTokens">Tokens in the training corpus (so TokensSeen / CorpusTokens passes were made).</param>
/// <param name="ComputeDType">The dtype of the matrix products.</param>
/// <param name="WallMinutes">Wall time of the whole job.</param>
/// <param name="Machine">Cores and CPU it ran on.</param>
/// <param name="FinalTrainingLoss">Mean training loss of the last 20 steps.</param>
/// <param name="HeldOutLoss">Mean loss per token over every block of the held-out documents.</param>
/// <param name="HeldOutPerplexity"><c>exp(HeldOutLoss)</c>.</param>
/// <param name="HeldOutBitsPerByte">The held-out loss in bits per UTF-8 byte of text (comparable across vocabularies).</param>
/// <param name="Vocabulary">Tokens in the trimmed vocabulary.</param>
/// <param name="Parameters">Parameters of the model.</param>
/// <param name="Date">When it finished.</param>
public sealed record BaseRecipe(
    string Command, string Settings, long Seed, int Steps, int BatchSequences, int SequenceTokens, long TokensSeen, long CorpusTokens,
    string ComputeDType, double WallMinutes, string Machine, double FinalTrainingLoss, double HeldOutLoss, double HeldOutPerplexity,
    double HeldOutBitsPerByte, int Vocabulary, long Parameters, string Date, string? Corpus = null, RepeatProbe? HeldOutRepeat = null);

/// <summary>
/// A pretrained base on disk: <c>model.safetensors</c> (bfloat16, GPT-2 layout, head tied to <c>wte</c>),
/// <c>config.json</c>, <c>vocabulary.json</c> (the trimmed vocabulary), <c>recipe.json</c> and <c>SHA256SUMS</c>, whose
/// digests are checked every time the base is opened.
/// </summary>
public static class BaseFolder
{
    /// <summary>The recipe's file name.</summary>
    public const string RecipeFile = "recipe.json";

    /// <summary>The checksum file's name (<c>sha256sum</c>'s format).</summary>
    public const string ChecksumFile = "SHA256SUMS";

    private static readonly string[] Checked = ["model.safetensors", "config.json", TrimmedVocabularyTokenizer.FileName];

    // A snapshot's recipe has no held-out figures yet: NaN is written as the JSON literal "NaN".
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The base that ships with the example (copied next to the program by the build).</summary>
    public static string Shipped => Path.Combine(AppContext.BaseDirectory, "Base");

    /// <summary>Writes a base into <paramref name="folder"/> (replacing it as a whole once everything is written).</summary>
    public static void Write(TinyGptFull model, TrimmedVocabularyTokenizer tokenizer, BaseRecipe recipe, string folder)
    {
        var staging = folder.TrimEnd(Path.DirectorySeparatorChar) + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        PretrainedSaver.Save(model, staging, new PretrainedSaveOptions
        {
            TiedWeights = [TiedWeight.Gpt2Head],
            DType = ScalarType.BFloat16,
            Config = PretrainJob.Gpt2Config("bfloat16"),
        });
        tokenizer.Save(staging);
        File.WriteAllText(Path.Combine(staging, RecipeFile), JsonSerializer.Serialize(recipe, Json) + "\n");
        File.WriteAllLines(Path.Combine(staging, ChecksumFile), Checked.Select(name => $"{Sha256(Path.Combine(staging, name))}  {name}"));
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.Move(staging, folder);
    }

    /// <summary>The recipe of a complete base folder, or null when there is none.</summary>
    public static BaseRecipe? TryReadRecipe(string folder)
    {
        var path = Path.Combine(folder, RecipeFile);
        if (!File.Exists(path) || !Checked.All(name => File.Exists(Path.Combine(folder, name)))) return null;
        return JsonSerializer.Deserialize<BaseRecipe>(File.ReadAllText(path), Json);
    }

    /// <summary>Checks every digest of <c>SHA256SUMS</c> and returns the base's tokenizer and recipe.</summary>
    /// <exception cref="InvalidDataException">A file is missing or its digest differs.</exception>
    public static (TrimmedVocabularyTokenizer Tokenizer, BaseRecipe Recipe) Open(string folder)
    {
        var sums = Path.Combine(folder, ChecksumFile);
        if (!File.Exists(sums))
            throw new InvalidDataException($"'{folder}' is not a pretrained base: {ChecksumFile} is missing (make one with the 'pretrain' command).");
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(sums).Where(l => l.Length > 0))
        {
            var parts = line.Split("  ", 2);
            if (parts.Length != 2) throw new InvalidDataException($"{sums}: '{line}' is not '<sha256>  <file>'.");
            expected[parts[1]] = parts[0];
        }
        foreach (var name in Checked)
        {
            var path = Path.Combine(folder, name);
            if (!expected.TryGetValue(name, out var digest)) throw new InvalidDataException($"{sums} lists no digest for {name}.");
            if (!File.Exists(path)) throw new InvalidDataException($"The base in '{folder}' lacks {name}.");
            var actual = Sha256(path);
            if (!string.Equals(actual, digest, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{path} does not match {ChecksumFile}: SHA-256 {actual}, expected {digest}. The file is damaged or was replaced; restore it (git checkout) or pretrain again.");
        }
        var recipe = TryReadRecipe(folder) ?? throw new InvalidDataException($"The base in '{folder}' has no {RecipeFile}.");
        return (TrimmedVocabularyTokenizer.Load(folder, new Gpt2Tokenizer()), recipe);
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
