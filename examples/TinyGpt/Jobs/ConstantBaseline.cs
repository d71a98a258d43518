using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Metrics;

namespace TinyGpt.Jobs;

/// <summary>
/// The best constant answer: one text given for every prompt, chosen on the training split to maximise mean ROUGE-1
/// F1 against the training definitions. A model that ignores its input scores this much; every fine-tuned model must
/// beat it to show it learned anything about the words.
/// </summary>
public static class ConstantBaseline
{
    /// <summary>
    /// Builds a word bag greedily (each round adds the frequent word that raises mean ROUGE-1 F1 most, until none does)
    /// and compares it with the most frequent whole definitions; returns the better one on <paramref name="train"/>.
    /// </summary>
    public static string Choose(IReadOnlyList<PromptCompletion> train)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("No training records to choose a constant answer from.", nameof(train));
        var references = train.Select(r => Rouge.Tokenize(r.Completion)).ToList();
        var greedy = GreedyBag(references);
        var frequent = train.GroupBy(r => r.Completion, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Take(20).Select(g => g.Key);
        return frequent.Append(greedy)
            .Select(text => (Text: text, Score: MeanRouge1(references, Rouge.Tokenize(text))))
            .OrderByDescending(c => c.Score).ThenBy(c => c.Text, StringComparer.Ordinal)
            .First().Text;
    }

    /// <summary>Mean ROUGE-1 F1 of one constant candidate against tokenized references.</summary>
    public static double MeanRouge1(IReadOnlyList<IReadOnlyList<string>> references, IReadOnlyList<string> candidate)
    {
        var counts = Count(candidate);
        double sum = 0;
        foreach (var reference in references)
        {
            int overlap = Count(reference).Sum(kv => Math.Min(kv.Value, counts.GetValueOrDefault(kv.Key)));
            sum += reference.Count + candidate.Count == 0 ? 0 : 2.0 * overlap / (reference.Count + candidate.Count);
        }
        return sum / references.Count;
    }

    // F1 = 2·overlap / (|reference| + |candidate|); adding word w raises the overlap with a reference by one exactly
    // when the reference holds w more often than the candidate does, so each round is O(words × references).
    private static string GreedyBag(IReadOnlyList<IReadOnlyList<string>> references)
    {
        var referenceCounts = references.Select(Count).ToList();
        var vocabulary = references.SelectMany(r => r).GroupBy(w => w, StringComparer.Ordinal)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Take(200).Select(g => g.Key).ToList();
        var bag = new List<string>();
        var bagCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        var overlaps = new int[references.Count];
        double best = 0;
        while (bag.Count < 30)
        {
            string? choice = null;
            double choiceScore = best;
            foreach (var word in vocabulary)
            {
                int have = bagCounts.GetValueOrDefault(word);
                double sum = 0;
                for (int i = 0; i < references.Count; i++)
                {
                    int overlap = overlaps[i] + (referenceCounts[i].GetValueOrDefault(word) > have ? 1 : 0);
                    sum += 2.0 * overlap / (references[i].Count + bag.Count + 1);
                }
                double score = sum / references.Count;
                if (score > choiceScore)
                {
                    choiceScore = score;
                    choice = word;
                }
            }
            if (choice is null) break;
            int before = bagCounts.GetValueOrDefault(choice);
            for (int i = 0; i < references.Count; i++)
            {
                if (referenceCounts[i].GetValueOrDefault(choice) > before) overlaps[i]++;
            }
            bagCounts[choice] = before + 1;
            bag.Add(choice);
            best = choiceScore;
        }
        return string.Join(' ', bag);
    }

    private static Dictionary<string, int> Count(IReadOnlyList<string> words)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var word in words) counts[word] = counts.GetValueOrDefault(word) + 1;
        return counts;
    }
}
