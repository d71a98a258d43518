using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Threading.Tasks;
using PeftGen.Inference;
using PeftGen.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// GPT-2's GELU (the tanh approximation) over a float32 or bfloat16 CPU tensor in one pass of 512-bit vectors: for
/// <see cref="GeluTanh"/>.
/// </summary>
/// <remarks>
/// <para>The formula is PyTorch's <c>gelu(x, approximate='tanh')</c>, <c>½·x·(1 + tanh(u))</c> with
/// <c>u = √(2/π)·(x + 0.044715·x³)</c>, written as <c>x·s</c> with <c>s = ½·(1 + tanh(u)) = 1 / (1 + exp(−2u))</c>, the same
/// function (the identity <c>½·(1 + tanh(u)) = σ(2u)</c>).</para>
/// <para>Numerics: everything runs in float32 (the exponential is <see cref="SoftmaxRowsKernel.Exp"/>, within 3 ulp),
/// a bfloat16 value is widened exactly and each result rounded once to nearest even, as libtorch computes and rounds its
/// bfloat16 GELU. Where <c>2u &lt; −88</c> (x below about −10.1, where the true value is below 10⁻³⁷ in magnitude)
/// <c>s</c> is 0 and the output −0, what libtorch's tanh form gives there. NaN stays NaN.</para>
/// <para>libtorch evaluates the tanh form with a vector tanh (Sleef's, within 1 ulp) and spends, on the 2-core AMD EPYC
/// (Zen 4) this was written on, as long on a bfloat16 tensor as on a float32 one: about 1.7 ms for the tiny model's
/// 8 × 128 × 1,536 MLP activations, a tenth of a bfloat16 block's forward pass.</para>
/// </remarks>
internal static unsafe class GeluTanhKernel
{
    private const int Lanes = 16;

    /// <summary>Values per worker below which a call runs on the calling thread alone.</summary>
    private const long MinValuesPerWorker = 1 << 18;

    // 2·√(2/π) and 2·√(2/π)·0.044715: 2u = x·(C + K·x²).
    private const float C = 1.5957691216057308f;
    private const float K = 0.07135481627159763f;

    // Below this 2u the gate s is 0 (exp(−2u) would leave float32's range).
    private const float GateFloor = -88f;

    /// <summary>Whether the kernel runs on this processor: it needs accelerated 512-bit vectors.</summary>
    internal static bool Runs => Vector512.IsHardwareAccelerated;

    /// <summary>Whether the kernel takes <paramref name="tensor"/>: float32 or bfloat16 on the CPU, where it <see cref="Runs"/>.</summary>
    internal static bool Takes(Tensor tensor)
        => Runs && tensor.device_type == DeviceType.CPU && tensor.dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>A new tensor of <paramref name="source"/>'s shape and dtype (contiguous) holding <c>gelu(source)</c>.</summary>
    internal static Tensor Forward(Tensor source)
    {
        if (!Takes(source)) throw new ArgumentException("Expected a float32 or bfloat16 CPU tensor on a processor with 512-bit vectors.", nameof(source));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = source.contiguous();
        var output = empty_like(input);
        long count = input.NumberOfElements;
        if (count == 0) return output.MoveToOuterDisposeScope();
        bool half = input.dtype == ScalarType.BFloat16;
        nint x = TensorMemory.Address(input), y = TensorMemory.Address(output);
        int parts = (int)Math.Clamp(count / MinValuesPerWorker, 1, Math.Max(1, get_num_threads()));
        void Run(long first, long end)
        {
            if (half) Range((ushort*)x, (ushort*)y, first, end);
            else Range((float*)x, (float*)y, first, end);
        }
        if (parts == 1) Run(0, count);
        else
        {
            // Ranges start on a multiple of 32 elements, so every worker but the last runs whole vectors.
            long perPart = (count / parts + 31) & ~31L;
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            {
                long first = Math.Min(count, part * perPart), end = part == parts - 1 ? count : Math.Min(count, first + perPart);
                if (first < end) Run(first, end);
            });
        }
        return output.MoveToOuterDisposeScope();
    }

    private static void Range(float* x, float* y, long first, long end)
    {
        long i = first;
        for (; i + Lanes <= end; i += Lanes) Gelu(Vector512.Load(x + i)).Store(y + i);
        for (; i < end; i++) y[i] = Gelu(Vector512.Create(x[i])).ToScalar();
    }

    private static void Range(ushort* x, ushort* y, long first, long end)
    {
        long i = first;
        for (; i + 2 * Lanes <= end; i += 2 * Lanes)
        {
            var (low, high) = BFloat16RowKernel.Widen(Vector512.Load(x + i));
            Vector512.Narrow(BFloat16RowKernel.Round(Gelu(low)), BFloat16RowKernel.Round(Gelu(high))).Store(y + i);
        }
        for (; i < end; i++) y[i] = BFloat16RowKernel.Round(Gelu(Vector512.Create(BFloat16RowKernel.Widen(x[i]))).ToScalar());
    }

    /// <summary><c>s = σ(2u) = 1 / (1 + exp(−2u))</c>, 0 where <c>2u</c> is below <see cref="GateFloor"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Gate(Vector512<float> x)
    {
        var twoU = x * Vector512.FusedMultiplyAdd(x * x, Vector512.Create(K), Vector512.Create(C));
        // exp(−2u) for −2u ≤ 88: finite (below 1.7·10³⁸), so 1 + it is too.
        var e = SoftmaxRowsKernel.Exp(Vector512.Min(-twoU, Vector512.Create(-GateFloor)));
        var s = Vector512<float>.One / (Vector512<float>.One + e);
        return Vector512.ConditionalSelect(Vector512.LessThan(twoU, Vector512.Create(GateFloor)), Vector512<float>.Zero, s);
    }

    /// <summary><c>gelu(x) = x·s</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Gelu(Vector512<float> x) => x * Gate(x);
}
