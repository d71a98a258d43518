using System;
using System.Collections.Generic;
using PeftGen.Data;
using PeftGen.Metrics;

namespace PeftGen.Training;

/// <summary>Generated completions for a set of records and their ROUGE against the reference completions.</summary>
/// <param name="Predictions">One generated completion per record, in order.</param>
/// <param name="Rouge">Corpus ROUGE (mean per-example F1).</param>
public sealed record GenerationScore(IReadOnlyList<string> Predictions, CorpusRouge Rouge);

/// <summary>Generates a completion for each prompt the way training formatted it, and scores it with ROUGE.</summary>
public static class GenerationScoring
{
    /// <summary>
    /// For each record: encode <c>prompt + separator</c> with <paramref name="examples"/>, generate until EOS or
    /// <see cref="GenerationOptions.MaxNewTokens"/>, decode, and score against the record's completion.
    /// </summary>
    public static GenerationScore Run(TextGenerator generator, SupervisedExamples examples, ITextTokenizer tokenizer,
        IReadOnlyList<PromptCompletion> records, GenerationOptions options, IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(options);
        var stopAtEos = options with { EndOfSequenceId = options.EndOfSequenceId ?? tokenizer.EndOfSequenceId };
        var predictions = new List<string>(records.Count);
        var references = new List<string>(records.Count);
        foreach (var record in records)
        {
            var ids = generator.Generate(examples.EncodePrompt(record.Prompt), stopAtEos);
            predictions.Add(tokenizer.Decode(ids).Trim());
            references.Add(record.Completion);
            progress?.Report(predictions.Count);
        }
        return new GenerationScore(predictions, Rouge.ScoreCorpus(references, predictions));
    }
}
