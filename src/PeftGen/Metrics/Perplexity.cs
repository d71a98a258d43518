using System;

namespace PeftGen.Metrics;

/// <summary>Perplexity from a causal-LM cross-entropy in nats per token.</summary>
public static class Perplexity
{
    /// <summary><c>exp(meanLoss)</c>; the mean must be over labelled tokens, in nats.</summary>
    public static double FromMeanLoss(double meanLoss)
    {
        if (double.IsNaN(meanLoss)) throw new ArgumentException("The mean loss is NaN.", nameof(meanLoss));
        return Math.Exp(meanLoss);
    }

    /// <summary>Perplexity of a summed loss over <paramref name="tokenCount"/> labelled tokens.</summary>
    public static double FromSummedLoss(double summedLoss, long tokenCount)
    {
        if (tokenCount <= 0) throw new ArgumentOutOfRangeException(nameof(tokenCount), tokenCount, "At least one labelled token is needed.");
        return FromMeanLoss(summedLoss / tokenCount);
    }
}
