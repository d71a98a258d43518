using System;

namespace PeftGen.Training;

/// <summary>Linear warm-up from 0 to the peak, then cosine decay to <c>peak × minRatio</c> at the last step.</summary>
public static class LearningRateSchedule
{
    /// <summary>The learning rate of 0-based optimizer step <paramref name="step"/> out of <paramref name="totalSteps"/>.</summary>
    public static double At(int step, int totalSteps, int warmupSteps, double peak, double minRatio)
    {
        if (totalSteps <= 0) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, "Total steps must be positive.");
        if (step < warmupSteps) return peak * (step + 1) / (warmupSteps + 1);
        int decaySteps = Math.Max(totalSteps - warmupSteps - 1, 1);
        double progress = Math.Min((step - warmupSteps) / (double)decaySteps, 1.0);
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return peak * (minRatio + (1 - minRatio) * cosine);
    }
}
