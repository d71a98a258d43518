using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Data;

namespace TinyGpt.Jobs;

/// <summary>The data that ships with the example (see Data/README.md for provenance and licences).</summary>
public static class ExampleData
{
    /// <summary>The folder holding the data files, next to the program.</summary>
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "Data");

    private static readonly Lazy<IReadOnlyList<PromptCompletion>> TrainRecords = new(() => TextReaders.ReadPromptCompletions(Require("train.jsonl.gz")));
    private static readonly Lazy<IReadOnlyList<PromptCompletion>> ValidRecords = new(() => TextReaders.ReadPromptCompletions(Require("valid.jsonl")));

    /// <summary>Brown corpus paragraphs for pretraining.</summary>
    public static IReadOnlyList<string> PretrainParagraphs() => TextReaders.ReadParagraphs(Require("pretrain.txt.gz"));

    /// <summary>Held-out Brown documents for the base model's perplexity.</summary>
    public static IReadOnlyList<string> PretrainValidParagraphs() => TextReaders.ReadParagraphs(Require("pretrain_valid.txt.gz"));

    /// <summary>WordNet definition records for fine-tuning (read once per process; every method uses the same).</summary>
    public static IReadOnlyList<PromptCompletion> Train() => TrainRecords.Value;

    /// <summary>Validation records (target words disjoint from train).</summary>
    public static IReadOnlyList<PromptCompletion> Valid() => ValidRecords.Value;

    /// <summary>The first <paramref name="count"/> records of a seeded shuffle.</summary>
    public static IReadOnlyList<T> Sample<T>(IReadOnlyList<T> records, int count, long seed)
    {
        var order = Enumerable.Range(0, records.Count).ToArray();
        new Random(unchecked((int)seed)).Shuffle(order);
        return order.Take(Math.Min(count, records.Count)).Select(i => records[i]).ToList();
    }

    private static string Require(string name)
    {
        var path = Path.Combine(Folder, name);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Example data file '{path}' is missing; it ships in examples/TinyGpt/Data and is copied next to the program by the build.", path);
        return path;
    }
}
