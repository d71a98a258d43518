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
/// products (one row gives bit-identical results), each block read by its own core. Gradients, other devices, other
/// dtypes (bfloat16 products already go to oneDNN, which uses every thread), larger inputs and small weights take
/// <c>nn.functional.linear</c> unchanged.
/// </remarks>
internal static class FewRowProduct
{
    /// <summary>The most rows that are split this way; from 16 rows MKL's own product is as fast.</summary>
    internal const int MaxRows = 8;

    /// <summary>Weights with fewer elements than this are multiplied as they are (the batched call costs more than it saves).</summary>
    internal const long MinWeightElements = 1L << 18;

    /// <summary><c>nn.functional.linear(input, weight, bias)</c>, split over the torch threads where that is faster.</summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null)
    {
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
