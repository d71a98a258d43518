using System;
using PeftGen.Tests.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Lora;

/// <remarks>Seeds torch's global generator and expects the next draws to follow, so it runs alone.</remarks>
[Collection(nameof(SerialTorchTests))]
public sealed class LoraDropoutTests
{
    [Theory]
    [InlineData(0.05)]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void Drops_each_element_with_probability_p_and_scales_the_rest(double p)
    {
        using var scope = NewDisposeScope();
        const long n = 1 << 20;
        var x = ones(n);
        var y = LoraDropout.Apply(x, p);
        double dropped = y.eq(0).to(ScalarType.Float64).mean().item<double>();
        // Binomial standard deviation over 2^20 draws is at most 0.0005; 6 of them is a failure, not chance.
        Assert.InRange(dropped, p - 0.003, p + 0.003);
        var kept = y.masked_select(y.ne(0));
        Assert.Equal((float)(1 / (1 - p)), kept.min().item<float>());
        Assert.Equal((float)(1 / (1 - p)), kept.max().item<float>());
        // Neighbours are independent: the two halves of one 64-bit draw must not agree more than chance says.
        var pairs = y.view(-1, 2).eq(0);
        double bothDropped = pairs.all(1).to(ScalarType.Float64).mean().item<double>();
        Assert.InRange(bothDropped, p * p - 0.003, p * p + 0.003);
    }

    [Fact]
    public void The_mask_follows_torch_seed_and_not_the_thread_count()
    {
        using var scope = NewDisposeScope();
        var x = randn(3, 1000, 333);
        manual_seed(7);
        var a = LoraDropout.Apply(x, 0.3);
        manual_seed(7);
        var b = LoraDropout.Apply(x, 0.3);
        var c = LoraDropout.Apply(x, 0.3);
        Assert.True(a.eq(b).all().item<bool>());
        Assert.False(a.eq(c).all().item<bool>());

        var oneThread = empty(999_999);
        var manyThreads = empty(999_999);
        LoraDropout.FillMask(oneThread, 0.3, 12345, 1);
        LoraDropout.FillMask(manyThreads, 0.3, 12345, 7);
        Assert.True(oneThread.eq(manyThreads).all().item<bool>());
    }

    [Fact]
    public void Gradient_is_the_mask_and_zero_probability_is_the_identity()
    {
        using var scope = NewDisposeScope();
        var x = randn(64, 48).requires_grad_(true);
        var y = LoraDropout.Apply(x, 0.25);
        y.sum().backward();
        var expected = y.detach().div(x.detach());
        Assert.True(x.grad!.allclose(expected, rtol: 1e-5, atol: 1e-6));

        var same = LoraDropout.Apply(x, 0);
        Assert.True(same.eq(x).all().item<bool>());
        Assert.Throws<ArgumentOutOfRangeException>(() => LoraDropout.Apply(x, 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => LoraDropout.Apply(x, -0.1));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void One_pass_dropout_is_the_stored_mask_product_to_the_bit(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        // Enough elements to be split over the workers; negative values, whose dropped products are −0.
        var x = randn(3, 1000, 333).to(dtype);
        var mask = empty(x.shape, dtype: ScalarType.Float32);
        LoraDropout.FillMask(mask, 0.05, 987654321, 1);
        var expected = x.mul(mask.to(dtype));
        var actual = DropoutFunction.Drop(x, 0.05, 987654321);
        Assert.Equal(dtype, actual.dtype);
        Assert.True(actual.eq(expected).all().item<bool>());
        Assert.True(actual.signbit().eq(expected.signbit()).all().item<bool>());
        Assert.True(DropoutFunction.Drop(x.transpose(0, 2), 0.05, 987654321).eq(x.transpose(0, 2).contiguous().mul(mask.view(333, 1000, 3).to(dtype))).all().item<bool>(),
            "a strided input is dropped in its logical order");
    }

    [Theory]
    [InlineData(ScalarType.Float32, 999_999)]
    [InlineData(ScalarType.BFloat16, 999_999)]
    [InlineData(ScalarType.BFloat16, 45)]
    public void Vectors_and_single_pairs_give_the_same_bits(ScalarType dtype, int count) // (Vector512 runs anywhere, emulated where not accelerated)
    {
        using var scope = NewDisposeScope();
        manual_seed(count);
        var x = randn(count).mul(1e3);
        // NaN, infinities, signed zeros, a value that rounds up to bfloat16's overflow and a subnormal.
        x[0] = float.NaN; x[1] = float.PositiveInfinity; x[2] = float.NegativeInfinity; x[3] = -0f; x[4] = 3.3895e38f; x[5] = 1e-40f;
        x = x.to(dtype);
        var one = DropoutFunction.Drop(x, 0.4, 42, vectors: false);
        var many = DropoutFunction.Drop(x, 0.4, 42, vectors: true);
        var bothNaN = one.isnan().logical_and(many.isnan());
        Assert.True(one.eq(many).logical_or(bothNaN).all().item<bool>());
        Assert.True(one.signbit().eq(many.signbit()).all().item<bool>());
        // As multiplying by a stored mask: NaN stays NaN, a dropped infinity becomes NaN.
        var mask = empty(count, dtype: ScalarType.Float32);
        LoraDropout.FillMask(mask, 0.4, 42, 1);
        var stored = x.mul(mask.to(dtype));
        Assert.True(many.eq(stored).logical_or(many.isnan().logical_and(stored.isnan())).all().item<bool>());
        Assert.True(many.isnan().eq(stored.isnan()).all().item<bool>());
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void The_backward_pass_drops_the_gradient_by_the_forward_mask(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var x = randn(256, 300).to(dtype).requires_grad_(true);
        var upstream = randn(256, 300).to(dtype);
        var y = LoraDropout.Apply(x, 0.3);
        y.backward(new[] { upstream });
        var kept = y.detach().ne(0);
        float scale = dtype == ScalarType.BFloat16 ? 1.4296875f : (float)(1 / 0.7); // 1/0.7 rounded to bfloat16's 8 bits
        var expected = upstream.mul(kept.to(dtype)).mul(scale);
        Assert.True(x.grad!.eq(expected).all().item<bool>());
        Assert.InRange(kept.to(ScalarType.Float64).mean().item<double>(), 0.68, 0.72);
    }

    [Fact]
    public void Lora_layers_drop_in_training_and_not_in_eval()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var layer = new LoraLinear(32, 16, hasBias: false);
        layer.AddAdapter("default", new LoraConfig(4, 8, Dropout: 0.5));
        using (no_grad()) layer.LoraB("default").normal_(0, 1);
        var x = randn(8, 32);
        layer.train();
        var first = layer.forward(x);
        var second = layer.forward(x);
        Assert.False(first.allclose(second), "training mode draws a new mask each call");
        layer.eval();
        Assert.True(layer.forward(x).allclose(layer.forward(x)));
    }
}
