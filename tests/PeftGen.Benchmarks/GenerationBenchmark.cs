using System.Diagnostics;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Models;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>Tokens per second of greedy generation with and without the KV cache, timed alternately in one process.</summary>
/// <param name="Model">The model generated from.</param>
/// <param name="PromptTokens">Prompt length.</param>
/// <param name="NewTokens">Tokens generated per run (end-of-sequence never stops it).</param>
/// <param name="Precision">Compute dtype.</param>
/// <param name="CachedSeconds">Each timed run with the cache.</param>
/// <param name="RecomputedSeconds">Each timed run recomputing the sequence at every step.</param>
public sealed record GenerationMeasurement(string Model, int PromptTokens, int NewTokens, string Precision, double[] CachedSeconds, double[] RecomputedSeconds)
{
    /// <summary>Median tokens per second with the cache.</summary>
    public double CachedTokensPerSecond => NewTokens / Stats.Median(CachedSeconds);

    /// <summary>Median tokens per second without it.</summary>
    public double RecomputedTokensPerSecond => NewTokens / Stats.Median(RecomputedSeconds);

    /// <summary>How many times faster the cache is (goal of issue #19: at least 5).</summary>
    public double Speedup => CachedTokensPerSecond / RecomputedTokensPerSecond;
}

/// <summary>
/// Issue #19's first number: a 128-token prompt and 128 new tokens, one request, LoRA active (unmerged). The tiny
/// configuration's context is 128 positions, so this uses the small one (8 × 512, context 256, GPT-2's vocabulary).
/// </summary>
public static class GenerationBenchmark
{
    /// <summary>Times <paramref name="runs"/> alternating pairs (after one warm-up pair) in each precision.</summary>
    public static IReadOnlyList<GenerationMeasurement> Run(int runs)
    {
        const int promptTokens = 128, newTokens = 128;
        manual_seed(11);
        using var model = new SmallGptLora();
        using (no_grad())
        {
            foreach (var (_, layer) in ((IPeftModel)model).Projections())
            {
                foreach (var adapter in layer.Adapters) layer.LoraB(adapter).normal_(0, 0.02);
            }
        }
        var generator = new TextGenerator(model);
        var prompt = Enumerable.Range(0, promptTokens).Select(i => 1 + (i * 7919) % 50_000).ToList();
        var results = new List<GenerationMeasurement>();
        foreach (var precision in new[] { TrainingPrecision.Float32, TrainingPrecision.BFloat16 })
        {
            // No end-of-sequence id and MinNewTokens = MaxNewTokens: every run produces exactly newTokens.
            var options = new GenerationOptions { MaxNewTokens = newTokens, MinNewTokens = newTokens, Precision = precision };
            double Time(bool cache)
            {
                var clock = Stopwatch.StartNew();
                var ids = generator.Generate(prompt, options with { UseKeyValueCache = cache });
                if (ids.Count != newTokens) throw new InvalidOperationException($"generated {ids.Count} tokens, not {newTokens}");
                return clock.Elapsed.TotalSeconds;
            }
            Time(true);
            Time(false);
            var cached = new List<double>();
            var recomputed = new List<double>();
            for (int i = 0; i < runs; i++)
            {
                cached.Add(Time(true));
                recomputed.Add(Time(false));
            }
            results.Add(new GenerationMeasurement("small LoRA (8 × 512, unmerged)", promptTokens, newTokens, PrecisionSupport.Name(precision == TrainingPrecision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32), cached.ToArray(), recomputed.ToArray()));
        }
        return results;
    }
}
