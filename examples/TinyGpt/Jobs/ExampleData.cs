using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
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

    /// <summary>
    /// The fine-tuning split's training records written as dictionary entries (<c>word, pos: definition. Example: ….</c>)
    /// for pretraining: the base learns what words mean, fine-tuning teaches it the task's prompt. Validation's words
    /// never occur as a training record's word (the data's split guarantees it); <paramref name="heldOut"/> (the
    /// records that choose fine-tuning's checkpoint) and any record whose definition is also a validation definition
    /// are left out, so no pretraining text is a definition the main job scores or selects on.
    /// </summary>
    /// <param name="heldOut">Training records to leave out.</param>
    public static IReadOnlyList<string> PretrainDefinitions(IEnumerable<PromptCompletion> heldOut)
    {
        var skip = new HashSet<PromptCompletion>(heldOut);
        var validDefinitions = new HashSet<string>(Valid().Select(r => r.Completion), StringComparer.OrdinalIgnoreCase);
        var entries = new List<string>();
        foreach (var record in Train())
        {
            if (skip.Contains(record) || validDefinitions.Contains(record.Completion)) continue;
            entries.Add(DictionaryEntry(record));
        }
        return entries;
    }

    /// <summary>One record as a dictionary entry: <c>paint, verb: make a painting. Example: he painted all day in the garden.</c></summary>
    /// <param name="record">A record whose prompt is <c>WORD (POS)</c> or <c>WORD (POS): EXAMPLE</c>.</param>
    public static string DictionaryEntry(PromptCompletion record)
    {
        var match = PromptShape.Match(record.Prompt);
        if (!match.Success)
            throw new FormatException($"A training prompt is not 'WORD (POS)' or 'WORD (POS): EXAMPLE': \"{record.Prompt}\".");
        var entry = $"{match.Groups[1].Value}, {match.Groups[2].Value}: {record.Completion}.";
        return match.Groups[3].Success ? $"{entry} Example: {match.Groups[3].Value}." : entry;
    }

    private static readonly Regex PromptShape = new(@"^(.+?) \((noun|verb|adjective|adverb)\)(?:: (.+))?$", RegexOptions.Singleline | RegexOptions.CultureInvariant);

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
