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
