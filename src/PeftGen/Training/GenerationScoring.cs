using System;
using System.Collections.Generic;
using PeftGen.Data;
using PeftGen.Metrics;

namespace PeftGen.Training;

/// <summary>Generated completions for a set of records and their ROUGE against the reference completions.</summary>
/// <param name="Predictions">One generated completion per record, in order.</param>
/// <param name="Rouge">Corpus ROUGE (mean per-example F1).</param>
/// <param name="PerRecord">Each record's ROUGE scores, in order (for intervals and per-record analysis).</param>
public sealed record GenerationScore(IReadOnlyList<string> Predictions, CorpusRouge Rouge, IReadOnlyList<RougeScores> PerRecord);

/// <summary>Generates a completion for each prompt the way training formatted it, and scores it with ROUGE.</summary>
public static class GenerationScoring
{
    /// <summary>
    /// For each record: encode <c>prompt + separator</c> with <paramref name="examples"/>, generate until EOS or
    /// <see cref="GenerationOptions.MaxNewTokens"/> (prompts of equal length in batches), decode, and score against the
    /// record's completion. Progress reports records done.
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
        var prompts = new List<IReadOnlyList<int>>(records.Count);
        foreach (var record in records) prompts.Add(examples.EncodePrompt(record.Prompt));
        var predictions = new List<string>(records.Count);
        int step = Math.Max(1, stopAtEos.BatchSize * 4);
        for (int start = 0; start < prompts.Count; start += step)
        {
            foreach (var ids in generator.GenerateBatch(prompts.GetRange(start, Math.Min(step, prompts.Count - start)), stopAtEos))
                predictions.Add(tokenizer.Decode(ids).Trim());
            progress?.Report(predictions.Count);
        }
        var perRecord = new List<RougeScores>(records.Count);
        double r1 = 0, r2 = 0, rl = 0;
        for (int i = 0; i < records.Count; i++)
        {
            var scores = Rouge.Score(records[i].Completion, predictions[i]);
            perRecord.Add(scores);
            r1 += scores.Rouge1.F1;
            r2 += scores.Rouge2.F1;
            rl += scores.RougeL.F1;
        }
        int n = Math.Max(records.Count, 1);
        return new GenerationScore(predictions, new CorpusRouge(r1 / n, r2 / n, rl / n, records.Count), perRecord);
    }
}
