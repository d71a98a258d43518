using System;
using System.Collections.Generic;
using System.Text;

namespace PeftGen.Metrics;

/// <summary>Precision, recall and F1 of one ROUGE variant.</summary>
/// <param name="Precision">Overlap divided by the candidate's count.</param>
/// <param name="Recall">Overlap divided by the reference's count.</param>
/// <param name="F1">Harmonic mean of precision and recall (0 when both are 0).</param>
public readonly record struct RougeScore(double Precision, double Recall, double F1);

/// <summary>ROUGE-1, ROUGE-2 and ROUGE-L of one candidate against one reference.</summary>
/// <param name="Rouge1">Unigram overlap.</param>
/// <param name="Rouge2">Bigram overlap.</param>
/// <param name="RougeL">Longest common subsequence over the whole text (rouge_score's <c>rougeL</c>, not <c>rougeLsum</c>).</param>
public readonly record struct RougeScores(RougeScore Rouge1, RougeScore Rouge2, RougeScore RougeL);

/// <summary>Corpus ROUGE: the mean of the per-example F1 scores, as rouge_score's aggregation reports them.</summary>
/// <param name="Rouge1">Mean ROUGE-1 F1.</param>
/// <param name="Rouge2">Mean ROUGE-2 F1.</param>
/// <param name="RougeL">Mean ROUGE-L F1.</param>
/// <param name="Count">Number of scored pairs.</param>
public readonly record struct CorpusRouge(double Rouge1, double Rouge2, double RougeL, int Count);

/// <summary>
/// ROUGE with the conventions of Google's <c>rouge_score</c> package: text is lower-cased, every character outside
/// <c>[a-z0-9]</c> becomes a space, tokens are split on whitespace, and no stemming is applied.
/// </summary>
public static class Rouge
{
    /// <summary>Tokenizes as rouge_score's default tokenizer does (no stemming).</summary>
    public static IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        var current = new StringBuilder();
        foreach (var raw in text.ToLowerInvariant())
        {
            if (raw is >= 'a' and <= 'z' or >= '0' and <= '9')
            {
                current.Append(raw);
            }
            else if (current.Length > 0)
            {
                tokens.Add(current.ToString());
                current.Clear();
            }
        }
        if (current.Length > 0) tokens.Add(current.ToString());
        return tokens;
    }

    /// <summary>Scores a candidate (model output) against a reference (target) text.</summary>
    public static RougeScores Score(string reference, string candidate)
    {
        var target = Tokenize(reference);
        var prediction = Tokenize(candidate);
        return new RougeScores(NGramScore(target, prediction, 1), NGramScore(target, prediction, 2), LcsScore(target, prediction));
    }

    /// <summary>Mean per-example F1 over aligned lists of references and candidates.</summary>
    public static CorpusRouge ScoreCorpus(IReadOnlyList<string> references, IReadOnlyList<string> candidates)
    {
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(candidates);
        if (references.Count != candidates.Count)
            throw new ArgumentException($"{references.Count} references but {candidates.Count} candidates.", nameof(candidates));
        if (references.Count == 0) return new CorpusRouge(0, 0, 0, 0);
        double r1 = 0, r2 = 0, rl = 0;
        for (int i = 0; i < references.Count; i++)
        {
            var s = Score(references[i], candidates[i]);
            r1 += s.Rouge1.F1;
            r2 += s.Rouge2.F1;
            rl += s.RougeL.F1;
        }
        int n = references.Count;
        return new CorpusRouge(r1 / n, r2 / n, rl / n, n);
    }

    private static RougeScore NGramScore(IReadOnlyList<string> target, IReadOnlyList<string> prediction, int n)
    {
        var targetCounts = CountNGrams(target, n, out int targetTotal);
        var predictionCounts = CountNGrams(prediction, n, out int predictionTotal);
        int overlap = 0;
        foreach (var (gram, count) in predictionCounts)
        {
            if (targetCounts.TryGetValue(gram, out var targetCount)) overlap += Math.Min(count, targetCount);
        }
        // rouge_score divides by max(count, 1), so an empty side gives 0 rather than NaN.
        double precision = overlap / (double)Math.Max(predictionTotal, 1);
        double recall = overlap / (double)Math.Max(targetTotal, 1);
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    private static Dictionary<string, int> CountNGrams(IReadOnlyList<string> tokens, int n, out int total)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        total = Math.Max(tokens.Count - n + 1, 0);
        for (int i = 0; i < total; i++)
        {
            // A space cannot occur inside a token, so it is a safe n-gram separator.
            var gram = n == 1 ? tokens[i] : string.Join(' ', Slice(tokens, i, n));
            counts[gram] = counts.GetValueOrDefault(gram) + 1;
        }
        return counts;
    }

    private static IEnumerable<string> Slice(IReadOnlyList<string> tokens, int start, int count)
    {
        for (int i = start; i < start + count; i++) yield return tokens[i];
    }

    private static RougeScore LcsScore(IReadOnlyList<string> target, IReadOnlyList<string> prediction)
    {
        if (target.Count == 0 || prediction.Count == 0) return new RougeScore(0, 0, 0);
        int lcs = LcsLength(target, prediction);
        double precision = lcs / (double)prediction.Count;
        double recall = lcs / (double)target.Count;
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    /// <summary>Length of the longest common subsequence, with two rolling rows of the dynamic-programming table.</summary>
    internal static int LcsLength(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var previous = new int[b.Count + 1];
        var current = new int[b.Count + 1];
        for (int i = 1; i <= a.Count; i++)
        {
            for (int j = 1; j <= b.Count; j++)
            {
                current[j] = string.Equals(a[i - 1], b[j - 1], StringComparison.Ordinal)
                    ? previous[j - 1] + 1
                    : Math.Max(previous[j], current[j - 1]);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Count];
    }

    private static double FMeasure(double precision, double recall) =>
        precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
}
