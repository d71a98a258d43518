using System;
using System.Globalization;
using System.Text.Json.Serialization;

namespace TinyGpt.Jobs;

/// <summary>Sizes of one run of the main job. <see cref="Default"/> fits 15 minutes on 2 CPU cores, <see cref="Quick"/> 2 minutes.</summary>
public sealed record JobSettings
{
    /// <summary>Pretraining steps on the Brown corpus.</summary>
    public int PretrainSteps { get; init; }

    /// <summary>Sequences per pretraining step.</summary>
    public int PretrainBatch { get; init; }

    /// <summary>Tokens per pretraining sequence.</summary>
    public int PretrainBlock { get; init; }

    /// <summary>Peak pretraining learning rate.</summary>
    public double PretrainLearningRate { get; init; }

    /// <summary>Fine-tuning steps per method.</summary>
    public int FineTuneSteps { get; init; }

    /// <summary>Records per fine-tuning step.</summary>
    public int FineTuneBatch { get; init; }

    /// <summary>Longest fine-tuning record, in tokens (longer ones are truncated and counted).</summary>
    public int MaxRecordTokens { get; init; }

    /// <summary>Training records used (the first ones of a seeded shuffle of train.jsonl.gz).</summary>
    public int TrainRecords { get; init; }

    /// <summary>Validation records for loss and perplexity (all of valid.jsonl: 495).</summary>
    public int ValidationRecords { get; init; }

    /// <summary>Validation prompts to generate definitions for and score with ROUGE.</summary>
    public int GenerationRecords { get; init; }

    /// <summary>New tokens at most per generated definition.</summary>
    public int MaxNewTokens { get; init; }

    /// <summary>The seed of every random choice of the run.</summary>
    public long Seed { get; init; } = 1234;

    /// <summary>Whether this is the quick configuration.</summary>
    public bool IsQuick { get; init; }

    /// <summary>The configuration used by <c>compare</c> with no options.</summary>
    public static JobSettings Default { get; } = new()
    {
        PretrainSteps = 150,
        PretrainBatch = 8,
        PretrainBlock = 128,
        PretrainLearningRate = 2e-3,
        FineTuneSteps = 120,
        FineTuneBatch = 16,
        MaxRecordTokens = 48,
        TrainRecords = 8000,
        ValidationRecords = 495,
        GenerationRecords = 100,
        MaxNewTokens = 20,
    };

    /// <summary>A smaller configuration that exercises every step in under two minutes.</summary>
    public static JobSettings Quick { get; } = new()
    {
        PretrainSteps = 30,
        PretrainBatch = 4,
        PretrainBlock = 64,
        PretrainLearningRate = 2e-3,
        FineTuneSteps = 12,
        FineTuneBatch = 8,
        MaxRecordTokens = 40,
        TrainRecords = 400,
        ValidationRecords = 48,
        GenerationRecords = 8,
        MaxNewTokens = 8,
        IsQuick = true,
    };

    /// <summary>A short stable name of the pretraining settings, so a cached base is reused only for the same settings.</summary>
    [JsonIgnore]
    public string PretrainKey => string.Create(CultureInfo.InvariantCulture,
        $"tiny-s{PretrainSteps}-b{PretrainBatch}x{PretrainBlock}-lr{PretrainLearningRate:R}-seed{Seed}");

    /// <summary>Learning rate per method: prompt tuning needs a much larger one, as in PEFT's examples.</summary>
    public static double FineTuneLearningRate(Method method) => method switch
    {
        Method.Full => 3e-4,
        Method.Lora or Method.QLora => 2e-3,
        Method.Prompt => 3e-2,
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };
}
