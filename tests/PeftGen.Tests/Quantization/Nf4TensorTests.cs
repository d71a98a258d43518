using System;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Quantization;

/// <summary>The 4-bit format against the independent scalar reference: packed bytes, absmax state, dequantized values.</summary>
public sealed class Nf4TensorTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(QuantType.Nf4, 64, true, 96, 130)]     // 12,480 values: 195 blocks, a partial nested block
    [InlineData(QuantType.Nf4, 64, false, 33, 65)]     // odd count, partial last block
    [InlineData(QuantType.Fp4, 64, true, 96, 130)]
    [InlineData(QuantType.Fp4, 128, false, 7, 9)]      // odd count smaller than one block
    [InlineData(QuantType.Nf4, 32, true, 256, 257)]    // 2,056 blocks: several nested blocks
    [InlineData(QuantType.Nf4, 4096, true, 40, 200)]
    [InlineData(QuantType.Nf4, 32, true, 3000, 1001)]  // 3 slices of values; 93,844 absmax values, coded in 6 runs
    [InlineData(QuantType.Fp4, 64, false, 1100, 999)]  // 2 slices, odd count
    public void Packed_bytes_and_state_match_the_reference(QuantType type, int blockSize, bool doubleQuant, int rows, int cols)
    {
        var values = QuantTestData.Normal(rows * cols, seed: rows * 31 + cols, scale: 0.05f);
        using var weight = tensor(values, new long[] { rows, cols });
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, blockSize, doubleQuant));

        var reference = BitsAndBytesReference.Quantize(values, blockSize, type == QuantType.Fp4, doubleQuant,
            absmax => MeanChecked(absmax, q.Offset), CodeBooks.DynamicMap);

        Assert.Equal(reference.Packed, QuantTestData.Bytes(q.Packed));
        if (doubleQuant)
        {
            Assert.Null(q.Absmax);
            Assert.Equal(reference.QuantizedAbsmax, QuantTestData.Bytes(q.QuantizedAbsmax!));
            QuantTestData.AssertBitEqual(reference.NestedAbsmax!, QuantTestData.Floats(q.NestedAbsmax!));
        }
        else
        {
            QuantTestData.AssertBitEqual(reference.Absmax, QuantTestData.Floats(q.Absmax!));
        }
    }

    [Theory]
    [InlineData(QuantType.Nf4, true)]
    [InlineData(QuantType.Nf4, false)]
    [InlineData(QuantType.Fp4, true)]
    [InlineData(QuantType.Fp4, false)]
    public void Every_dequantized_value_is_code_times_block_absmax(QuantType type, bool doubleQuant)
    {
        const int rows = 64, cols = 129, blockSize = 64;
        var values = QuantTestData.Normal(rows * cols, seed: 7);
        using var weight = tensor(values, new long[] { rows, cols });
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, blockSize, doubleQuant));
        using var dequantized = q.Dequantize();
        Assert.Equal(new long[] { rows, cols }, dequantized.shape);

        var absmax = doubleQuant
            ? BitsAndBytesReference.DequantizeAbsmax(QuantTestData.Bytes(q.QuantizedAbsmax!), QuantTestData.Floats(q.NestedAbsmax!), q.Offset, CodeBooks.DynamicMap)
            : QuantTestData.Floats(q.Absmax!);
        using (var blockAbsmax = q.BlockAbsmax()) QuantTestData.AssertBitEqual(absmax, QuantTestData.Floats(blockAbsmax));
        var expected = BitsAndBytesReference.Dequantize(QuantTestData.Bytes(q.Packed), absmax, values.Length, blockSize, type == QuantType.Fp4);
        QuantTestData.AssertBitEqual(expected, QuantTestData.Floats(dequantized));

        using var bf16 = q.Dequantize(ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, bf16.dtype);
        using var expectedBf16 = tensor(expected).to(ScalarType.BFloat16).to(ScalarType.Float32);
        QuantTestData.AssertBitEqual(QuantTestData.Floats(expectedBf16), QuantTestData.Floats(bf16));
    }

    [Fact]
    public void Values_on_a_threshold_take_the_lower_code_and_zero_blocks_follow_the_kernel()
    {
        // One block holds 1.0 (absmax 1, so scaling is exact), every NF4 kernel threshold exactly, and each one ulp
        // above it; the next block is all zeros (absmax 0: the kernel multiplies by 1/0 and gets NaN).
        var thresholds = BitsAndBytesReference.Nf4KernelThresholds;
        var block = new float[64];
        block[0] = 1f;
        thresholds.CopyTo(block, 1);
        for (var i = 0; i < 15; i++) block[16 + i] = MathF.BitIncrement(thresholds[i]);
        var values = block.Concat(new float[64]).ToArray();

        foreach (var type in new[] { QuantType.Nf4, QuantType.Fp4 })
        {
            using var weight = tensor(values, new long[] { 2, 64 });
            using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, 64, DoubleQuant: false));
            var reference = BitsAndBytesReference.Quantize(values, 64, type == QuantType.Fp4, false, _ => 0f, CodeBooks.DynamicMap);
            Assert.Equal(reference.Packed, QuantTestData.Bytes(q.Packed));
            using var dq = q.Dequantize();
            Assert.All(QuantTestData.Floats(dq).Skip(64), v => Assert.Equal(0f, v));
        }

        // On a threshold: the lower code; one ulp above: the upper one.
        for (var i = 0; i < 15; i++)
        {
            Assert.Equal(i, BitsAndBytesReference.EncodeNf4(block[1 + i]));
            Assert.Equal(i + 1, BitsAndBytesReference.EncodeNf4(block[16 + i]));
            Assert.True(QuantTestData.BitEqual(thresholds[i], CodeBooks.Nf4Thresholds[i]), $"threshold {i}");
            // The kernel's thresholds are the code book's midpoints up to one ulp.
            var midpoint = (float)(((double)CodeBooks.Nf4[i] + CodeBooks.Nf4[i + 1]) / 2.0);
            Assert.True(Math.Abs(BitConverter.SingleToInt32Bits(midpoint) - BitConverter.SingleToInt32Bits(thresholds[i])) <= 1, $"midpoint {i}");
        }
    }

    [Fact]
    public void Nf4_thresholds_round_the_kernel_decimals_straight_to_float32()
    {
        var decimals = BitsAndBytesReference.Nf4KernelThresholdDecimals;
        var direct = decimals.Select(d => float.Parse(d, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var viaDouble = decimals.Select(d => (float)double.Parse(d, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(direct.Select(BitConverter.SingleToInt32Bits), CodeBooks.Nf4Thresholds.Select(BitConverter.SingleToInt32Bits));
        // For these four the nearest double is exactly halfway between two float32 values (a tie, rounded to even);
        // the printed decimal lies 3e-18 to 5e-17 to one side of it, and rounded directly it goes to that side.
        var routeMatters = Enumerable.Range(0, 15).Where(i => !QuantTestData.BitEqual(direct[i], viaDouble[i])).ToArray();
        Assert.Equal(new[] { 0, 8, 12, 14 }, routeMatters);
        Assert.All(routeMatters, i => Assert.Equal(1, Math.Abs(BitConverter.SingleToInt32Bits(direct[i]) - BitConverter.SingleToInt32Bits(viaDouble[i]))));
    }

    [Theory]
    // x is the larger of the two roundings of threshold i; the kernel's (direct) threshold decides its code, and the
    // double route would give the other one: 0 → 1 (not 0), 8 → 8 (not 9), 12 → 13 (not 12), 14 → 15 (not 14).
    [InlineData(0, 1)]
    [InlineData(8, 8)]
    [InlineData(12, 13)]
    [InlineData(14, 15)]
    public void Values_between_the_two_roundings_of_a_threshold_get_the_kernels_code(int threshold, int expected)
    {
        var text = BitsAndBytesReference.Nf4KernelThresholdDecimals[threshold];
        var x = Math.Max(float.Parse(text, System.Globalization.CultureInfo.InvariantCulture),
            (float)double.Parse(text, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(expected, BitsAndBytesReference.EncodeNf4(x));
        // One block with absmax exactly 1 (so x is not rescaled): byte 0 holds 1.0 (code 15) and x.
        using var weight = tensor(new[] { 1f, x });
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(QuantType.Nf4, 64, DoubleQuant: false));
        Assert.Equal((byte)(15 << 4 | expected), QuantTestData.Bytes(q.Packed)[0]);
    }

    [Fact]
    public void Code_books_are_bitsandbytes_values()
    {
        Assert.Equal(BitsAndBytesReference.Nf4Code, CodeBooks.Nf4);
        for (var c = 0; c < 16; c++) Assert.True(QuantTestData.BitEqual(BitsAndBytesReference.Fp4Value(c), CodeBooks.Fp4[c]), $"fp4 code {c}");
        Assert.Equal([0f, 0.0052083335f, 0.6666667f, 1f, 0.33333334f, 0.5f, 0.16666667f, 0.25f], CodeBooks.Fp4.Take(8));

        var map = CodeBooks.DynamicMap;
        var reference = BitsAndBytesReference.DynamicMap();
        Assert.Equal(256, map.Length);
        Assert.True(map.Zip(map.Skip(1)).All(p => p.First <= p.Second), "sorted");
        Assert.Equal(1f, map[255]);
        Assert.Contains(0f, map);
        for (var i = 0; i < 256; i++)
        {
            var ulps = Math.Abs(BitConverter.SingleToInt32Bits(map[i]) - BitConverter.SingleToInt32Bits(reference[i]));
            Assert.True(ulps <= 2, $"dynamic map [{i}]: {map[i]:R} vs reference {reference[i]:R}");
        }
    }

    [Fact]
    public void Mean_absolute_error_on_normal_weights_is_what_4_bits_give()
    {
        var values = QuantTestData.Normal(1024 * 1024, seed: 42);
        using var weight = tensor(values, new long[] { 1024, 1024 });
        var maes = new System.Collections.Generic.Dictionary<QuantType, double>();
        foreach (var type in new[] { QuantType.Nf4, QuantType.Fp4 })
        {
            using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type));
            using var dq = q.Dequantize();
            using var error = dq.sub(weight).abs().mean();
            maes[type] = error.item<float>();
            var bitsPerWeight = 8.0 * q.StorageBytes / values.Length;
            output.WriteLine($"{type}: MAE {maes[type]:F5} on N(0,1) weights, blocks of 64 with double quant, {bitsPerWeight:F3} bits/weight");
            Assert.InRange(bitsPerWeight, 4.12, 4.135);
        }
        // NF4 is information-theoretically fitted to normal weights: it must beat FP4 and sit near its known ~0.07–0.08.
        Assert.InRange(maes[QuantType.Nf4], 0.05, 0.09);
        Assert.True(maes[QuantType.Nf4] < maes[QuantType.Fp4], $"NF4 {maes[QuantType.Nf4]} should beat FP4 {maes[QuantType.Fp4]}");
    }

    [Fact]
    public void Dequantize_stays_on_the_device_and_To_copies_exactly()
    {
        using var weight = randn(32, 64);
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions());
        using var moved = q.To(CPU);
        Assert.Equal(QuantTestData.Hash(q), QuantTestData.Hash(moved));
        using var dq = q.Dequantize();
        Assert.Equal(weight.device.type, dq.device.type);
        Assert.Throws<ArgumentException>(() => Nf4Tensor.Quantize(tensor(new[] { 1, 2 }), new Quant4BitOptions()));
        Assert.Throws<ArgumentOutOfRangeException>(() => Nf4Tensor.Quantize(weight, new Quant4BitOptions(BlockSize: 48)));
    }

    private static float MeanChecked(float[] absmax, float ours)
    {
        // The offset is torch's float32 mean on the device (as bitsandbytes computes it); the summation order is
        // torch's, so the double-precision mean may differ from it by rounding only.
        var mean = absmax.Average(a => (double)a);
        Assert.True(Math.Abs(mean - ours) <= 1e-6 * Math.Abs(mean) + 1e-12, $"offset {ours} vs mean {mean}");
        return ours;
    }
}
