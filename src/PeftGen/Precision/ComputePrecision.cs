using System;
using System.Threading;
using static TorchSharp.torch;

namespace PeftGen.Precision;

/// <summary>
/// The dtype the matrix products of the current call run in (mixed precision), chosen for a scope:
/// <c>using (ComputePrecision.Use(ScalarType.BFloat16)) { ... }</c>. Outside any scope (or with <c>null</c>)
/// every product runs in its operands' own dtype, as plain TorchSharp does.
/// </summary>
/// <remarks>
/// The modules that read it are the ones whose cost is matrix products: <see cref="LoraLinear"/> casts its input,
/// base weight and adapter matrices to the compute dtype per call (a differentiable cast, so gradients reach float32
/// master weights in float32), and the chunked vocabulary head multiplies in it while softmax, the loss and its sums
/// stay float32. Norms, embeddings and residual additions keep the dtype of the stored weights: a bfloat16 projection
/// output added to a float32 residual stream promotes back to float32. This is the policy of PyTorch's CPU and CUDA
/// autocast for the operations a transformer uses, written where the operations are, so it runs on any device.
/// The scope flows with the logical call (<see cref="AsyncLocal{T}"/>), so concurrent requests choose their own.
/// </remarks>
public static class ComputePrecision
{
    private static readonly AsyncLocal<ScalarType?> Ambient = new();

    /// <summary>The compute dtype chosen by the innermost scope, or null for "the operands' own dtype".</summary>
    public static ScalarType? Current => Ambient.Value;

    /// <summary>
    /// Runs the products of the calls inside the returned scope in <paramref name="dtype"/> (float32, bfloat16 or
    /// float16); null restores the operands' own dtype. Scopes nest; disposing one restores the enclosing choice.
    /// </summary>
    public static IDisposable Use(ScalarType? dtype)
    {
        if (dtype is not null and not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64))
            throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "A compute dtype is a floating-point type: Float32, BFloat16, Float16 or Float64.");
        return AmbientScope.Push(Ambient, dtype);
    }

    /// <summary>
    /// <paramref name="tensor"/> in the current compute dtype when a scope chose one and the tensor is a floating-point
    /// tensor of another dtype; otherwise the tensor itself. The cast is differentiable.
    /// </summary>
    public static Tensor Cast(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var dtype = Ambient.Value;
        return dtype is null || tensor.dtype == dtype || !tensor.is_floating_point() ? tensor : tensor.to(dtype.Value);
    }
}
