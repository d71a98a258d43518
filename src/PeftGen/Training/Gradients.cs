using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace PeftGen.Training;

/// <summary>What a training step does to the gradients of its trainable parameters besides computing them.</summary>
/// <remarks>
/// <c>parameter.grad</c> makes a new wrapper at every read. Each one is held in a <c>using</c> until its last call has
/// returned: a wrapper that nothing references can be finalized while libtorch still reads its handle (TorchSharp's
/// <c>zero_()</c> does not keep its tensor alive across the native call), which crashed long runs now and then.
/// </remarks>
internal static class Gradients
{
    /// <summary>The global L2 norm over every gradient (parameters without one are skipped).</summary>
    public static double Norm(IReadOnlyList<(string Name, Parameter Parameter)> trainable)
    {
        using var noGrad = no_grad();
        double squares = 0;
        foreach (var (_, parameter) in trainable)
        {
            using var grad = parameter.grad;
            if (grad is null) continue;
            // Per-parameter norms in the gradient's own dtype: no float64 copy of a vocabulary-sized gradient.
            using var norm = grad.norm();
            using var wide = norm.to(ScalarType.Float64);
            double value = wide.item<double>();
            squares += value * value;
        }
        return Math.Sqrt(squares);
    }

    /// <summary>
    /// Multiplies every gradient by <paramref name="unscale"/> (the inverse of a loss scale; 1 without one) and scales
    /// the result so that its global norm <paramref name="norm"/> (already unscaled) becomes at most
    /// <paramref name="maxNorm"/> (off when ≤ 0): one pass over the gradients for both.
    /// </summary>
    public static void Clip(IReadOnlyList<(string Name, Parameter Parameter)> trainable, double norm, double maxNorm, double unscale = 1)
    {
        double scale = maxNorm <= 0 || norm <= maxNorm ? unscale : unscale * (maxNorm / (norm + 1e-6));
        if (scale == 1) return;
        using var noGrad = no_grad();
        using var factor = scale.ToScalar();
        foreach (var (_, parameter) in trainable)
        {
            using var grad = parameter.grad;
            grad?.mul_(factor);
        }
    }

    /// <summary>Zeroes every gradient in place (the buffers stay allocated for the next step).</summary>
    public static void Zero(IReadOnlyList<(string Name, Parameter Parameter)> trainable)
    {
        foreach (var (_, parameter) in trainable)
        {
            using var grad = parameter.grad;
            // zero_() returns another new wrapper of the same tensor.
            using var zeroed = grad?.zero_();
        }
    }
}
