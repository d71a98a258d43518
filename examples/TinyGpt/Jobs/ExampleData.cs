using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using PeftGen.Data;

namespace TinyGpt.Jobs;

/// <summary>The data that ships with the example (see Data/README.md for provenance and licences).</summary>
public static class ExampleData
{
    /// <summary>The folder holding the data files, next to the program.</summary>
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "Data");

    /// <summary>Brown corpus paragraphs for pretraining.</summary>
    public static IReadOnlyList<string> PretrainParagraphs() => ReadParagraphsGz("pretrain.txt.gz");

    /// <summary>Held-out Brown documents for the base model's perplexity.</summary>
    public static IReadOnlyList<string> PretrainValidParagraphs() => ReadParagraphsGz("pretrain_valid.txt.gz");

    /// <summary>WordNet definition records for fine-tuning.</summary>
    public static IReadOnlyList<PromptCompletion> Train()
    {
        using var gz = new GZipStream(File.OpenRead(Require("train.jsonl.gz")), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        return TextReaders.ReadPromptCompletions(reader, "train.jsonl.gz");
    }

    /// <summary>Validation records (target words disjoint from train).</summary>
    public static IReadOnlyList<PromptCompletion> Valid() => TextReaders.ReadPromptCompletions(Require("valid.jsonl"));

    /// <summary>The first <paramref name="count"/> records of a seeded shuffle.</summary>
    public static IReadOnlyList<T> Sample<T>(IReadOnlyList<T> records, int count, long seed)
    {
        var order = Enumerable.Range(0, records.Count).ToArray();
        new Random(unchecked((int)seed)).Shuffle(order);
        return order.Take(Math.Min(count, records.Count)).Select(i => records[i]).ToList();
    }

    private static IReadOnlyList<string> ReadParagraphsGz(string name)
    {
        using var gz = new GZipStream(File.OpenRead(Require(name)), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        return TextReaders.ReadParagraphs(reader);
    }

    private static string Require(string name)
    {
        var path = Path.Combine(Folder, name);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Example data file '{path}' is missing; it ships in examples/TinyGpt/Data and is copied next to the program by the build.", path);
        return path;
    }
}
