using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Threading.Tasks;
using PeftGen.Inference;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace PeftGen;

/// <summary>
/// Dropout of a contiguous float32 or bfloat16 CPU tensor in one pass, <c>y = keep(i) ? x · s : 0</c>, whose backward
/// pass makes the same mask again from its seed: <c>∂x = keep(i) ? ∂y · s : 0</c>. Nothing but the seed is kept for the
/// backward pass, where dropping by a stored mask keeps the mask (one element per input element) from the forward pass
/// until the backward pass, and spends a pass over memory each to make it, convert it and multiply by it.
/// </summary>
/// <remarks>
/// <para><c>keep(i)</c> is <see cref="LoraDropout"/>'s counter-based draw and <c>s = 1 / (1 − p)</c> rounded to the
/// tensor's dtype, as torch's dropout holds it; each output is <c>x · 0</c> or <c>x · s</c> computed in float32 and rounded
/// once to nearest even: to the bit the float32 or bfloat16 product that multiplying by a stored mask gives (signed zeros
/// and NaN included).</para>
/// <para>The returned gradient's wrapper lives on in <see cref="ReturnedGradients"/> until native code has taken it.</para>
/// </remarks>
internal sealed class DropoutFunction : SingleTensorFunction<DropoutFunction>
{
    private const long MinValuesPerWorker = 1 << 18;

    /// <inheritdoc />
    public override string Name => nameof(DropoutFunction);

    /// <summary>Whether <see cref="Apply"/> takes <paramref name="input"/>: a float32 or bfloat16 CPU tensor.</summary>
    internal static bool Takes(Tensor input)
        => input.device_type == DeviceType.CPU && input.dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>Dropout of <paramref name="input"/> with probability <paramref name="p"/> and mask seed <paramref name="seed"/>.</summary>
    public static Tensor Apply(Tensor input, double p, ulong seed)
    {
        ReturnedGradients.Release();
        return apply(input, p, seed);
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        double p = (double)vars[1];
        ulong seed = (ulong)vars[2];
        ctx.save_data("p", p);
        ctx.save_data("seed", seed);
        return Drop(input, p, seed);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        ReturnedGradients.Release();
        Tensor gradInput;
        try
        {
            gradInput = Drop(grad_output, (double)ctx.get_data("p"), (ulong)ctx.get_data("seed"));
        }
        finally
        {
            grad_output.Dispose();
        }
        // No gradients for the probability and the seed.
        return new List<Tensor> { ReturnedGradients.Keep(gradInput), null!, null! };
    }

    /// <summary>The dropped copy of <paramref name="source"/> (float32 or bfloat16, on the CPU) for mask seed <paramref name="seed"/>.</summary>
    internal static Tensor Drop(Tensor source, double p, ulong seed) => Drop(source, p, seed, Vector512.IsHardwareAccelerated);

    /// <summary><see cref="Drop(Tensor, double, ulong)"/>, in 512-bit vectors or not (tests compare the two).</summary>
    internal static unsafe Tensor Drop(Tensor source, double p, ulong seed, bool vectors)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = source.contiguous();
        var output = empty_like(input);
        long count = input.NumberOfElements;
        if (count > 0)
        {
            uint threshold = LoraDropout.Threshold(p);
            var dtype = input.dtype;
            float scale = dtype == ScalarType.BFloat16 ? BFloat16Scale(p) : (float)(1.0 / (1.0 - p));
            nint from = TensorMemory.Address(input), to = TensorMemory.Address(output);
            long pairs = (count + 1) / 2;
            int parts = (int)Math.Clamp(count / MinValuesPerWorker, 1, Math.Max(1, get_num_threads()));
            void Run(long first, long end)
            {
                if (vectors)
                {
                    // Whole blocks of 16 pairs whose 32 elements all exist; the rest one pair at a time.
                    long blocks = (Math.Min(end, count / 2) - first) / 16;
                    if (blocks > 0)
                    {
                        if (dtype == ScalarType.BFloat16) DropBlocks((ushort*)from, (ushort*)to, first, blocks, seed, threshold, scale);
                        else DropBlocks((float*)from, (float*)to, first, blocks, seed, threshold, scale);
                        first += 16 * blocks;
                    }
                }
                if (dtype == ScalarType.BFloat16) DropPairs((ushort*)from, (ushort*)to, count, first, end, seed, threshold, scale);
                else DropPairs((float*)from, (float*)to, count, first, end, seed, threshold, scale);
            }
            if (parts == 1) Run(0, pairs);
            else Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part => Run(pairs * part / parts, pairs * (part + 1) / parts));
        }
        return output.MoveToOuterDisposeScope();
    }

    // 1 / (1 − p) as torch's dropout holds it in bfloat16: the float32 value rounded to nearest even.
    private static float BFloat16Scale(double p) => BFloat16RowKernel.Widen(BFloat16RowKernel.Round((float)(1.0 / (1.0 - p))));

    // Each block: pairs first … first + 15, elements 2·first … 2·first + 31.
    private static unsafe void DropBlocks(float* input, float* output, long firstPair, long blocks, ulong seed, uint threshold, float scale)
    {
        var bound = Vector512.Create(threshold);
        var keep = Vector512.Create(scale);
        for (long pair = firstPair, end = firstPair + 16 * blocks; pair < end; pair += 16)
        {
            long i = 2 * pair;
            (Vector512.Load(input + i) * Factors(LoraDropout.Draw8(seed, pair), bound, keep)).Store(output + i);
            (Vector512.Load(input + i + 16) * Factors(LoraDropout.Draw8(seed, pair + 8), bound, keep)).Store(output + i + 16);
        }
    }

    private static unsafe void DropBlocks(ushort* input, ushort* output, long firstPair, long blocks, ulong seed, uint threshold, float scale)
    {
        var bound = Vector512.Create(threshold);
        var keep = Vector512.Create(scale);
        for (long pair = firstPair, end = firstPair + 16 * blocks; pair < end; pair += 16)
        {
            long i = 2 * pair;
            var (low, high) = BFloat16RowKernel.Widen(Vector512.Load(input + i));
            var first = BFloat16RowKernel.Round(low * Factors(LoraDropout.Draw8(seed, pair), bound, keep));
            var second = BFloat16RowKernel.Round(high * Factors(LoraDropout.Draw8(seed, pair + 8), bound, keep));
            Vector512.Narrow(first, second).Store(output + i);
        }
    }

    // 0 where a half of the draw falls below the bound, the scale elsewhere.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Factors(Vector512<uint> draws, Vector512<uint> bound, Vector512<float> keep)
        => Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(draws, bound).AsSingle(), keep, Vector512<float>.Zero);

    private static unsafe void DropPairs(float* input, float* output, long count, long firstPair, long endPair, ulong seed, uint threshold, float scale)
    {
        for (long pair = firstPair; pair < endPair; pair++)
        {
            ulong bits = LoraDropout.Draw(seed, pair);
            long i = 2 * pair;
            output[i] = input[i] * ((uint)bits < threshold ? 0f : scale);
            if (i + 1 < count) output[i + 1] = input[i + 1] * ((uint)(bits >> 32) < threshold ? 0f : scale);
        }
    }

    private static unsafe void DropPairs(ushort* input, ushort* output, long count, long firstPair, long endPair, ulong seed, uint threshold, float scale)
    {
        for (long pair = firstPair; pair < endPair; pair++)
        {
            ulong bits = LoraDropout.Draw(seed, pair);
            long i = 2 * pair;
            output[i] = BFloat16RowKernel.Round(BFloat16RowKernel.Widen(input[i]) * ((uint)bits < threshold ? 0f : scale));
            if (i + 1 < count) output[i + 1] = BFloat16RowKernel.Round(BFloat16RowKernel.Widen(input[i + 1]) * ((uint)(bits >> 32) < threshold ? 0f : scale));
        }
    }
}
