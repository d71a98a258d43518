using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Inference;
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
    /// <see cref="GenerationOptions.MaxNewTokens"/> (in batches: prompts of any lengths left-padded where the model supports it, else of one length), decode, and score against the
    /// record's completion. With <paramref name="minimumBayesRisk"/> each completion is the consensus of that many
    /// samples (<see cref="MinimumBayesRiskDecoder"/>), else it is decoded as <paramref name="options"/> say. Progress
    /// reports records done.
    /// </summary>
    public static GenerationScore Run(TextGenerator generator, SupervisedExamples examples, ITextTokenizer tokenizer,
        IReadOnlyList<PromptCompletion> records, GenerationOptions options, IProgress<int>? progress = null,
        MinimumBayesRiskOptions? minimumBayesRisk = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(options);
        var stopAtEos = options with { EndOfSequenceId = options.EndOfSequenceId ?? tokenizer.EndOfSequenceId };
        var prompts = new List<IReadOnlyList<int>>(records.Count);
        foreach (var record in records) prompts.Add(examples.EncodePrompt(record.Prompt));
        var consensus = minimumBayesRisk is null ? null : new MinimumBayesRiskDecoder(generator, tokenizer);
        // Prompts in order of length, so that each call's batches are full (the generator batches neighbouring lengths), in
        // calls of enough prompts to fill its batches and few enough for progress to move.
        var order = Enumerable.Range(0, prompts.Count).OrderBy(i => prompts[i].Count).ToArray();
        int step = minimumBayesRisk is null
            ? Math.Max(1, stopAtEos.BatchSize * 4)
            : Math.Max(1, minimumBayesRisk.BatchSize * 4 / minimumBayesRisk.Samples);
        var predictions = new string[records.Count];
        for (int start = 0; start < order.Length; start += step)
        {
            var indices = order.AsSpan(start, Math.Min(step, order.Length - start)).ToArray();
            var chunk = indices.Select(i => prompts[i]).ToList();
            var texts = consensus is not null
                ? consensus.Generate(chunk, stopAtEos, minimumBayesRisk!)
                : generator.GenerateBatch(chunk, stopAtEos).Select(ids => tokenizer.Decode(ids).Trim()).ToList();
            for (int k = 0; k < indices.Length; k++) predictions[indices[k]] = texts[k];
            progress?.Report(start + indices.Length);
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
