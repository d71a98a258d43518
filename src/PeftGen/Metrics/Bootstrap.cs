using System;
using System.Collections.Generic;
using System.Linq;

namespace PeftGen.Metrics;

/// <summary>A mean and its percentile bootstrap interval.</summary>
/// <param name="Mean">The mean of the values.</param>
/// <param name="Lower">The lower end of the interval.</param>
/// <param name="Upper">The upper end of the interval.</param>
/// <param name="Confidence">The interval's confidence level, e.g. 0.95.</param>
public readonly record struct MeanInterval(double Mean, double Lower, double Upper, double Confidence);

/// <summary>Percentile bootstrap intervals for the mean of per-example scores (Efron and Tibshirani, ch. 13).</summary>
public static class Bootstrap
{
    /// <summary>
    /// Resamples <paramref name="values"/> with replacement <paramref name="resamples"/> times (seeded, so repeatable),
    /// and returns the mean with the (1 − confidence)/2 and (1 + confidence)/2 percentiles of the resampled means.
    /// </summary>
    public static MeanInterval MeanInterval(IReadOnlyList<double> values, double confidence = 0.95, int resamples = 2000, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("No values to resample.", nameof(values));
        if (confidence is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "Confidence must be in (0, 1).");
        if (resamples < 10) throw new ArgumentOutOfRangeException(nameof(resamples), resamples, "Use at least 10 resamples.");
        var random = new Random(seed);
        int n = values.Count;
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += values[random.Next(n)];
            means[r] = sum / n;
        }
        Array.Sort(means);
        double tail = (1 - confidence) / 2;
        return new MeanInterval(values.Average(), Percentile(means, tail), Percentile(means, 1 - tail), confidence);
    }

    // Linear interpolation between closest ranks (numpy's default).
    private static double Percentile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    }
}
