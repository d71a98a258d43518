using System;
using System.Linq;
using System.Runtime.InteropServices;
using PeftGen.Inference;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Inference;

/// <summary>
/// The bfloat16 row kernel that decoding's bfloat16 products go to: each output the float64 product of the bfloat16
/// inputs rounded once, whatever the split and vector width; rounding as libtorch rounds; taken only where it is meant to be.
/// </summary>
[Collection("torch")]
public sealed class BFloat16RowKernelTests
{
    // The kernel's widths travel as their bit counts: the enum is internal to the library.
    public static TheoryData<int, int, int, bool, int> Shapes()
    {
        var data = new TheoryData<int, int, int, bool, int>();
        foreach (var bits in new[] { 256, 512 }.Where(bits => BFloat16RowKernel.Runs(Width(bits))))
        {
            var width = bits;
            data.Add(1, 1024, 512, false, width); // decoding's one row, the width a multiple of every vector
            data.Add(1, 1000, 517, true, width); // a tail after the vectors, and a bias
            data.Add(3, 999, 300, true, width);
            data.Add(8, 600, 2048, false, width); // the most rows
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Each_output_is_the_float64_product_rounded_once(int rows, int outFeatures, int inFeatures, bool withBias, int bits)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(rows * 131 + inFeatures);
        var weight = randn(outFeatures, inFeatures).to(ScalarType.BFloat16);
        var bias = withBias ? randn(outFeatures).to(ScalarType.BFloat16) : null;
        var input = randn(rows, 1, inFeatures).to(ScalarType.BFloat16);

        var actual = FewRowProduct.BFloat16Linear(input, weight, bias, workers: 1, Width(bits));

        Assert.Equal(new long[] { rows, 1, outFeatures }, actual.shape);
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        AssertRoundedProduct(actual, input, weight, bias);
    }

    [Fact]
    public void The_split_over_workers_does_not_change_a_bit()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(17);
        // Enough values for two workers (a head-sized weight), and an output size that does not divide by them.
        int outFeatures = (int)(2 * BFloat16RowKernel.MinValuesPerWorker / 1024) + 3;
        var weight = randn(outFeatures, 1024).to(ScalarType.BFloat16);
        var bias = randn(outFeatures).to(ScalarType.BFloat16);
        var input = randn(2, 1024).to(ScalarType.BFloat16);
        var width = BFloat16RowKernel.Best;

        var one = FewRowProduct.BFloat16Linear(input, weight, bias, workers: 1, width);
        var two = FewRowProduct.BFloat16Linear(input, weight, bias, workers: 2, width);

        Assert.Equal(Bits(one), Bits(two));
        AssertRoundedProduct(two, input, weight, bias);
    }

    [Fact]
    public void Reads_a_weight_that_starts_inside_its_storage()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(23);
        var whole = randn(700, 512).to(ScalarType.BFloat16);
        var weight = whole.narrow(0, 7, 600); // contiguous, at an offset of 7 rows
        var input = randn(1, 512).to(ScalarType.BFloat16);
        Assert.True(FewRowProduct.UsesBFloat16Kernel(input, weight, null));

        var actual = FewRowProduct.Linear(input, weight);

        AssertRoundedProduct(actual, input, weight, null);
    }

    [Fact]
    public void Rounds_to_bfloat16_as_libtorch_does()
    {
        using var scope = NewDisposeScope();
        manual_seed(29);
        // Ties both ways (1 + 2⁻⁸ stays 1, 1 + 3·2⁻⁸ goes up to even), overflow to infinity, subnormals, signed zeros,
        // infinities, NaN, and random values over many magnitudes.
        var special = new[]
        {
            1f + MathF.Pow(2, -8), 1f + 3 * MathF.Pow(2, -8), -(1f + 3 * MathF.Pow(2, -8)), float.MaxValue, -float.MaxValue,
            float.Epsilon, 1e-40f, -1e-40f, 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
        };
        var random = (randn(4096) * exp(randn(4096) * 10)).data<float>().ToArray();
        var values = special.Concat(random).ToArray();

        var ours = values.Select(BFloat16RowKernel.Round).ToArray();
        var torchs = Bits(tensor(values).to(ScalarType.BFloat16));

        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsNaN(values[i])) Assert.True(float.IsNaN(BFloat16RowKernel.Widen(ours[i])));
            else Assert.True(torchs[i] == ours[i], $"{values[i]:R}: 0x{ours[i]:X4}, libtorch 0x{torchs[i]:X4}");
        }
        Assert.Equal(1f, BFloat16RowKernel.Widen(BFloat16RowKernel.Round(1f + MathF.Pow(2, -8))));
    }

    [Fact]
    public void Takes_decoding_products_in_bfloat16_only()
    {
        using var scope = NewDisposeScope();
        var weight = randn(1024, 512).to(ScalarType.BFloat16);
        var one = randn(1, 512).to(ScalarType.BFloat16);
        // With gradients on, autograd records the plain product.
        Assert.False(FewRowProduct.UsesBFloat16Kernel(one, weight, null));
        using var _ = no_grad();
        Assert.True(FewRowProduct.UsesBFloat16Kernel(one, weight, null));
        Assert.True(FewRowProduct.UsesBFloat16Kernel(randn(8, 1, 512).to(ScalarType.BFloat16), weight, randn(1024).to(ScalarType.BFloat16)));
        Assert.False(FewRowProduct.UsesBFloat16Kernel(randn(9, 512).to(ScalarType.BFloat16), weight, null)); // more rows than the kernel takes
        Assert.False(FewRowProduct.UsesBFloat16Kernel(one.to(ScalarType.Float32), weight.to(ScalarType.Float32), null)); // float32: the split product
        Assert.False(FewRowProduct.UsesBFloat16Kernel(one, weight.to(ScalarType.Float32), null)); // mixed dtypes
        Assert.False(FewRowProduct.UsesBFloat16Kernel(one, weight, randn(1024))); // a float32 bias
        Assert.False(FewRowProduct.UsesBFloat16Kernel(one, randn(512, 1024).to(ScalarType.BFloat16).t(), null)); // a transposed view
        Assert.False(FewRowProduct.UsesBFloat16Kernel(randn(1, 64).to(ScalarType.BFloat16), randn(64, 64).to(ScalarType.BFloat16), null)); // a small weight
    }

    // |actual − exact| ≤ half a bfloat16 step of the exact value, 2⁻⁸ of it (the one rounding: 8 significant bits) + float32 accumulation's error,
    // bounded by 2⁻²⁰ of Σ|x·w| (n ≤ 2048 terms at 2⁻²⁴ each, with room).
    private static void AssertRoundedProduct(Tensor actual, Tensor input, Tensor weight, Tensor? bias)
    {
        var x = input.to(ScalarType.Float64).reshape(-1, weight.shape[1]);
        var w = weight.to(ScalarType.Float64);
        var exact = nn.functional.linear(x, w, bias?.to(ScalarType.Float64));
        var magnitude = nn.functional.linear(x.abs(), w.abs(), bias?.to(ScalarType.Float64).abs());
        var bound = exact.abs() * Math.Pow(2, -8) + magnitude * Math.Pow(2, -20);
        var error = (actual.to(ScalarType.Float64).reshape(exact.shape) - exact).abs();
        var worst = (error - bound).max().item<double>();
        Assert.True(worst <= 0, $"an output is {worst:E2} beyond its bound (largest error {error.max().item<double>():E2})");
    }

    private static BFloat16RowKernel.Width Width(int bits) => bits == 512 ? BFloat16RowKernel.Width.Bits512 : BFloat16RowKernel.Width.Bits256;

    private static ushort[] Bits(Tensor bfloat16) => MemoryMarshal.Cast<byte, ushort>(bfloat16.contiguous().bytes).ToArray();
}
