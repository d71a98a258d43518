using System;
using System.Runtime.Intrinsics;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Layers;

/// <summary>
/// GPT-2's GELU (tanh approximation) without gradients against libtorch's own <c>gelu(approximate='tanh')</c> in float64,
/// the bfloat16 results rounded once from float32, the edges (0, ±large, NaN), the split between workers, and libtorch's
/// gelu wherever the kernel does not run (gradients, other dtypes).
/// </summary>
[Collection("torch")]
public sealed class GeluTanhTests
{
    // A float32 ulp, relative.
    private const double Epsilon = 1.0 / (1 << 23);

    // The absolute floor: below x ≈ −5 the result is under 10⁻⁷ and float64's own 1 + tanh(u) keeps few digits of it.
    private const double Absolute = 1e-12;

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Matches_libtorch_in_float64(ScalarType dtype)
    {
        if (!GeluTanhKernel.Runs) return; // no 512-bit vectors: Apply is libtorch's gelu (the fallback test)
        using var scope = NewDisposeScope();
        manual_seed(11);
        // Every value from −12 to 12 in steps of 1/1024, then the activations' usual spread.
        var x = cat(new[] { arange(-12.0, 12.0, 1.0 / 1024), randn(50_000) * 3 }).to(dtype);

        var y = GeluTanh.Apply(x);
        var exact = nn.functional.gelu(x.to(ScalarType.Float64), GELU.Approximate.tanh);

        // The error bound of the float32 evaluation of x·s, s = 1 / (1 + exp(−2u)): a few ulp for the exponential, the
        // division and the product, and |2u| ulp more where 2u < 0, since 2u = x·(c + k·x²) is itself rounded (an error
        // of δ in the exponent is a relative error of δ in exp). bfloat16 rounds each result once more: half a bfloat16
        // ulp, 2⁻⁸ relative.
        var xs = x.to(ScalarType.Float64);
        var twoU = xs * (xs.square() * 0.044715 + 1) * 1.5957691216057308;
        var conditioning = (-twoU).clamp_min(0);
        double rounding = dtype == ScalarType.BFloat16 ? 1.0 / 256 : 0;
        var bound = exact.abs() * ((conditioning + 8) * Epsilon + rounding) + Absolute;
        var worst = ((y.to(ScalarType.Float64) - exact).abs() / bound).max().item<double>();
        Assert.True(worst <= 1, $"error up to {worst:F2} times its bound");
        Assert.Equal(dtype, y.dtype);
    }

    [Fact]
    public void Bfloat16_results_are_the_float32_results_rounded_to_nearest_even()
    {
        if (!GeluTanhKernel.Runs) return;
        using var scope = NewDisposeScope();
        manual_seed(12);
        var half = (randn(4099) * 4).to(ScalarType.BFloat16);
        var asFloat = half.to(ScalarType.Float32);
        Assert.True(GeluTanhKernel.Forward(half).eq(GeluTanhKernel.Forward(asFloat).to(ScalarType.BFloat16)).all().item<bool>());
    }

    [Fact]
    public void Edges_stay_finite_and_exact_where_the_function_is_flat()
    {
        if (!GeluTanhKernel.Runs) return;
        float Gelu(float x) => GeluTanhKernel.Gelu(Vector512.Create(x)).ToScalar();
        Assert.Equal(0f, Gelu(0f));
        foreach (float big in new[] { 20f, 1e4f, 1e20f, float.MaxValue })
        {
            Assert.Equal(big, Gelu(big));
            Assert.Equal(0f, Gelu(-big)); // −0, as libtorch's tanh form gives
        }
        Assert.True(float.IsNaN(Gelu(float.NaN)));
        // The infinities as libtorch has them: +∞, and NaN for −∞ (−∞ times a gate of 0).
        using var infinities = tensor(new[] { float.PositiveInfinity, float.NegativeInfinity });
        using var libtorch = nn.functional.gelu(infinities, GELU.Approximate.tanh);
        Assert.Equal(libtorch[0].item<float>(), Gelu(float.PositiveInfinity));
        Assert.Equal(float.IsNaN(libtorch[1].item<float>()), float.IsNaN(Gelu(float.NegativeInfinity)));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void A_tensor_split_between_workers_gives_what_its_slices_give_alone(ScalarType dtype)
    {
        if (!GeluTanhKernel.Runs) return;
        using var scope = NewDisposeScope();
        manual_seed(13);
        // Over a million values (split between the workers), not a multiple of 32 (a tail); slices of 100,003 run alone.
        const long count = 1_000_003;
        var x = (randn(count) * 3).to(dtype);
        var whole = GeluTanhKernel.Forward(x);
        for (long start = 0; start < count; start += 100_003)
        {
            long length = Math.Min(100_003, count - start);
            Assert.True(whole.narrow(0, start, length).eq(GeluTanhKernel.Forward(x.narrow(0, start, length))).all().item<bool>());
        }
    }

    [Fact]
    public void A_strided_input_gives_what_its_contiguous_copy_gives()
    {
        using var scope = NewDisposeScope();
        manual_seed(14);
        var x = randn(64, 48).t();
        Assert.False(x.is_contiguous());
        Assert.True(GeluTanh.Apply(x).eq(GeluTanh.Apply(x.contiguous())).all().item<bool>());
    }

    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Float16)]
    public void Other_dtypes_run_libtorch_gelu(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        manual_seed(15);
        var x = randn(1000).to(dtype);
        Assert.True(GeluTanh.Apply(x).eq(nn.functional.gelu(x, GELU.Approximate.tanh)).all().item<bool>());
    }

    [Fact]
    public void With_gradients_it_is_libtorch_gelu_and_differentiable()
    {
        using var scope = NewDisposeScope();
        manual_seed(16);
        var x = randn(1000).requires_grad_(true);
        var y = GeluTanh.Apply(x);
        Assert.True(y.requires_grad);
        Assert.True(y.eq(nn.functional.gelu(x, GELU.Approximate.tanh)).all().item<bool>());
        var gradient = autograd.grad(new[] { y.sum() }, new[] { x })[0];
        var reference = x.detach().requires_grad_(true);
        var expected = autograd.grad(new[] { nn.functional.gelu(reference, GELU.Approximate.tanh).sum() }, new[] { reference })[0];
        Assert.True(gradient.eq(expected).all().item<bool>());
        using (no_grad()) Assert.False(GeluTanh.Apply(x).requires_grad);
    }

}
