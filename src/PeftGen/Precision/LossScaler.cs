using System;
using System.Globalization;

namespace PeftGen.Precision;

/// <summary>
/// Settings of dynamic loss scaling (<see cref="LossScaler"/>). The defaults are those of PyTorch's
/// <c>torch.amp.GradScaler</c>: start at 2¹⁶, halve on overflow, double after 2,000 steps in a row without one.
/// </summary>
public sealed record LossScaling
{
    /// <summary>The scale of the first step.</summary>
    public double InitialScale { get; init; } = 65536;

    /// <summary>What the scale is multiplied by after <see cref="GrowthInterval"/> steps in a row without overflow (&gt; 1).</summary>
    public double GrowthFactor { get; init; } = 2;

    /// <summary>What the scale is multiplied by when a step's gradients overflow (in (0, 1)).</summary>
    public double BackoffFactor { get; init; } = 0.5;

    /// <summary>Steps in a row without overflow before the scale grows.</summary>
    public int GrowthInterval { get; init; } = 2000;

    /// <summary>
    /// The lowest scale. A step whose gradients are not finite even at this scale has a gradient that scaling cannot
    /// save (a NaN, or a gradient beyond float16's range at scale 1): the trainer treats it as any non-finite gradient
    /// (<see cref="Training.TrainerOptions.OnNonFinite"/>) instead of lowering the scale further.
    /// </summary>
    public double MinimumScale { get; init; } = 1;

    /// <summary>Throws when a setting is out of range.</summary>
    public void Validate()
    {
        if (!(MinimumScale > 0) || !double.IsFinite(MinimumScale))
            throw new ArgumentOutOfRangeException(nameof(MinimumScale), MinimumScale, "MinimumScale must be positive and finite.");
        if (!(InitialScale >= MinimumScale) || InitialScale > float.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(InitialScale), InitialScale, "InitialScale must be at least MinimumScale and a finite float32.");
        if (!(GrowthFactor > 1) || !double.IsFinite(GrowthFactor))
            throw new ArgumentOutOfRangeException(nameof(GrowthFactor), GrowthFactor, "GrowthFactor must be above 1.");
        if (!(BackoffFactor > 0 && BackoffFactor < 1))
            throw new ArgumentOutOfRangeException(nameof(BackoffFactor), BackoffFactor, "BackoffFactor must be in (0, 1).");
        if (GrowthInterval <= 0)
            throw new ArgumentOutOfRangeException(nameof(GrowthInterval), GrowthInterval, "GrowthInterval must be positive.");
    }
}

/// <summary>What <see cref="LossScaler.Update"/> did with a step.</summary>
public enum LossScaleChange
{
    /// <summary>The step's gradients were finite; the scale stays.</summary>
    None,

    /// <summary>The step's gradients were finite and completed a growth interval: the scale grew.</summary>
    Grew,

    /// <summary>The step's gradients overflowed: skip the step; the scale was lowered.</summary>
    BackedOff,

    /// <summary>The step's gradients were not finite at the minimum scale: scaling cannot explain them.</summary>
    NonFiniteAtMinimum,
}

/// <summary>
/// Dynamic loss scaling for float16 mixed precision, as <c>torch.amp.GradScaler</c> does it. The loss is multiplied by
/// <see cref="Scale"/> before the backward pass, so gradients too small for float16 (below 6 × 10⁻⁸) stay representable in
/// the float16 activations they pass through; the float32 gradients of the master weights are divided by it again before
/// clipping and the optimizer step. When the scaled gradients overflow (inf or NaN), the step is skipped and the scale
/// multiplied by <see cref="LossScaling.BackoffFactor"/>; after <see cref="LossScaling.GrowthInterval"/> steps in a row
/// without overflow it is multiplied by <see cref="LossScaling.GrowthFactor"/>, so it stays near the largest scale that
/// does not overflow.
/// </summary>
public sealed class LossScaler
{
    private readonly LossScaling settings;

    /// <summary>Starts at <see cref="LossScaling.InitialScale"/>.</summary>
    public LossScaler(LossScaling settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        this.settings = settings;
        Scale = settings.InitialScale;
    }

    /// <summary>The factor the next step's loss is multiplied by.</summary>
    public double Scale { get; private set; }

    /// <summary>Steps in a row without overflow since the scale last changed.</summary>
    public int GoodSteps { get; private set; }

    /// <summary>
    /// Records whether a step's scaled gradients were all finite and adjusts <see cref="Scale"/>: a finite step counts
    /// towards growth (the scale grows only while it stays a finite float32); an overflow lowers the scale (not below
    /// <see cref="LossScaling.MinimumScale"/>) and restarts the count.
    /// </summary>
    public LossScaleChange Update(bool finite)
    {
        if (finite)
        {
            GoodSteps++;
            if (GoodSteps < settings.GrowthInterval) return LossScaleChange.None;
            GoodSteps = 0;
            double grown = Scale * settings.GrowthFactor;
            if (grown > float.MaxValue) return LossScaleChange.None;
            Scale = grown;
            return LossScaleChange.Grew;
        }
        GoodSteps = 0;
        if (Scale <= settings.MinimumScale) return LossScaleChange.NonFiniteAtMinimum;
        Scale = Math.Max(settings.MinimumScale, Scale * settings.BackoffFactor);
        return LossScaleChange.BackedOff;
    }

    /// <summary>Sets the state a checkpoint saved.</summary>
    internal void Restore(double scale, int goodSteps)
    {
        if (!(scale > 0) || scale > float.MaxValue) throw new ArgumentOutOfRangeException(nameof(scale), scale, "A loss scale must be positive and a finite float32.");
        if (goodSteps < 0) throw new ArgumentOutOfRangeException(nameof(goodSteps), goodSteps, "Good steps must not be negative.");
        Scale = scale;
        GoodSteps = goodSteps;
    }

    /// <summary>The scale as a report shows it: <c>65,536</c>, or <c>0.5</c>.</summary>
    public static string Format(double scale) => scale >= 1 && scale == Math.Floor(scale) && scale < 1e15
        ? scale.ToString("N0", CultureInfo.InvariantCulture)
        : scale.ToString("G6", CultureInfo.InvariantCulture);
}
