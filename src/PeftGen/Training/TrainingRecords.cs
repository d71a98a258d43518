using System.Collections.Generic;

namespace PeftGen.Training;

/// <summary>One optimizer step, as reported after it finishes.</summary>
/// <param name="Step">1-based step number.</param>
/// <param name="TotalSteps">Steps of the run.</param>
/// <param name="Loss">Mean cross-entropy over the step's labelled tokens (NaN/Inf when the step was skipped for it).</param>
/// <param name="LearningRate">Learning rate used.</param>
/// <param name="GradientNorm">Global gradient norm before clipping (NaN when not computed).</param>
/// <param name="Tokens">Real (non-padding) tokens processed.</param>
/// <param name="LabelledTokens">Tokens the loss counted.</param>
/// <param name="Seconds">Wall time of the step.</param>
/// <param name="Skipped">
/// True when the update was dropped because of a NaN/Inf loss or gradient, or (float16) because the scaled gradients
/// overflowed and the loss scale was lowered.
/// </param>
/// <param name="LossScale">The factor the step's loss was multiplied by before the backward pass (float16 only; 1 otherwise).</param>
public sealed record TrainingStep(int Step, int TotalSteps, double Loss, double LearningRate, double GradientNorm,
    long Tokens, long LabelledTokens, double Seconds, bool Skipped, double LossScale = 1)
{
    /// <summary>Real tokens per second of this step.</summary>
    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;
}

/// <summary>Validation loss and perplexity after a step.</summary>
/// <param name="Step">Steps completed when evaluated.</param>
/// <param name="Loss">Mean cross-entropy per labelled token.</param>
/// <param name="Perplexity"><c>exp(Loss)</c>.</param>
/// <param name="LabelledTokens">Tokens the loss counted.</param>
public sealed record EvaluationResult(int Step, double Loss, double Perplexity, long LabelledTokens);

/// <summary>A problem the run survived or stopped for, or a setting that will make it slow.</summary>
/// <param name="Step">1-based step number; for a warning raised before a run's first step, the steps completed until then (0 in a new run).</param>
/// <param name="Message">What happened and what the trainer did.</param>
public sealed record TrainingWarning(int Step, string Message);

/// <summary>Why a run ended.</summary>
public enum TrainingStopReason
{
    /// <summary>All steps ran.</summary>
    Completed,

    /// <summary>A NaN/Inf loss or gradient with <see cref="NonFiniteAction.Stop"/>.</summary>
    NonFinite,

    /// <summary>The cancellation token fired.</summary>
    Cancelled,
}

/// <summary>Everything measured during a run.</summary>
/// <param name="Steps">Every step of this run (after a resume, only the steps it ran).</param>
/// <param name="Evaluations">Every evaluation.</param>
/// <param name="StopReason">Why the run ended.</param>
/// <param name="SkippedSteps">Steps dropped for NaN/Inf (float16: also those whose scaled gradients overflowed).</param>
/// <param name="MedianStepSeconds">Median wall time of a step.</param>
/// <param name="TokensPerSecond">Real tokens over total step time.</param>
/// <param name="PeakResidentBytes">Process peak resident memory (VmHWM) at the end of the run; 0 if unknown.</param>
/// <param name="FinalResidentBytes">Process resident memory (VmRSS) at the end of the run; 0 if unknown.</param>
/// <param name="ComputeDType">The dtype the run's matrix products used (<c>float32</c>, <c>bfloat16</c> or <c>float16</c>).</param>
/// <param name="RestoredEvaluation">With <see cref="TrainerOptions.RestoreBestEvaluation"/>, the evaluation whose parameters the model holds at the end; else null.</param>
public sealed record TrainingResult(IReadOnlyList<TrainingStep> Steps, IReadOnlyList<EvaluationResult> Evaluations,
    TrainingStopReason StopReason, int SkippedSteps, double MedianStepSeconds, double TokensPerSecond,
    long PeakResidentBytes, long FinalResidentBytes, string ComputeDType, EvaluationResult? RestoredEvaluation);
