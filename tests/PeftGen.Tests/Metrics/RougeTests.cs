using PeftGen.Metrics;
using Xunit;

namespace PeftGen.Tests.Metrics;

public sealed class RougeTests
{
    [Fact]
    public void Tokenizes_like_rouge_score_lower_case_alphanumeric_no_stemming()
    {
        Assert.Equal(new[] { "the", "cat", "s", "hat", "costs", "3", "50", "caf" }, Rouge.Tokenize("The CAT's hat -- costs $3.50 (café)!"));
        Assert.Empty(Rouge.Tokenize(" ... "));
    }

    [Fact]
    public void Scores_a_hand_checked_pair()
    {
        // reference: the cat sat on the mat      (6 tokens)
        // candidate: the cat lay on a mat        (6 tokens)
        // ROUGE-1: overlap {the, cat, on, mat} = 4 → P = R = F = 4/6 = 0.6667
        // ROUGE-2: reference bigrams {the cat, cat sat, sat on, on the, the mat}; candidate {the cat, cat lay, lay on,
        //          on a, a mat}; overlap {the cat} = 1 → P = R = F = 1/5 = 0.2
        // ROUGE-L: LCS = the cat on mat = 4 → P = R = F = 4/6
        var s = Rouge.Score("The cat sat on the mat.", "the cat lay on a mat");
        Assert.Equal(4.0 / 6, s.Rouge1.F1, 12);
        Assert.Equal(0.2, s.Rouge2.F1, 12);
        Assert.Equal(4.0 / 6, s.RougeL.F1, 12);
    }

    [Fact]
    public void Uneven_lengths_repeated_words_and_order()
    {
        // reference: a b a c        candidate: a a a b
        // ROUGE-1: counts ref {a:2, b:1, c:1}, cand {a:3, b:1}; overlap min(2,3) + min(1,1) = 3;
        //          P = 3/4, R = 3/4, F = 0.75
        // ROUGE-2: ref {a b, b a, a c}, cand {a a:2, a b}; overlap {a b} = 1; P = 1/3, R = 1/3, F = 1/3
        // ROUGE-L: LCS(a b a c, a a a b) = "a a" or "a b" = 2 → P = 2/4, R = 2/4, F = 0.5
        var s = Rouge.Score("a b a c", "a a a b");
        Assert.Equal(0.75, s.Rouge1.F1, 12);
        Assert.Equal(1.0 / 3, s.Rouge2.F1, 12);
        Assert.Equal(0.5, s.RougeL.F1, 12);

        // reference: police killed the gunman (4); candidate: the gunman police killed (4)
        // ROUGE-1 = 1; ROUGE-2: overlap {police killed, the gunman} = 2 of 3 → 2/3; LCS = 2 ("police killed") → 0.5
        var order = Rouge.Score("police killed the gunman", "the gunman police killed");
        Assert.Equal(1.0, order.Rouge1.F1, 12);
        Assert.Equal(2.0 / 3, order.Rouge2.F1, 12);
        Assert.Equal(0.5, order.RougeL.F1, 12);

        // reference: a b c d e f (6); candidate: b d (2)
        // ROUGE-1: P = 2/2 = 1, R = 2/6; F = 2·1·(1/3)/(1 + 1/3) = 0.5
        var shortCandidate = Rouge.Score("a b c d e f", "b d");
        Assert.Equal(1.0, shortCandidate.Rouge1.Precision, 12);
        Assert.Equal(1.0 / 3, shortCandidate.Rouge1.Recall, 12);
        Assert.Equal(0.5, shortCandidate.Rouge1.F1, 12);
        Assert.Equal(0.0, shortCandidate.Rouge2.F1, 12);
        Assert.Equal(0.5, shortCandidate.RougeL.F1, 12);
    }

    [Fact]
    public void Empty_texts_score_zero_and_the_corpus_score_is_the_mean_of_f1s()
    {
        var empty = Rouge.Score("", "something");
        Assert.Equal(0, empty.Rouge1.F1);
        Assert.Equal(0, empty.RougeL.F1);
        // Per-example ROUGE-1 F1: 1.0 (identical), 4/6 (the pair above), 0 (nothing shared) → mean 5/9
        var corpus = Rouge.ScoreCorpus(
            new[] { "a dog", "The cat sat on the mat.", "x" },
            new[] { "A dog!", "the cat lay on a mat", "y" });
        Assert.Equal(3, corpus.Count);
        Assert.Equal((1 + 4.0 / 6 + 0) / 3, corpus.Rouge1, 12);
        Assert.Equal((1 + 0.2 + 0) / 3, corpus.Rouge2, 12);
        Assert.Equal((1 + 4.0 / 6 + 0) / 3, corpus.RougeL, 12);
    }

    [Fact]
    public void Perplexity_is_the_exponential_of_the_mean_loss()
    {
        Assert.Equal(System.Math.E, Perplexity.FromMeanLoss(1), 12);
        Assert.Equal(System.Math.Exp(0.5), Perplexity.FromSummedLoss(5, 10), 12);
    }
}
