using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Metrics;
using PeftGen.Training;

namespace PeftGen.Inference;

/// <summary>How <see cref="MinimumBayesRiskDecoder"/> draws its candidates.</summary>
public sealed record MinimumBayesRiskOptions
{
    /// <summary>Candidates sampled per prompt (at least 2).</summary>
    public int Samples { get; init; } = 16;

    /// <summary>Softmax temperature of the samples (above 0).</summary>
    public double Temperature { get; init; } = 0.5;

    /// <summary>Rows decoded together; each prompt's samples are rows of one batch, so more rows amortize each step.</summary>
    public int BatchSize { get; init; } = 256;
}

/// <summary>
/// Minimum-Bayes-risk decoding (Kumar and Byrne, 2004): sample several completions of each prompt and return the one
/// that agrees best with the others, its mean utility against them being an estimate of its expected utility against
/// the unknown reference. With ROUGE-1 F1 as the utility (the default) it picks the consensus completion, which greedy
/// decoding of a small model often is not.
/// </summary>
/// <remarks>
/// Candidates come from <see cref="TextGenerator.GenerateBatch"/> with the given options at
/// <see cref="MinimumBayesRiskOptions.Temperature"/>; every prompt's samples are drawn in one call from one seeded
/// generator, so a run is repeatable. Ties go to the earlier sample.
/// </remarks>
public sealed class MinimumBayesRiskDecoder
{
    private readonly TextGenerator generator;
    private readonly ITextTokenizer tokenizer;
    private readonly Func<string, string, double> utility;

    /// <summary>Creates a decoder; <paramref name="utility"/> (hypothesis, pseudo-reference) defaults to ROUGE-1 F1.</summary>
    public MinimumBayesRiskDecoder(TextGenerator generator, ITextTokenizer tokenizer, Func<string, string, double>? utility = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(tokenizer);
        this.generator = generator;
        this.tokenizer = tokenizer;
        this.utility = utility ?? ((hypothesis, reference) => Rouge.Score(reference, hypothesis).Rouge1.F1);
    }

    /// <summary>The chosen completion of each prompt, in order (decoded and trimmed).</summary>
    /// <param name="prompts">Token ids of each prompt.</param>
    /// <param name="options">Length, stopping and suppression settings of the samples (their temperature is replaced).</param>
    /// <param name="mbr">How many samples, at what temperature.</param>
    public IReadOnlyList<string> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, MinimumBayesRiskOptions mbr)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(mbr);
        if (mbr.Samples < 2) throw new ArgumentOutOfRangeException(nameof(mbr), mbr.Samples, "Minimum-Bayes-risk decoding needs at least 2 samples.");
        if (!(mbr.Temperature > 0) || double.IsInfinity(mbr.Temperature))
            throw new ArgumentOutOfRangeException(nameof(mbr), mbr.Temperature, "The sampling temperature must be a finite number above 0.");
        if (mbr.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(mbr), mbr.BatchSize, "BatchSize must be positive.");

        // Prompt p's samples are rows p·S … p·S + S − 1: equal lengths, so they share batches.
        var rows = new List<IReadOnlyList<int>>(prompts.Count * mbr.Samples);
        foreach (var prompt in prompts)
        {
            for (int s = 0; s < mbr.Samples; s++) rows.Add(prompt);
        }
        var sampled = generator.GenerateBatch(rows, options with
        {
            Temperature = mbr.Temperature,
            EndOfSequenceId = options.EndOfSequenceId ?? tokenizer.EndOfSequenceId,
            BatchSize = mbr.BatchSize,
        });
        var chosen = new string[prompts.Count];
        for (int p = 0; p < prompts.Count; p++)
        {
            var candidates = new string[mbr.Samples];
            for (int s = 0; s < mbr.Samples; s++) candidates[s] = tokenizer.Decode(sampled[p * mbr.Samples + s]).Trim();
            chosen[p] = candidates[Consensus(candidates, utility)];
        }
        return chosen;
    }

    /// <summary>The index of the candidate with the highest total utility against all the others (the first on a tie).</summary>
    public static int Consensus(IReadOnlyList<string> candidates, Func<string, string, double> utility)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(utility);
        if (candidates.Count == 0) throw new ArgumentException("No candidates to choose from.", nameof(candidates));
        int best = 0;
        double bestTotal = double.NegativeInfinity;
        for (int i = 0; i < candidates.Count; i++)
        {
            double total = 0;
            for (int j = 0; j < candidates.Count; j++)
            {
                if (i != j) total += utility(candidates[i], candidates[j]);
            }
            if (total > bestTotal)
            {
                bestTotal = total;
                best = i;
            }
        }
        return best;
    }
}
