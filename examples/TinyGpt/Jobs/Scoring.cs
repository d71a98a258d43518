using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using PeftGen.Data;
using PeftGen.Inference;
using PeftGen.Metrics;
using PeftGen.Training;
using TinyGpt.Rendering;

namespace TinyGpt.Jobs;

/// <summary>How one row of the comparison scores on the validation records.</summary>
/// <param name="ValidationLoss">Mean loss per completion token over every validation record (NaN for an answer that is not a model).</param>
/// <param name="Rouge1">Mean ROUGE-1 F1 with its 95 % bootstrap interval.</param>
/// <param name="Rouge2">Mean ROUGE-2 F1.</param>
/// <param name="RougeL">Mean ROUGE-L F1.</param>
/// <param name="Records">Validation records scored.</param>
/// <param name="Empty">Outputs with no words.</param>
/// <param name="Degenerate">Outputs with one word repeated more than 4 times in a row.</param>
/// <param name="GenerationSeconds">Wall time of generating the outputs.</param>
/// <param name="GreedyRouge1">Mean ROUGE-1 F1 of greedy outputs, when the scored ones came from minimum-Bayes-risk decoding (NaN otherwise).</param>
public sealed record Scores(double ValidationLoss, MeanInterval Rouge1, double Rouge2, double RougeL, int Records, int Empty, int Degenerate, double GenerationSeconds,
    double GreedyRouge1 = double.NaN)
{
    /// <summary>Each record's ROUGE-1 F1, in the records' order (what <see cref="Rouge1"/> averages); not written to JSON.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<double> PerRecordRouge1 { get; init; } = [];

    /// <summary>
    /// Record by record against <paramref name="reference"/> (the constant answer's scores on the same records): on how
    /// many this row's ROUGE-1 is higher, the same, lower.
    /// </summary>
    public RecordComparison Against(string row, Scores reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        if (PerRecordRouge1.Count != reference.PerRecordRouge1.Count)
            throw new ArgumentException($"{PerRecordRouge1.Count} records scored against {reference.PerRecordRouge1.Count}.", nameof(reference));
        var pairs = PerRecordRouge1.Zip(reference.PerRecordRouge1).ToList();
        return new RecordComparison(row, pairs.Count(p => p.First > p.Second), pairs.Count(p => p.First == p.Second), pairs.Count(p => p.First < p.Second));
    }

    /// <summary>Empty or degenerate outputs as a fraction of the records.</summary>
    public double BadFraction => Records == 0 ? 0 : (Empty + Degenerate) / (double)Records;
}

/// <summary>How a row's outputs fare against the constant answer, one validation record at a time (ROUGE-1 F1).</summary>
/// <param name="Row">The row's name.</param>
/// <param name="Above">Records on which the row scores higher than the constant.</param>
/// <param name="Equal">Records on which both score the same.</param>
/// <param name="Below">Records on which the constant scores higher.</param>
public sealed record RecordComparison(string Row, int Above, int Equal, int Below);

/// <summary>A generated definition next to its reference.</summary>
public sealed record GeneratedSample(string Prompt, string Reference, string Prediction);

/// <summary>Scores outputs the same way for every row: ROUGE against the references, an interval, and degenerate outputs.</summary>
public static class Scoring
{
    /// <summary>
    /// The decoding options every row uses: at most MaxNewTokens, at least one token, no repeated trigram (Hugging
    /// Face's options of those names); greedy, or the samples of <see cref="Consensus"/>.
    /// </summary>
    public static GenerationOptions Decoding(JobSettings settings, RunContext context) => new()
    {
        MaxNewTokens = settings.MaxNewTokens,
        Seed = settings.Seed,
        MinNewTokens = 1,
        NoRepeatNGramSize = 3,
        Precision = context.Precision,
        // Prompts of every length share left-padded batches: fewer, fuller steps.
        BatchSize = 128,
    };

    /// <summary>Minimum-Bayes-risk decoding as the settings ask, or null for greedy outputs.</summary>
    public static MinimumBayesRiskOptions? Consensus(JobSettings settings) => settings.DecodingSamples > 0
        ? new MinimumBayesRiskOptions { Samples = settings.DecodingSamples, Temperature = settings.DecodingTemperature }
        : null;

    /// <summary>
    /// Generates for every record with <paramref name="generator"/> and scores the outputs: the consensus of the
    /// settings' samples (and greedy outputs for comparison), or greedy outputs when the settings ask for no samples.
    /// </summary>
    public static (Scores Scores, IReadOnlyList<string> Predictions) Generate(string label, TextGenerator generator, SupervisedExamples examples,
        ITextTokenizer tokenizer, IReadOnlyList<PromptCompletion> records, JobSettings settings, GenerationOptions decoding, double validationLoss)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var greedy = ConsoleReporter.Counted($"{label}: greedy definitions for {records.Count} prompts", records.Count,
            progress => GenerationScoring.Run(generator, examples, tokenizer, records, decoding, progress));
        if (Consensus(settings) is not { } mbr)
            return (Of(greedy.PerRecord, greedy.Predictions, validationLoss, clock.Elapsed.TotalSeconds), greedy.Predictions);
        var score = ConsoleReporter.Counted($"{label}: {mbr.Samples} sampled definitions per prompt, keeping the consensus", records.Count,
            progress => GenerationScoring.Run(generator, examples, tokenizer, records, decoding, progress, mbr));
        var scores = Of(score.PerRecord, score.Predictions, validationLoss, clock.Elapsed.TotalSeconds) with { GreedyRouge1 = greedy.Rouge.Rouge1 };
        return (scores, score.Predictions);
    }

    /// <summary>Scores aligned predictions against the records' completions.</summary>
    public static Scores Of(IReadOnlyList<PromptCompletion> records, IReadOnlyList<string> predictions, double validationLoss, double seconds)
    {
        if (records.Count != predictions.Count) throw new ArgumentException($"{records.Count} records but {predictions.Count} predictions.", nameof(predictions));
        return Of(records.Select((r, i) => Rouge.Score(r.Completion, predictions[i])).ToList(), predictions, validationLoss, seconds);
    }

    // From ROUGE already computed per record (generation scoring computes it once).
    private static Scores Of(IReadOnlyList<RougeScores> perRecord, IReadOnlyList<string> predictions, double validationLoss, double seconds)
    {
        var words = predictions.Select(Rouge.Tokenize).ToList();
        var f1 = perRecord.Select(s => s.Rouge1.F1).ToList();
        return new Scores(
            validationLoss,
            Bootstrap.MeanInterval(f1),
            perRecord.Average(s => s.Rouge2.F1),
            perRecord.Average(s => s.RougeL.F1),
            perRecord.Count,
            words.Count(w => w.Count == 0),
            words.Count(IsDegenerate),
            seconds)
        { PerRecordRouge1 = f1 };
    }

    /// <summary>One word repeated more than 4 times in a row.</summary>
    public static bool IsDegenerate(IReadOnlyList<string> words)
    {
        int run = 1;
        for (int i = 1; i < words.Count; i++)
        {
            run = words[i] == words[i - 1] ? run + 1 : 1;
            if (run > 4) return true;
        }
        return false;
    }

    /// <summary>
    /// Writes every prediction beside its prompt, reference and ROUGE-1 F1, one JSON object a line
    /// (<c>{"prompt": …, "reference": …, "prediction": …, "rouge1": …}</c>), so a reader sees what a row's mean is made
    /// of. The scores are those <paramref name="scores"/> computed for these predictions. Returns <paramref name="path"/>.
    /// </summary>
    public static string WritePredictions(string path, IReadOnlyList<PromptCompletion> records, IReadOnlyList<string> predictions, Scores scores)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(scores);
        if (records.Count != predictions.Count || records.Count != scores.PerRecordRouge1.Count)
            throw new ArgumentException($"{records.Count} records, {predictions.Count} predictions and {scores.PerRecordRouge1.Count} scores.", nameof(predictions));
        var lines = records.Select((r, i) => JsonSerializer.Serialize(new PredictionLine(r.Prompt, r.Completion, predictions[i], scores.PerRecordRouge1[i]), PredictionJson));
        File.WriteAllLines(path, lines);
        return path;
    }

    private static readonly JsonSerializerOptions PredictionJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed record PredictionLine(string Prompt, string Reference, string Prediction, double Rouge1);

    /// <summary>The first few outputs next to their prompts and references.</summary>
    public static GeneratedSample[] Samples(IReadOnlyList<PromptCompletion> records, IReadOnlyList<string> predictions, int count = 5) =>
        records.Zip(predictions, (r, p) => new GeneratedSample(r.Prompt, r.Completion, p)).Take(count).ToArray();
}
