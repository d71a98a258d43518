using System;
using PeftGen.Precision;

namespace PeftGen.Training;

/// <summary>What the trainer does when a loss or gradient is NaN or infinite.</summary>
public enum NonFiniteAction
{
    /// <summary>Drop the step's gradients, leave parameters and optimizer state untouched, warn, and go on.</summary>
    SkipStep,

    /// <summary>Drop the step's gradients, warn, and stop the run (the last checkpoint stays as it was).</summary>
    Stop,
}

/// <summary>Settings of a <see cref="PeftTrainer"/> run.</summary>
public sealed record TrainerOptions
{
    /// <summary>Optimizer steps to run (each over <see cref="GradientAccumulationSteps"/> batches).</summary>
    public int MaxSteps { get; init; } = 100;

    /// <summary>Peak learning rate, reached at the end of warm-up.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Learning rate at the end of the cosine decay, as a fraction of the peak.</summary>
    public double MinLearningRateRatio { get; init; } = 0.1;

    /// <summary>Linear warm-up steps from 0 to the peak.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>
    /// Decoupled weight decay for the parameter groups that decay: matrices, not 1-D parameters (biases, norm weights),
    /// unless the trainer is given its groups; a generated model's <see cref="PeftTraining.CreateTrainer"/> also keeps
    /// norms, biases and soft prompts out of it.
    /// </summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>AdamW first-moment decay.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW second-moment decay.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>AdamW denominator epsilon.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Batches whose gradients are summed (weighted by labelled tokens) before one optimizer step.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Global gradient-norm limit; 0 turns clipping off.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>
    /// Seed of torch's generator (dropout) at the start of a run; data order has its own seed. Adapters' starting values
    /// (LoRA's A, a soft prompt's random start) were drawn when the model was built, as in PEFT: for a run that repeats
    /// itself, call <c>torch.manual_seed</c> before building the model too (libtorch seeds its generator at random).
    /// </summary>
    public long Seed { get; init; } = 42;

    /// <summary>Evaluate every this many steps (and after the last); 0 evaluates only after the last step.</summary>
    public int EvaluateEvery { get; init; }

    /// <summary>
    /// When true, a run with validation ends with the trainable parameters of its evaluation with the lowest loss
    /// (Hugging Face's <c>load_best_model_at_end</c>); a copy of them is kept on the CPU while the run goes on.
    /// </summary>
    public bool RestoreBestEvaluation { get; init; }

    /// <summary>Validation batches per evaluation; 0 uses one full pass over the validation source.</summary>
    public int EvaluationBatches { get; init; }

    /// <summary>
    /// Labelled tokens per chunk of the vocabulary head and loss; 0 (the default) sizes chunks from the vocabulary
    /// (see <see cref="ChunkedCrossEntropy.AutoChunkSize"/>).
    /// </summary>
    public int LossChunkSize { get; init; } = ChunkedCrossEntropy.AutoChunkSize;

    /// <summary>
    /// The precision of forward and backward: <see cref="TrainingPrecision.Auto"/> (the default) is bfloat16 mixed
    /// precision where the device multiplies bfloat16 fast, float32 elsewhere. Trainable parameters, gradients and
    /// optimizer state stay float32 in every mode.
    /// </summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Auto;

    /// <summary>
    /// Dynamic loss scaling, used when the run computes in float16 (<see cref="TrainingPrecision.Float16"/>) and ignored
    /// otherwise: bfloat16 and float32 keep float32's exponent range and need none.
    /// </summary>
    public LossScaling LossScaling { get; init; } = new();

    /// <summary>
    /// When true, the trainer hands the C heap's free pages back to the system after a step that left the process's
    /// resident memory well above its first steps' (by an eighth, 64 MiB at least), at most once every 8 steps. glibc's
    /// heap fragments over a long run, so resident memory can keep growing while the tensors in use do not
    /// (<see cref="NativeMmapThresholdBytes"/> keeps large blocks out of the heap; this releases what remains); the
    /// release bounds that, at the cost of the next step faulting its pages in again (measured in docs/guarantees.md with
    /// glibc's adaptive threshold: peaks 10–66 % lower, steps up to 12 % slower). Off by default; no effect where the C
    /// library is not glibc.
    /// </summary>
    public bool ReleaseFreedMemory { get; init; }

    /// <summary>
    /// When set, the size from which libtorch's CPU tensors take their memory straight from the system and give it back
    /// when freed (glibc's mmap threshold, fixed at this value for the process when a trainer is created). Left to
    /// itself, glibc raises its threshold to the largest block freed so far (up to 32 MiB); from then on a step's large
    /// transient tensors come from the heap between long-lived ones and the heap fragments, so resident memory grows over
    /// a run while the tensors in use do not. Fixing it trades step time for a lower, steadier peak, since each large
    /// block is then faulted in afresh: at 4 MiB (docs/guarantees.md) peaks were 10–25 % lower, LoRA's steps no slower,
    /// full fine-tuning's in bfloat16 8–15 % slower. Null (the default) leaves glibc's threshold as it is. No effect
    /// where the C library is not glibc, or where the environment sets the threshold itself (<c>GLIBC_TUNABLES</c>'
    /// <c>glibc.malloc.mmap_threshold</c>, <c>MALLOC_MMAP_THRESHOLD_</c>): the process's own choice stands.
    /// </summary>
    public long? NativeMmapThresholdBytes { get; init; }

    /// <summary>What to do on a NaN/Inf loss or gradient.</summary>
    public NonFiniteAction OnNonFinite { get; init; } = NonFiniteAction.SkipStep;

    /// <summary>Write a checkpoint every this many steps (0: never) into <see cref="CheckpointDirectory"/>.</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Folder of <c>checkpoint.safetensors</c>; required when <see cref="CheckpointEvery"/> is positive.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Throws when a setting is out of range.</summary>
    public void Validate()
    {
        if (MaxSteps <= 0) throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, "MaxSteps must be positive.");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive.");
        if (MinLearningRateRatio is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(MinLearningRateRatio), MinLearningRateRatio, "MinLearningRateRatio must be in [0, 1].");
        if (WarmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "WarmupSteps must not be negative.");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must not be negative.");
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Beta1), "Betas must be in [0, 1).");
        if (!(Epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be positive.");
        if (GradientAccumulationSteps <= 0) throw new ArgumentOutOfRangeException(nameof(GradientAccumulationSteps), GradientAccumulationSteps, "GradientAccumulationSteps must be positive.");
        if (MaxGradNorm < 0) throw new ArgumentOutOfRangeException(nameof(MaxGradNorm), MaxGradNorm, "MaxGradNorm must not be negative.");
        if (EvaluateEvery < 0 || EvaluationBatches < 0) throw new ArgumentOutOfRangeException(nameof(EvaluateEvery), "Evaluation settings must not be negative.");
        if (LossChunkSize < 0) throw new ArgumentOutOfRangeException(nameof(LossChunkSize), LossChunkSize, "LossChunkSize must be positive, or 0 to size chunks from the vocabulary.");
        if (!Enum.IsDefined(Precision)) throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Precision must be Auto, Float32, BFloat16 or Float16.");
        ArgumentNullException.ThrowIfNull(LossScaling, nameof(LossScaling));
        LossScaling.Validate();
        if (NativeMmapThresholdBytes is <= 0 or > ProcessMemory.MaximumMmapThresholdBytes)
            throw new ArgumentOutOfRangeException(nameof(NativeMmapThresholdBytes), NativeMmapThresholdBytes,
                $"NativeMmapThresholdBytes must be between 1 byte and {ProcessMemory.MaximumMmapThresholdBytes >> 20} MiB (glibc's limit), or null to leave glibc's threshold as it is.");
        if (CheckpointEvery < 0) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "CheckpointEvery must not be negative.");
        if (CheckpointEvery > 0 && string.IsNullOrWhiteSpace(CheckpointDirectory))
            throw new ArgumentException("CheckpointDirectory is required when CheckpointEvery is positive.", nameof(CheckpointDirectory));
    }
}
