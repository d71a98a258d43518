using System.Diagnostics;
using PeftGen.Data;
using PeftGen.Inference;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Jobs;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>The main job's generation phase for one row of its table, decoded two ways in one process.</summary>
/// <param name="Records">Validation records decoded (the first of valid.jsonl).</param>
/// <param name="Samples">Samples per prompt for minimum-Bayes-risk decoding (after the greedy pass), as the default settings.</param>
/// <param name="Precision">Compute dtype.</param>
/// <param name="CachedSeconds">Greedy plus sampled decoding as the main job runs it: KV cache, left-padded batches of any prompt lengths, one prefill per distinct prompt.</param>
/// <param name="RecomputedSeconds">The same decoding without the cache, as the main job decoded when issue #19 was filed: every step recomputes the whole sequence, in batches of one prompt length (the only batching that allows).</param>
/// <param name="SameGreedyOutputs">Records whose greedy output is the same both ways: all of them in float32; in bfloat16 a padded batch rounds differently from an unpadded one and a near tie can go the other way.</param>
public sealed record MainJobGenerationMeasurement(int Records, int Samples, string Precision, double CachedSeconds, double RecomputedSeconds, int SameGreedyOutputs)
{
    /// <summary>Cached ÷ recomputed time (goal of issue #19: at most 0.5).</summary>
    public double Ratio => CachedSeconds / RecomputedSeconds;
}

/// <summary>
/// Issue #19's third number: the main job's generation phase (greedy outputs, then 8 samples per prompt and their
/// consensus, at most 32 new tokens, no repeated trigram) for one model of its table — the shipped base with LoRA's
/// adapters, which start as the base — over the first validation records, timed as the main job decodes now and as it
/// decoded when the issue was filed.
/// </summary>
public static class MainJobGenerationBenchmark
{
    /// <summary>Decodes <paramref name="records"/> records each way once, after a warm-up on a few.</summary>
    public static MainJobGenerationMeasurement Run(int records)
    {
        var settings = JobSettings.Default;
        var (tokenizer, _) = BaseFolder.Open(BaseFolder.Shipped);
        using var model = TinyModels.Create(Method.Lora);
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        var data = ExampleData.Valid().Take(records).ToList();
        var examples = new SupervisedExamples(tokenizer, settings.MaxRecordTokens);
        var mbr = Scoring.Consensus(settings) ?? throw new InvalidOperationException("The default settings decode by consensus.");
        var context = new RunContext(settings, Path.GetTempPath(), Path.GetTempPath(), CPU);
        var cached = Scoring.Decoding(settings, context);
        var recomputed = cached with { UseKeyValueCache = false };
        var generator = new TextGenerator(model);

        (double Seconds, IReadOnlyList<string> Greedy) Phase(GenerationOptions options, IReadOnlyList<PromptCompletion> subset)
        {
            var clock = Stopwatch.StartNew();
            var greedy = GenerationScoring.Run(generator, examples, tokenizer, subset, options);
            GenerationScoring.Run(generator, examples, tokenizer, subset, options, minimumBayesRisk: mbr);
            return (clock.Elapsed.TotalSeconds, greedy.Predictions);
        }

        var warmUp = data.Take(8).ToList();
        Phase(cached, warmUp);
        Phase(recomputed, warmUp);
        var (cachedSeconds, cachedGreedy) = Phase(cached, data);
        var (recomputedSeconds, recomputedGreedy) = Phase(recomputed, data);
        var dtype = PrecisionSupport.ComputeDType(cached.Precision, CPU);
        return new MainJobGenerationMeasurement(records, mbr.Samples, PrecisionSupport.Name(dtype),
            cachedSeconds, recomputedSeconds, cachedGreedy.Zip(recomputedGreedy).Count(pair => pair.First == pair.Second));
    }
}
