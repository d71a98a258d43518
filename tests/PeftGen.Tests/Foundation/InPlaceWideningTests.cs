using System;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Foundation;

public sealed class InPlaceWideningTests
{
    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void The_alias_is_the_first_half_of_the_float32_tensors_bytes(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var target = zeros(5, 7);
        var values = (randn(5, 7) * 3).to(dtype);
        var alias = InPlaceWidening.Alias(target, dtype);
        Assert.Equal(dtype, alias.dtype);
        Assert.Equal(target.shape, alias.shape);
        alias.copy_(values);

        var bytes = target.bytes.ToArray();
        var written = values.bytes.ToArray();
        Assert.Equal(written, bytes[..written.Length]);
        Assert.All(bytes[written.Length..], b => Assert.Equal(0, b)); // the second half is untouched
        Assert.True(SameBits(alias, values));
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, new long[] { 1 })]
    [InlineData(ScalarType.BFloat16, new long[] { 2 })]
    [InlineData(ScalarType.BFloat16, new long[] { 3 })]
    [InlineData(ScalarType.BFloat16, new long[] { 7, 5 })]
    [InlineData(ScalarType.BFloat16, new long[] { 50_257, 128 })]
    [InlineData(ScalarType.Float16, new long[] { 1 })]
    [InlineData(ScalarType.Float16, new long[] { 999, 33 })]
    public void Widening_in_place_leaves_every_value_as_torch_converts_it(ScalarType dtype, long[] shape)
    {
        manual_seed(3);
        using var scope = NewDisposeScope();
        // Values of every magnitude and sign, with the special ones in the first and last places.
        var values = (randn(shape) * exp(randn(shape) * 4)).to(dtype).view(-1);
        values[0] = tensor(float.PositiveInfinity).to(dtype);
        values[-1] = tensor(-0.0f).to(dtype);
        if (values.shape[0] > 2) values[1] = tensor(float.NaN).to(dtype);
        values = values.view(shape);
        var expected = values.to(ScalarType.Float32); // torch's own conversion, made apart

        var target = full(shape, 12345.678f); // garbage in the second half must not leak into the result
        var alias = InPlaceWidening.Alias(target, dtype);
        alias.copy_(values);
        InPlaceWidening.Widen(target, alias);

        Assert.Equal(ScalarType.Float32, target.dtype);
        Assert.True(target.isnan().equal(expected.isnan()).all().item<bool>(), "NaN where torch's conversion has none, or none where it has one");
        // Every other value bit for bit (so −0 stays −0); a NaN's payload may differ between conversion kernels.
        Assert.True(SameBits(target.nan_to_num(0), expected.nan_to_num(0)), "the widened values differ from torch's conversion");
    }

    [Fact]
    public void Only_a_contiguous_float32_cpu_tensor_can_hold_a_16_bit_one()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => InPlaceWidening.Alias(zeros(4, 4, dtype: ScalarType.Float64), ScalarType.BFloat16));
        Assert.Throws<ArgumentException>(() => InPlaceWidening.Alias(zeros(4, 4), ScalarType.Float32));
        Assert.Throws<ArgumentException>(() => InPlaceWidening.Alias(zeros(4, 6).t(), ScalarType.BFloat16));
        Assert.False(InPlaceWidening.Applies(ScalarType.Float32, ScalarType.BFloat16, new Device(DeviceType.CUDA, 0)));
        Assert.True(InPlaceWidening.Applies(ScalarType.Float32, ScalarType.BFloat16, CPU));
    }

    [Fact]
    public void Widening_refuses_a_tensor_that_is_not_the_targets_alias()
    {
        using var scope = NewDisposeScope();
        var target = zeros(4, 4);
        var other = zeros(4, 4);
        Assert.Throws<ArgumentException>(() => InPlaceWidening.Widen(target, InPlaceWidening.Alias(other, ScalarType.BFloat16)));
        Assert.Throws<ArgumentException>(() => InPlaceWidening.Widen(target, zeros(4, 4, dtype: ScalarType.BFloat16)));
        Assert.Throws<ArgumentException>(() => InPlaceWidening.Widen(target, InPlaceWidening.Alias(target, ScalarType.BFloat16).view(2, 8)));
    }

    // Bit for bit: NaN is not equal to itself, and −0 equals +0.
    private static bool SameBits(Tensor a, Tensor b) => a.bytes.SequenceEqual(b.bytes);
}
