using System;
using System.Runtime.Intrinsics;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

/// <summary>
/// The CPU kernel that makes a chunk's softmax numerators in place: maximum and target logit exact, numerators and sums
/// against float64's exp, bfloat16 numerators rounded once; rejected inputs.
/// </summary>
[Collection("torch")]
public sealed class SoftmaxRowsKernelTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 5, 1000)] // a tail after the 64-wide blocks
    [InlineData(ScalarType.Float32, 3, 64)]
    [InlineData(ScalarType.BFloat16, 7, 50_257)] // GPT-2's vocabulary
    [InlineData(ScalarType.BFloat16, 2, 33)]
    [InlineData(ScalarType.Float32, 1, 1)]
    public void Numerators_sums_maxima_and_targets_match_float64(ScalarType dtype, int rows, int vocab)
    {
        if (!SoftmaxRowsKernel.Runs) return; // no 512-bit vectors: the chunked loss keeps libtorch's passes (tested there)
        using var scope = NewDisposeScope();
        manual_seed(rows * 1000 + vocab);
        var logits = (randn(rows, vocab) * 6).to(dtype);
        var targets = randint(0, vocab, new long[] { rows, 1 });
        var x = logits.to(ScalarType.Float64);
        var max = x.amax(new long[] { 1 }, keepdim: true);
        // The shift x − max rounds in float32, as libtorch's passes round it; the exponential of it is float64's.
        var numerators = (logits.to(ScalarType.Float32) - max.to(ScalarType.Float32)).to(ScalarType.Float64).exp();

        var chunk = logits.clone();
        var (rowMax, targetLogits, sums) = SoftmaxRowsKernel.Run(chunk, targets);

        Assert.True(rowMax.to(ScalarType.Float64).eq(max).all().item<bool>(), "the maximum is exact");
        Assert.True(targetLogits.to(ScalarType.Float64).eq(x.gather(1, targets)).all().item<bool>(), "the target logit is read as stored");
        var sumError = (sums.to(ScalarType.Float64) / numerators.sum(new long[] { 1 }, keepdim: true) - 1).abs().max().item<double>();
        Assert.True(sumError < 1e-6, $"sum relative error {sumError:E2}");
        // float32: within 3 ulp of the exact exponential (an ulp is at most 2⁻²³ relative); bfloat16: that, rounded to
        // bfloat16's 8 significant bits (half an ulp, at most 2⁻⁸ relative, plus the float32 error).
        double bound = dtype == ScalarType.BFloat16 ? 1.0 / 256 + 3.0 / (1 << 23) : 3.0 / (1 << 23);
        var relative = ((chunk.to(ScalarType.Float64) - numerators).abs() / numerators).max().item<double>();
        Assert.True(relative <= bound, $"numerator error up to {relative:E2} relative (bound {bound:E2})");
    }

    [Fact]
    public void Bfloat16_numerators_are_the_float32_numerators_rounded_to_nearest_even()
    {
        if (!SoftmaxRowsKernel.Runs) return;
        using var scope = NewDisposeScope();
        manual_seed(8);
        var logits = (randn(3, 4099) * 4).to(ScalarType.BFloat16);
        var targets = zeros(3, dtype: ScalarType.Int64);
        var asFloat = logits.to(ScalarType.Float32);
        var half = logits.clone();
        SoftmaxRowsKernel.Run(asFloat, targets);
        SoftmaxRowsKernel.Run(half, targets);
        Assert.True(half.eq(asFloat.to(ScalarType.BFloat16)).all().item<bool>());
    }

    [Fact]
    public void The_exponential_is_within_3_ulp_over_the_range_a_softmax_uses()
    {
        double worst = 0;
        for (int i = 0; i <= 200_000; i++)
        {
            float x = -87f * i / 200_000;
            float e = SoftmaxRowsKernel.Exp(Vector512.Create(x)).ToScalar();
            double exact = Math.Exp(x);
            float rounded = (float)exact;
            double ulp = MathF.BitIncrement(rounded) - rounded;
            worst = Math.Max(worst, Math.Abs(e - exact) / ulp);
        }
        Assert.True(worst <= 3, $"worst error {worst:F2} ulp");
        Assert.Equal(1f, SoftmaxRowsKernel.Exp(Vector512<float>.Zero).ToScalar());
        Assert.True(float.IsNaN(SoftmaxRowsKernel.Exp(Vector512.Create(float.NaN)).ToScalar()));
        Assert.InRange(SoftmaxRowsKernel.Exp(Vector512.Create(-1000f)).ToScalar(), 0f, 1.3e-38f);
    }

    [Fact]
    public void Targets_outside_the_vocabulary_and_other_inputs_are_rejected()
    {
        if (!SoftmaxRowsKernel.Runs) return;
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SoftmaxRowsKernel.Run(zeros(2, 10), tensor(new long[] { 3, 10 })));
        Assert.Contains("outside the vocabulary", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SoftmaxRowsKernel.Run(zeros(1, 10), tensor(new long[] { -1 })));
        Assert.False(SoftmaxRowsKernel.Takes(zeros(2, 10).t()));
        Assert.False(SoftmaxRowsKernel.Takes(zeros(new long[] { 2, 10 }, dtype: ScalarType.Float64)));
        Assert.False(SoftmaxRowsKernel.Takes(zeros(new long[] { 2, 10 }, dtype: ScalarType.Float16)));
        Assert.Throws<ArgumentException>(() => SoftmaxRowsKernel.Run(zeros(2, 10), tensor(new long[] { 1 })));
    }
}
