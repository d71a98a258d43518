using System;
using System.Linq;
using PeftGen.Metrics;
using Xunit;

namespace PeftGen.Tests.Metrics;

public sealed class BootstrapTests
{
    [Fact]
    public void The_interval_of_a_large_sample_agrees_with_the_normal_approximation()
    {
        // 2,000 draws of a uniform variable on [0, 1): standard error √(1/12 / n); the 95 % interval is ±1.96 SE.
        var random = new Random(7);
        var values = Enumerable.Range(0, 2000).Select(_ => random.NextDouble()).ToArray();
        var interval = Bootstrap.MeanInterval(values, resamples: 4000, seed: 3);
        double se = Math.Sqrt(values.Select(v => (v - values.Average()) * (v - values.Average())).Sum() / (values.Length - 1) / values.Length);
        Assert.Equal(values.Average(), interval.Mean, 12);
        Assert.InRange(interval.Upper - interval.Lower, 2 * 1.96 * se * 0.9, 2 * 1.96 * se * 1.1);
        Assert.InRange(interval.Mean - interval.Lower, 1.96 * se * 0.85, 1.96 * se * 1.15);
    }

    [Fact]
    public void Constant_values_have_a_zero_width_interval_and_the_same_seed_repeats()
    {
        var interval = Bootstrap.MeanInterval([0.25, 0.25, 0.25]);
        Assert.Equal((0.25, 0.25, 0.25), (interval.Mean, interval.Lower, interval.Upper));
        double[] values = [0, 1, 0, 0, 1, 0.5];
        Assert.Equal(Bootstrap.MeanInterval(values, seed: 5), Bootstrap.MeanInterval(values, seed: 5));
        Assert.Throws<ArgumentException>(() => Bootstrap.MeanInterval([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bootstrap.MeanInterval(values, confidence: 1));
    }
}
