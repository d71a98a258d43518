using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Inference;
using PeftGen.Metrics;
using Xunit;

namespace PeftGen.Tests.Inference;

/// <summary>Minimum-Bayes-risk selection: the candidate that agrees best with the others, worked by hand.</summary>
public sealed class MinimumBayesRiskDecoderTests
{
    private static double Rouge1(string hypothesis, string reference) => Rouge.Score(reference, hypothesis).Rouge1.F1;

    [Fact]
    public void The_consensus_is_the_candidate_with_the_highest_total_rouge1_against_the_others()
    {
        // ROUGE-1 F1 between each pair (unigram overlap, F1 = 2·overlap / (|a| + |b|)):
        //   "a b c" vs "a b d": 2·2/6 = 0.667; "a b c" vs "x y": 0; "a b d" vs "x y": 0.
        //   "a b" vs "a b c": 2·2/5 = 0.8; "a b" vs "a b d": 0.8; "a b" vs "x y": 0.
        // Totals: "a b c" 0.667 + 0.8 = 1.467; "a b d" 1.467; "x y" 0; "a b" 1.6 → "a b" (index 3).
        var candidates = new[] { "a b c", "a b d", "x y", "a b" };
        Assert.Equal(3, MinimumBayesRiskDecoder.Consensus(candidates, Rouge1));
    }

    [Fact]
    public void Ties_go_to_the_earlier_candidate_and_a_single_candidate_is_chosen()
    {
        Assert.Equal(0, MinimumBayesRiskDecoder.Consensus(new[] { "a b", "a b", "c" }, Rouge1));
        Assert.Equal(0, MinimumBayesRiskDecoder.Consensus(new[] { "only" }, Rouge1));
        Assert.Throws<ArgumentException>(() => MinimumBayesRiskDecoder.Consensus(Array.Empty<string>(), Rouge1));
    }

    [Fact]
    public void The_utility_decides_not_the_order()
    {
        // With a utility that prefers long hypotheses whatever the reference, the longest wins wherever it stands.
        string[][] orders = [["one", "one two three", "one two"], ["one two three", "one", "one two"], ["one", "one two", "one two three"]];
        foreach (var candidates in orders)
            Assert.Equal("one two three", candidates[MinimumBayesRiskDecoder.Consensus(candidates, (h, _) => h.Length)]);
    }
}
