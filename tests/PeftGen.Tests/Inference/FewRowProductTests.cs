using System;
using PeftGen.Inference;
using PeftGen.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Inference;

/// <summary>The split product for decoding's few rows: the same numbers as a plain product (float64 reference), and taken only where it is meant to be.</summary>
[Collection("torch")]
public sealed class FewRowProductTests
{
    [Theory]
    [InlineData(1, 1024, false)]
    [InlineData(1, 1027, true)] // the output size does not divide by the blocks: the leftover rows are multiplied apart
    [InlineData(2, 1024, true)]
    [InlineData(3, 1027, false)]
    [InlineData(8, 1030, true)]
    public void Equals_the_float64_product(int rows, int outFeatures, bool withBias)
    {
        using var scope = NewDisposeScope();
        using var threads = Threads(2);
        using var _ = no_grad();
        manual_seed(rows * 31 + outFeatures);
        var weight = randn(outFeatures, 300);
        var bias = withBias ? randn(outFeatures) : null;
        var input = randn(rows, 1, 300); // decoding's shape: rows × one new position × width
        Assert.True(FewRowProduct.Blocks(input, weight) >= 2);

        var actual = FewRowProduct.Linear(input, weight, bias);

        var expected = input.to(ScalarType.Float64).matmul(weight.to(ScalarType.Float64).t());
        if (bias is not null) expected = expected + bias.to(ScalarType.Float64);
        Assert.Equal(new long[] { rows, 1, outFeatures }, actual.shape);
        Assert.Equal(ScalarType.Float32, actual.dtype);
        Assert.True(Reference.RelativeError(actual, expected) < 1e-6, $"relative error {Reference.RelativeError(actual, expected):E2}");
        // And as close to libtorch's own product as float32 rounding allows.
        Assert.True(Reference.RelativeError(actual, nn.functional.linear(input, weight, bias)) < 1e-6);
    }

    [Fact]
    public void Splits_one_block_per_torch_thread_for_decoding_inputs()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var weight = randn(1024, 512);
        using (Threads(2)) Assert.Equal(2, FewRowProduct.Blocks(randn(1, 512), weight));
        using (Threads(2)) Assert.Equal(2, FewRowProduct.Blocks(randn(8, 1, 512), weight));
        using (Threads(1)) Assert.True(FewRowProduct.Blocks(randn(1, 512), weight) < 2);
    }

    [Fact]
    public void Leaves_every_other_product_to_libtorch()
    {
        using var scope = NewDisposeScope();
        using var threads = Threads(2);
        var weight = randn(1024, 512);
        var one = randn(1, 512);
        // Training: autograd records the plain product.
        Assert.True(FewRowProduct.Blocks(one, weight) < 2);
        using var _ = no_grad();
        Assert.True(FewRowProduct.Blocks(randn(9, 512), weight) < 2); // more rows than MaxRows: MKL's product is as fast
        Assert.True(FewRowProduct.Blocks(one.to(ScalarType.BFloat16), weight.to(ScalarType.BFloat16)) < 2); // bfloat16 goes to its row kernel instead
        Assert.True(FewRowProduct.Blocks(randn(1, 64), randn(64, 64)) < 2); // a small weight
        Assert.True(FewRowProduct.Blocks(one, randn(512, 1024).t()) < 2); // a transposed view
    }

    [Fact]
    public void With_gradients_on_the_product_stays_differentiable()
    {
        using var scope = NewDisposeScope();
        using var threads = Threads(2);
        var weight = randn(1024, 512).requires_grad_(true);
        var input = randn(1, 512);
        FewRowProduct.Linear(input, weight).sum().backward();
        Assert.NotNull(weight.grad);
        Assert.True(Reference.RelativeError(weight.grad!, input.expand(1024, 512)) < 1e-6);
    }

    private static IDisposable Threads(int count)
    {
        int before = get_num_threads();
        set_num_threads(count);
        return new Restore(() => set_num_threads(before));
    }

    private sealed class Restore(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
