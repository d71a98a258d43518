using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;
using TorchSharp.Modules;
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
    private static readonly AsyncLocal<ParameterCasts?> Casts = new();

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
        return dtype is null || tensor.dtype == dtype || !tensor.is_floating_point() ? tensor : To(tensor, dtype.Value);
    }

    /// <summary>
    /// <paramref name="tensor"/> in <paramref name="dtype"/>: inside <see cref="ReuseParameterCasts"/> a parameter's
    /// cast is made once and reused, else a new cast each call.
    /// </summary>
    public static Tensor To(Tensor tensor, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.dtype == dtype) return tensor;
        return Casts.Value is { } casts && tensor is Parameter parameter ? casts.Get(parameter, dtype) : tensor.to(dtype);
    }

    /// <summary>
    /// For inference under no_grad: inside the returned scope each parameter is cast to a compute dtype once and the
    /// cast reused by every later call (decoding runs the same weights once per generated token, and a float32 base
    /// under bfloat16 compute would otherwise be converted again each time). The casts are freed when the scope ends.
    /// Parameters must not change inside the scope.
    /// </summary>
    public static IDisposable ReuseParameterCasts()
    {
        var casts = new ParameterCasts();
        var scope = AmbientScope.Push(Casts, casts);
        return new Both(scope, casts);
    }

    private sealed class ParameterCasts : IDisposable
    {
        private readonly Dictionary<(Parameter, ScalarType), Tensor> casts = new(new KeyComparer());

        public Tensor Get(Parameter parameter, ScalarType dtype)
        {
            if (!casts.TryGetValue((parameter, dtype), out var cast))
            {
                using (no_grad()) cast = parameter.to(dtype).DetachFromDisposeScope();
                casts.Add((parameter, dtype), cast);
            }
            return cast;
        }

        public void Dispose()
        {
            foreach (var cast in casts.Values) cast.Dispose();
            casts.Clear();
        }

        private sealed class KeyComparer : IEqualityComparer<(Parameter, ScalarType)>
        {
            public bool Equals((Parameter, ScalarType) x, (Parameter, ScalarType) y) => ReferenceEquals(x.Item1, y.Item1) && x.Item2 == y.Item2;

            public int GetHashCode((Parameter, ScalarType) key) => HashCode.Combine(RuntimeHelpers.GetHashCode(key.Item1), key.Item2);
        }
    }

    private sealed class Both(IDisposable first, IDisposable second) : IDisposable
    {
        public void Dispose()
        {
            first.Dispose();
            second.Dispose();
        }
    }
}
