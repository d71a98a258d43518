using System;
using System.Globalization;
using System.Text.Json.Serialization;

namespace TinyGpt.Jobs;

/// <summary>Sizes of one run of the main job. <see cref="Default"/> fits 15 minutes on 2 CPU cores, <see cref="Quick"/> 2 minutes.</summary>
/// <remarks>The pretraining sizes apply only when a run pretrains (the <c>pretrain</c> command, <c>--pretrain</c>); by default the shipped base is used.</remarks>
public sealed record JobSettings
{
    /// <summary>Pretraining steps (the shipped base: 8,000, about 1.7 hours on 2 cores).</summary>
    public int PretrainSteps { get; init; }

    /// <summary>Sequences per pretraining step.</summary>
    public int PretrainBatch { get; init; }

    /// <summary>Tokens per pretraining sequence.</summary>
    public int PretrainBlock { get; init; }

    /// <summary>Peak pretraining learning rate.</summary>
    public double PretrainLearningRate { get; init; }

    /// <summary>
    /// The fraction of pretraining blocks that hold a span of their own text copied to a random later place
    /// (<see cref="CopiedSpans"/>), so the base learns to read its context; 0 (the shipped base's recipe): none.
    /// </summary>
    public double PretrainCopySpans { get; init; }

    /// <summary>Held-out Brown paragraphs that score a pretrained base (loss, bits per byte, <see cref="RepeatProbe"/>); null: all 783.</summary>
    public int? PretrainHeldOutParagraphs { get; init; }

    /// <summary>Fine-tuning steps per method.</summary>
    public int FineTuneSteps { get; init; }

    /// <summary>Records per fine-tuning step.</summary>
    public int FineTuneBatch { get; init; }

    /// <summary>Longest fine-tuning record, in tokens (longer ones are truncated and counted).</summary>
    public int MaxRecordTokens { get; init; }

    /// <summary>Training records used: steps × batch, so every method sees each of them exactly once.</summary>
    [JsonIgnore]
    public int TrainRecords => FineTuneSteps * FineTuneBatch;

    /// <summary>Held-out training records on which each method's checkpoint to score is chosen (lowest loss).</summary>
    public int SelectionRecords { get; init; }

    /// <summary>Evaluations on the selection records per fine-tuning run (evenly spaced; the last is after the last step).</summary>
    public int Evaluations { get; init; }

    /// <summary>Validation records for loss, generation and ROUGE (all of valid.jsonl: 495).</summary>
    public int ValidationRecords { get; init; }

    /// <summary>New tokens at most per generated definition.</summary>
    public int MaxNewTokens { get; init; }

    /// <summary>
    /// Samples per prompt of minimum-Bayes-risk decoding: the scored output is the one of them that agrees best (ROUGE-1)
    /// with the others. 0 scores greedy outputs instead. Greedy outputs are scored too, in a column of their own.
    /// </summary>
    public int DecodingSamples { get; init; }

    /// <summary>Temperature of those samples.</summary>
    public double DecodingTemperature { get; init; } = 0.5;

    /// <summary>The seed of every random choice of the run.</summary>
    public long Seed { get; init; } = 1234;

    /// <summary>Whether this is the quick configuration.</summary>
    public bool IsQuick { get; init; }

    /// <summary>A peak learning rate for the method being fine-tuned instead of its own (<see cref="FineTuneLearningRate"/>); null: its own.</summary>
    public double? LearningRate { get; init; }

    /// <summary>
    /// Whether fine-tuning is scored (loss, generation, ROUGE) on the held-out training records that choose checkpoints
    /// instead of on validation: for choosing a setting without reading the validation split, as the example's own
    /// learning rates and decoding were chosen.
    /// </summary>
    public bool ScoreOnSelection { get; init; }

    /// <summary>The configuration used by <c>compare</c> with no options.</summary>
    public static JobSettings Default { get; } = new()
    {
        PretrainSteps = 8000,
        PretrainBatch = 16,
        PretrainBlock = 128,
        PretrainLearningRate = 1.5e-3,
        FineTuneSteps = 300,
        FineTuneBatch = 16,
        MaxRecordTokens = 64,
        SelectionRecords = 256,
        Evaluations = 4,
        ValidationRecords = 495,
        MaxNewTokens = 32,
        DecodingSamples = 8,
    };

    /// <summary>A smaller configuration that exercises every step in under two minutes.</summary>
    public static JobSettings Quick { get; } = new()
    {
        PretrainSteps = 30,
        PretrainBatch = 4,
        PretrainBlock = 64,
        PretrainLearningRate = 2e-3,
        PretrainHeldOutParagraphs = 100,
        FineTuneSteps = 24,
        FineTuneBatch = 8,
        MaxRecordTokens = 64,
        SelectionRecords = 32,
        Evaluations = 2,
        ValidationRecords = 64,
        MaxNewTokens = 16,
        DecodingSamples = 4,
        IsQuick = true,
    };

    /// <summary>A short stable name of the pretraining settings, so a cached base is reused only for the same settings.</summary>
    [JsonIgnore]
    public string PretrainKey => string.Create(CultureInfo.InvariantCulture,
        $"tiny-brown-wordnet-s{PretrainSteps}-b{PretrainBatch}x{PretrainBlock}-lr{PretrainLearningRate:R}{(PretrainCopySpans > 0 ? $"-copy{PretrainCopySpans:R}" : "")}-seed{Seed}");

    /// <summary>
    /// Peak learning rate per method: a third of pretraining's for full fine-tuning; the adapters start from zero
    /// (LoRA's B) or far from any useful value (a soft prompt), so they take larger steps: LoRA 6× that size (PEFT's
    /// and the LoRA paper's recipes are 5–30×), prompt tuning 200× (the prompt-tuning paper used 0.3). Prompt tuning's
    /// was chosen among 3e-2, 1e-1 and 3e-1 on the 256 held-out training records that choose checkpoints, never on
    /// validation (2026-11-30, default settings: consensus ROUGE-1 0.098, 0.109 and 0.106; loss 3.437, 3.408 and 3.402).
    /// </summary>
    public static double FineTuneLearningRate(Method method) => method switch
    {
        Method.Full => 5e-4,
        Method.Lora or Method.QLora => 3e-3,
        Method.Prompt => 1e-1,
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };
}
