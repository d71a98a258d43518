using System.Diagnostics;
using PeftGen.Data;
using PeftGen.Training;
using TinyGpt.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>What one training case measured (in its own process, so its peak memory is its own).</summary>
public sealed record TrainingMeasurement(
    string Case, long Sequence, long TokensPerStep, double[] StepSeconds, double MedianSeconds,
    long PeakResidentBytes, long ResidentBeforeModelBytes, long EstimatedTrainingBytes);

/// <summary>Random token batches of a fixed shape: timing does not depend on the text.</summary>
public sealed class RandomBatches(int batch, int sequence, int vocab, int seed) : IBatchSource
{
    public long BatchesPerEpoch => 1_000_000;

    public TokenBatch GetBatch(long index)
    {
        var random = new Random(HashCode.Combine(seed, index));
        var ids = new long[batch * sequence];
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(vocab);
        var mask = Enumerable.Repeat(1L, ids.Length).ToArray();
        return new TokenBatch(ids, mask, (long[])ids.Clone(), batch, sequence);
    }
}

/// <summary>The training-step cases; each runs warm-up steps, then timed ones.</summary>
public static class TrainingCases
{
    public const int Batch = 8;
    public const int PromptTokens = 20;

    public static readonly string[] All =
        ["trainer-full", "trainer-lora", "trainer-qlora", "trainer-prompt", "naive-generated-lora", "naive-handwritten-lora"];

    /// <summary>Sequence length per case: prompt tuning's 20 virtual tokens share the 128-position context.</summary>
    public static int Sequence(string name) => name == "trainer-prompt" ? TinyConfig.Context - PromptTokens : TinyConfig.Context;

    public static TrainingMeasurement Run(string name, int warmup, int timed)
    {
        long before = ProcessMemory.CurrentResidentBytes();
        int sequence = Sequence(name);
        var batches = new RandomBatches(Batch, sequence, TinyConfig.Vocab, seed: 7);
        double[] seconds = name switch
        {
            "trainer-full" => Trainer(new TinyGptFull(), batches, warmup, timed),
            "trainer-lora" => Trainer(new TinyGptLora(), batches, warmup, timed),
            "trainer-qlora" => Trainer(new TinyGptQLora(), batches, warmup, timed),
            "trainer-prompt" => Trainer(new TinyGptPrompt(), batches, warmup, timed),
            "naive-generated-lora" => Naive(new TinyGptLora(), batches, warmup, timed),
            "naive-handwritten-lora" => Naive(
                new HandWrittenGpt(TinyConfig.Vocab, TinyConfig.Context, TinyConfig.Width, TinyConfig.Layers, TinyConfig.Heads, rank: 16, alpha: 32, dropout: 0.05),
                batches, warmup, timed),
            _ => throw new ArgumentException($"Unknown case '{name}'. Cases: {string.Join(", ", All)}."),
        };
        long estimate = name switch
        {
            "trainer-full" => TinyGptFull.Accounting.TrainingBytes,
            "trainer-lora" or "naive-generated-lora" or "naive-handwritten-lora" => TinyGptLora.Accounting.TrainingBytes,
            "trainer-qlora" => TinyGptQLora.Accounting.TrainingBytes,
            "trainer-prompt" => TinyGptPrompt.Accounting.TrainingBytes,
            _ => 0,
        };
        return new TrainingMeasurement(name, sequence, (long)Batch * sequence, seconds, Stats.Median(seconds),
            ProcessMemory.PeakResidentBytes(), before, estimate);
    }

    /// <summary>The library's path: PeftTrainer (chunked loss, its AdamW, clipping) over the generated trainable list.</summary>
    private static double[] Trainer(GptLanguageModel model, IBatchSource batches, int warmup, int timed)
    {
        using var _ = model;
        var options = new TrainerOptions { MaxSteps = warmup + timed, LearningRate = 1e-4, WeightDecay = 0.0 };
        using var trainer = new PeftTrainer(model, ((IPeftModel)model).NamedTrainableParameters(), options);
        var result = trainer.Train(batches);
        return result.Steps.Skip(warmup).Select(s => s.Seconds).ToArray();
    }

    /// <summary>
    /// The naive path, for any module that returns logits: full <c>batch × seq × vocab</c> logits, torch's
    /// cross_entropy, torch's AdamW. Applied to the generated model and to the hand-written one alike.
    /// </summary>
    private static double[] Naive(nn.Module<Tensor, Tensor> model, IBatchSource batches, int warmup, int timed)
    {
        using var _ = model;
        model.train();
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        using var optimizer = optim.AdamW(trainable, lr: 1e-4, weight_decay: 0.0);
        var seconds = new List<double>();
        for (int step = 0; step < warmup + timed; step++)
        {
            var batch = batches.GetBatch(step);
            var clock = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var ids = batch.InputIdsTensor();
                optimizer.zero_grad();
                var logits = model.forward(ids);
                long seq = ids.shape[1];
                var predictions = logits.narrow(1, 0, seq - 1).reshape(-1, logits.shape[2]);
                var targets = ids.narrow(1, 1, seq - 1).reshape(-1);
                var loss = nn.functional.cross_entropy(predictions, targets);
                loss.backward();
                optimizer.step();
            }
            clock.Stop();
            if (step >= warmup) seconds.Add(clock.Elapsed.TotalSeconds);
        }
        return seconds.ToArray();
    }
}

/// <summary>Small statistics helpers.</summary>
public static class Stats
{
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Median seconds of <paramref name="timed"/> calls after <paramref name="warmup"/> untimed ones.</summary>
    public static double Time(Action action, int warmup, int timed)
    {
        for (int i = 0; i < warmup; i++) action();
        var seconds = new double[timed];
        for (int i = 0; i < timed; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            seconds[i] = clock.Elapsed.TotalSeconds;
        }
        return Median(seconds);
    }
}
