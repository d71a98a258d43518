using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Inference;

/// <summary>
/// <c>x·Wᵀ (+ b)</c> for an input of a few rows on the CPU: decoding's shape, one new token per row.
/// </summary>
/// <remarks>
/// libtorch hands a float32 product with one row to MKL's matrix-vector kernel, which runs on one thread: the weight is
/// read at one core's memory bandwidth while the other threads wait, and a decoding step reads every weight of the model
/// once. With 2–8 rows MKL's matrix product is slower still (on the 2-core AMD EPYC this was written on, 2 rows over
/// GPT-2's 50,257 × 512 head took 39 ms against 10 ms for one). Here the weight's rows are cut into one block per torch
/// thread and the blocks multiplied as one batched product, which libtorch spreads over its threads: the same dot
/// products (one row gives bit-identical results), each block read by its own core.
/// <para>In bfloat16 libtorch hands the product to oneDNN, which read a one-row product's weight at about half the
/// rate memory delivers (11–15 GB/s on two threads where a float32 sum streams 28); those products go to
/// <see cref="BFloat16RowKernel"/> instead, which reads 20 GB/s on one thread. Gradients, other devices, other dtypes,
/// larger inputs and small weights take <c>nn.functional.linear</c> unchanged.</para>
/// </remarks>
internal static class FewRowProduct
{
    /// <summary>The most rows that are split this way; from 16 rows MKL's own product is as fast.</summary>
    internal const int MaxRows = 8;

    /// <summary>Weights with fewer elements than this are multiplied as they are (the batched call costs more than it saves).</summary>
    internal const long MinWeightElements = 1L << 18;

    /// <summary>
    /// <c>nn.functional.linear(input, weight, bias)</c>: split over the torch threads (float32), or through the bfloat16
    /// row kernel (bfloat16), where that is faster.
    /// </summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null)
    {
        if (UsesBFloat16Kernel(input, weight, bias)) return BFloat16Linear(input, weight, bias);
        int blocks = Blocks(input, weight);
        if (blocks < 2) return nn.functional.linear(input, weight, bias);

        long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
        long rows = input.numel() / inFeatures;
        long perBlock = outFeatures / blocks;
        long covered = perBlock * blocks;
        using var scope = NewDisposeScope();
        var x = input.reshape(rows, inFeatures);
        // [blocks, rows, perBlock]: block b holds output columns b·perBlock … (b + 1)·perBlock − 1.
        var products = x.unsqueeze(0).expand(blocks, rows, inFeatures)
            .bmm(weight.narrow(0, 0, covered).view(blocks, perBlock, inFeatures).transpose(1, 2));
        var output = products.permute(1, 0, 2).reshape(rows, covered);
        if (covered < outFeatures)
        {
            // The rows left over when the output size does not divide by the blocks (fewer than one per block).
            output = cat(new[] { output, nn.functional.linear(x, weight.narrow(0, covered, outFeatures - covered)) }, 1);
        }
        if (bias is not null) output = output.add_(bias);
        var shape = input.shape.ToArray();
        shape[^1] = outFeatures;
        return output.view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Whether <paramref name="input"/> (last dimension the features) is a decoding step's: at most <see cref="MaxRows"/>
    /// rows, on the CPU, with gradients off.
    /// </summary>
    internal static bool IsCpuDecoding(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (is_grad_enabled() || input.device_type != DeviceType.CPU || input.dim() == 0 || input.shape[^1] == 0) return false;
        long rows = input.numel() / input.shape[^1];
        return rows is >= 1 and <= MaxRows;
    }

    /// <summary>
    /// Whether the product goes to <see cref="BFloat16RowKernel"/>: a decoding step's input and a weight (and bias) in
    /// bfloat16, contiguous, on the CPU, the weight large enough to be worth it, on a machine with the vectors.
    /// </summary>
    internal static bool UsesBFloat16Kernel(Tensor input, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (!BFloat16RowKernel.IsSupported || !IsCpuDecoding(input) || input.dtype != ScalarType.BFloat16) return false;
        if (weight.device_type != DeviceType.CPU || weight.dtype != ScalarType.BFloat16 || weight.dim() != 2 || !weight.is_contiguous()) return false;
        // The tensors are read through spans, whose length is an int.
        if (weight.numel() < MinWeightElements || weight.numel() > int.MaxValue / sizeof(ushort) || input.shape[^1] != weight.shape[1]) return false;
        if (input.numel() / weight.shape[1] > BFloat16RowKernel.MaxRows) return false;
        return bias is null
            || (bias.device_type == DeviceType.CPU && bias.dtype == ScalarType.BFloat16 && bias.dim() == 1 && bias.is_contiguous() && bias.shape[0] == weight.shape[0]);
    }

    /// <summary><see cref="Linear"/> through <see cref="BFloat16RowKernel"/> (the caller checked <see cref="UsesBFloat16Kernel"/>).</summary>
    internal static Tensor BFloat16Linear(Tensor input, Tensor weight, Tensor? bias)
        => BFloat16Linear(input, weight, bias, get_num_threads(), BFloat16RowKernel.Best);

    /// <summary>The same with a chosen worker count and vector width (tests run each).</summary>
    internal static unsafe Tensor BFloat16Linear(Tensor input, Tensor weight, Tensor? bias, int workers, BFloat16RowKernel.Width width)
    {
        long outFeatures = weight.shape[0];
        int inFeatures = (int)weight.shape[1];
        int rows = (int)(input.numel() / inFeatures);
        using var scope = NewDisposeScope();
        // The input rows widened to float32 once (a few KB); the kernel widens the weight as it reads it.
        var x = input.reshape(rows, inFeatures).to(ScalarType.Float32).contiguous();
        var output = empty(new long[] { rows, outFeatures }, dtype: ScalarType.BFloat16);
        var noBias = Span<byte>.Empty;
        fixed (byte* xp = x.bytes)
        fixed (byte* wp = weight.bytes)
        fixed (byte* bp = bias is null ? noBias : bias.bytes)
        fixed (byte* op = output.bytes)
        {
            BFloat16RowKernel.Multiply((float*)xp, (ushort*)wp, (ushort*)bp, (ushort*)op, rows, outFeatures, inFeatures, workers, width);
        }
        var shape = input.shape.ToArray();
        shape[^1] = outFeatures;
        return output.view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>How many blocks the weight is cut into for this input: below 2, none (the product is left to libtorch).</summary>
    internal static int Blocks(Tensor input, Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (!IsCpuDecoding(input) || weight.device_type != DeviceType.CPU) return 0;
        if (input.dtype != ScalarType.Float32 || weight.dtype != ScalarType.Float32) return 0;
        if (weight.dim() != 2 || !weight.is_contiguous() || weight.numel() < MinWeightElements || input.shape[^1] != weight.shape[1]) return 0;
        int threads = get_num_threads();
        return weight.shape[0] >= threads ? threads : 0;
    }
}
