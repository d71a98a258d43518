using System;
using PeftGen.Precision;
using PeftGen.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Precision;

/// <summary>
/// The product of a bfloat16 input with a float32 weight that recasts the weight for its backward pass: the same numbers
/// as casting the weight and calling libtorch's linear (whose backward keeps the cast copy), and the float64 product
/// within bfloat16's tolerance (see <see cref="MixedPrecisionTests"/>).
/// </summary>
[Collection("torch")]
public sealed class CastLinearFunctionTests
{
    private const double Bf16Tolerance = 0.02;

    private sealed record Gradients(Tensor Output, Tensor Input, Tensor? Weight, Tensor? Bias);

    // Σ(y·probe) through either product, from float32 leaves, with the input cast to bfloat16 as a projection casts it.
    private static Gradients Run(Tensor x, Tensor w, Tensor? b, Tensor probe, bool recast, bool trainWeight)
    {
        var input = x.detach().clone().requires_grad_(true);
        var weight = w.detach().clone().requires_grad_(trainWeight);
        var bias = b?.detach().clone().requires_grad_(trainWeight);
        var compute = input.to(ScalarType.BFloat16);
        if (recast) Assert.True(CastLinearFunction.Applies(compute, weight, bias));
        var y = recast
            ? CastLinearFunction.Apply(compute, weight, bias)
            : nn.functional.linear(compute, weight.to(ScalarType.BFloat16), bias?.to(ScalarType.BFloat16));
        (y.to(ScalarType.Float32) * probe).sum().backward();
        return new Gradients(y.detach(), input.grad!.detach(), weight.grad?.detach(), bias?.grad?.detach());
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)] // a frozen base: only the input's gradient
    [InlineData(false, true)]
    public void Matches_cast_then_linear_and_float64(bool withBias, bool trainWeight)
    {
        using var scope = NewDisposeScope();
        manual_seed(withBias ? 3 : 5);
        var x = randn(2, 7, 96);
        var w = randn(80, 96) * 0.1;
        var b = withBias ? randn(80) : null;
        var probe = randn(2, 7, 80);

        var recast = Run(x, w, b, probe, recast: true, trainWeight);
        var composed = Run(x, w, b, probe, recast: false, trainWeight);

        // The same products in the same dtype: output and the input's and weight's gradients to the bit.
        Assert.True(recast.Output.eq(composed.Output).all().item<bool>());
        Assert.True(recast.Input.eq(composed.Input).all().item<bool>());
        Assert.Equal(ScalarType.Float32, recast.Input.dtype);
        if (trainWeight)
        {
            Assert.Equal(ScalarType.Float32, recast.Weight!.dtype);
            Assert.True(recast.Weight.eq(composed.Weight!).all().item<bool>());
        }
        else
        {
            Assert.Null(recast.Weight);
        }

        // float64 reference of y = x·Wᵀ + b and the gradients of Σ(y·probe), from the bfloat16-rounded input.
        var x64 = x.to(ScalarType.BFloat16).to(ScalarType.Float64);
        var w64 = w.to(ScalarType.Float64);
        var y64 = x64.matmul(w64.t());
        if (b is not null) y64 += b.to(ScalarType.Float64);
        // The gradient reaching the bfloat16 output is the probe rounded to bfloat16.
        var p64 = probe.to(ScalarType.BFloat16).to(ScalarType.Float64);
        Assert.True(Reference.RelativeError(recast.Output.to(ScalarType.Float64), y64) < Bf16Tolerance);
        Assert.True(Reference.RelativeError(recast.Input.to(ScalarType.Float64), p64.matmul(w64)) < Bf16Tolerance);
        if (trainWeight)
            Assert.True(Reference.RelativeError(recast.Weight!.to(ScalarType.Float64), p64.reshape(-1, 80).t().mm(x64.reshape(-1, 96))) < Bf16Tolerance);
        if (b is not null && trainWeight)
        {
            // The bias's gradient is summed in float32 (libtorch's composition rounds the sum to bfloat16 first).
            var exact = p64.reshape(-1, 80).sum(new long[] { 0 });
            Assert.Equal(ScalarType.Float32, recast.Bias!.dtype);
            Assert.True(Reference.RelativeError(recast.Bias.to(ScalarType.Float64), exact) < 1e-6);
            Assert.True(Reference.RelativeError(composed.Bias!.to(ScalarType.Float64), exact) < Bf16Tolerance);
        }
    }

    [Fact]
    public void Applies_only_when_gradients_are_recorded_and_the_weight_needs_a_cast()
    {
        using var scope = NewDisposeScope();
        var weight = randn(8, 4).requires_grad_(true);
        var input = randn(2, 4).to(ScalarType.BFloat16);
        Assert.True(CastLinearFunction.Applies(input, weight, null));
        Assert.True(CastLinearFunction.Applies(input, weight, randn(8)));
        Assert.False(CastLinearFunction.Applies(input, weight, randn(8).to(ScalarType.BFloat16))); // a bias of another dtype
        Assert.False(CastLinearFunction.Applies(input.to(ScalarType.Float32), weight, null)); // no cast needed
        Assert.False(CastLinearFunction.Applies(input, weight.detach(), null)); // nothing requires a gradient
        using var _ = no_grad();
        Assert.False(CastLinearFunction.Applies(input, weight, null));
    }
}
