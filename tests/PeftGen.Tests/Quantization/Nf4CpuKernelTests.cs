using System;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Quantization;

/// <summary>
/// The CPU dequantization kernel against the torch-op path (bit for bit) and the independent scalar reference, for
/// every instruction set this machine runs; <see cref="Nf4Tensor.DequantizeInto"/>'s checks.
/// </summary>
public sealed class Nf4CpuKernelTests(ITestOutputHelper output)
{
    private static readonly Nf4CpuKernel.Isa[] SupportedIsas =
        Enum.GetValues<Nf4CpuKernel.Isa>().Where(Nf4CpuKernel.IsSupported).ToArray();

    [Theory]
    [InlineData(QuantType.Nf4, 64, true, 96, 130)]     // 195 blocks, a partial nested block
    [InlineData(QuantType.Nf4, 64, false, 33, 65)]     // odd count, partial last block
    [InlineData(QuantType.Fp4, 64, true, 33, 65)]
    [InlineData(QuantType.Fp4, 128, false, 7, 9)]      // odd count smaller than one block
    [InlineData(QuantType.Nf4, 32, true, 3, 5)]        // fewer values than one vector
    [InlineData(QuantType.Nf4, 32, true, 256, 257)]    // several nested blocks
    [InlineData(QuantType.Fp4, 128, true, 40, 61)]     // last block: 8 values after full vectors
    [InlineData(QuantType.Nf4, 256, false, 50, 51)]
    [InlineData(QuantType.Fp4, 256, true, 64, 64)]     // whole blocks only
    [InlineData(QuantType.Nf4, 1024, true, 9, 1000)]
    [InlineData(QuantType.Fp4, 4096, false, 3, 4097)]  // last block holds 3 values
    public void Kernel_matches_the_torch_ops_and_the_reference_bit_for_bit(QuantType type, int blockSize, bool doubleQuant, int rows, int cols)
    {
        var values = QuantTestData.Normal(rows * cols, seed: rows * 17 + cols, scale: 0.02f);
        using var weight = tensor(values, new long[] { rows, cols });
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, blockSize, doubleQuant));
        using var viaTorch = q.DequantizeWithTorchOps();
        Assert.Equal(new long[] { rows, cols }, viaTorch.shape);

        using (var blockAbsmax = q.BlockAbsmax())
        {
            var reference = BitsAndBytesReference.Dequantize(QuantTestData.Bytes(q.Packed), QuantTestData.Floats(blockAbsmax),
                values.Length, blockSize, type == QuantType.Fp4);
            AssertBitEqual(reference, QuantTestData.Floats(viaTorch));
        }
        foreach (var isa in SupportedIsas)
        {
            using var result = full(rows, cols, float.NaN);
            q.DequantizeOnCpu(result, isa, workers: 2);
            AssertBitEqual(QuantTestData.Floats(viaTorch), QuantTestData.Floats(result), isa.ToString());
        }
        output.WriteLine($"instruction sets checked: {string.Join(", ", SupportedIsas)}");
    }

    [Theory]
    [InlineData(QuantType.Nf4, true)]
    [InlineData(QuantType.Fp4, false)]
    public void Any_split_over_workers_gives_the_same_values(QuantType type, bool doubleQuant)
    {
        // 1,031 × 1,021 values, blocks of 64: 16,448 blocks, the last one partial; up to 4 workers of at least 2^18 values.
        const int rows = 1031, cols = 1021;
        using var weight = tensor(QuantTestData.Normal(rows * cols, seed: 11), new long[] { rows, cols });
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, 64, doubleQuant));
        using var viaTorch = q.DequantizeWithTorchOps();
        var expected = QuantTestData.Floats(viaTorch);
        foreach (var isa in SupportedIsas)
        foreach (var workers in new[] { 1, 2, 3, 4, 64 })
        {
            using var result = full(rows, cols, float.NaN);
            q.DequantizeOnCpu(result, isa, workers);
            AssertBitEqual(expected, QuantTestData.Floats(result), $"{isa}, {workers} workers");
        }
    }

    [Fact]
    public void Zero_infinite_and_negative_zero_products_match_the_torch_ops()
    {
        // Block 0: normal values; block 1: zeros (absmax 0: -1 × 0 gives -0); block 2 holds an infinity (codes × inf
        // give ±inf, and 0 × inf gives NaN); block 3 partial.
        var values = QuantTestData.Normal(3 * 64 + 21, seed: 3);
        Array.Clear(values, 64, 64);
        values[130] = float.PositiveInfinity;
        foreach (var type in new[] { QuantType.Nf4, QuantType.Fp4 })
        foreach (var doubleQuant in new[] { false, true })
        {
            // Double quantization refuses an infinite weight (its offset would be infinite): only plain absmax carries it.
            using var weight = tensor(doubleQuant ? values.Select(v => float.IsFinite(v) ? v : 0f).ToArray() : values);
            using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, 64, doubleQuant));
            using var viaTorch = q.DequantizeWithTorchOps();
            var expected = QuantTestData.Floats(viaTorch);
            foreach (var isa in SupportedIsas)
            {
                using var result = full(values.Length, float.NaN);
                q.DequantizeOnCpu(result, isa, workers: 1);
                AssertBitEqual(expected, QuantTestData.Floats(result), $"{type}, double quant {doubleQuant}, {isa}");
            }
        }
    }

    [Theory]
    [InlineData(QuantType.Nf4, true)]
    [InlineData(QuantType.Fp4, false)]
    public void Dequantize_and_DequantizeInto_use_the_kernel_and_cast_afterwards(QuantType type, bool doubleQuant)
    {
        using var weight = randn(70, 90);
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions(type, 128, doubleQuant));
        using var viaTorch = q.DequantizeWithTorchOps();
        var expected = QuantTestData.Floats(viaTorch);

        using var fresh = q.Dequantize();
        AssertBitEqual(expected, QuantTestData.Floats(fresh));
        using var buffer = full(70, 90, float.NaN);
        q.DequantizeInto(buffer);
        AssertBitEqual(expected, QuantTestData.Floats(buffer));
        // A non-contiguous output (a transposed buffer) takes the torch-op path and a copy.
        using var transposedStorage = full(90, 70, float.NaN);
        using var transposed = transposedStorage.t();
        Assert.False(transposed.is_contiguous());
        q.DequantizeInto(transposed);
        AssertBitEqual(expected, QuantTestData.Floats(transposed));

        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float64 })
        {
            using var cast = q.Dequantize(dtype);
            using var expectedCast = viaTorch.to(dtype);
            Assert.Equal(dtype, cast.dtype);
            Assert.True(cast.eq(expectedCast).all().item<bool>(), $"{dtype}");
        }
    }

    [Theory]
    [InlineData(QuantType.Nf4, 64, 33, 65)]      // odd count, partial last block
    [InlineData(QuantType.Fp4, 64, 33, 65)]
    [InlineData(QuantType.Nf4, 32, 1100, 1001)]  // several slices, odd count
    [InlineData(QuantType.Fp4, 4096, 3, 4097)]
    [InlineData(QuantType.Nf4, 128, 7, 9)]       // fewer values than one block
    public void The_quantization_kernel_codes_as_the_torch_ops_do_bit_for_bit(QuantType type, int blockSize, int rows, int cols)
    {
        var values = QuantTestData.Normal(rows * cols, seed: rows + cols, scale: 0.03f);
        // Edge values: a NaN block, an infinite value, an all-zero block, a block of -0.0, values on the thresholds.
        for (var i = 0; i < Math.Min(blockSize, values.Length); i++) values[i] = i == 3 ? float.NaN : values[i];
        if (values.Length > 2 * blockSize)
        {
            values[blockSize + 5] = float.PositiveInfinity;
            values[blockSize + 6] = float.NegativeInfinity;
        }
        if (values.Length > 4 * blockSize)
        {
            Array.Clear(values, 2 * blockSize, blockSize);
            Array.Fill(values, -0f, 3 * blockSize, blockSize);
        }
        var thresholds = type == QuantType.Nf4 ? CodeBooks.Nf4Thresholds : CodeBooks.Fp4Thresholds;
        for (var i = 0; i < thresholds.Length && 4 * blockSize + i < values.Length; i++) values[values.Length - 1 - i] = thresholds[i] * 0.5f;
        using var weight = tensor(values, new long[] { rows, cols });
        var options = new Quant4BitOptions(type, blockSize, DoubleQuant: false);

        using var kernel = Nf4Tensor.Quantize(weight, options, useCpuKernel: true);
        using var torchOps = Nf4Tensor.Quantize(weight, options, useCpuKernel: false);
        Assert.Equal(QuantTestData.Bytes(torchOps.Packed), QuantTestData.Bytes(kernel.Packed));
        AssertBitEqual(QuantTestData.Floats(torchOps.Absmax!), QuantTestData.Floats(kernel.Absmax!), "absmax");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void A_strided_or_16_bit_weight_quantizes_as_its_float32_contiguous_copy(ScalarType dtype)
    {
        // A Conv1D weight arrives transposed (a strided view); a 16-bit one is converted slice by slice.
        using var stored = randn(1030, 2050).to(dtype);
        using var transposed = stored.t();
        Assert.False(transposed.is_contiguous());
        var options = new Quant4BitOptions(QuantType.Nf4, 64, DoubleQuant: true);

        using var quantized = Nf4Tensor.Quantize(transposed, options);
        using var copy = transposed.to(ScalarType.Float32).contiguous();
        using var expected = Nf4Tensor.Quantize(copy, options);
        Assert.Equal(QuantTestData.Hash(expected), QuantTestData.Hash(quantized));
        Assert.Equal(dtype, quantized.OriginalDType);
        Assert.Equal(new long[] { 2050, 1030 }, quantized.Shape);
    }

    [Fact]
    public void DequantizeInto_rejects_outputs_that_do_not_fit()
    {
        using var weight = randn(16, 48);
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions());

        Assert.Throws<ArgumentNullException>(() => q.DequantizeInto(null!));
        using var transposedShape = empty(48, 16);
        Assert.Contains("shape [48, 16]", Assert.Throws<ArgumentException>(() => q.DequantizeInto(transposedShape)).Message);
        using var flat = empty(16 * 48);
        Assert.Throws<ArgumentException>(() => q.DequantizeInto(flat));
        foreach (var dtype in new[] { ScalarType.Float64, ScalarType.BFloat16, ScalarType.Float16, ScalarType.Int32 })
        {
            using var wrongType = empty(new long[] { 16, 48 }, dtype);
            Assert.Contains("float32", Assert.Throws<ArgumentException>(() => q.DequantizeInto(wrongType)).Message);
        }
        using var onMeta = empty(new long[] { 16, 48 }, ScalarType.Float32, META);
        Assert.Contains("meta", Assert.Throws<ArgumentException>(() => q.DequantizeInto(onMeta)).Message);
        using var tracked = zeros(new long[] { 16, 48 }, requires_grad: true);
        Assert.Contains("requires grad", Assert.Throws<ArgumentException>(() => q.DequantizeInto(tracked)).Message);
        Assert.Equal(0f, tracked.abs().sum().item<float>());
    }

    private static void AssertBitEqual(float[] expected, float[] actual, string context = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            if (!QuantTestData.BitEqual(expected[i], actual[i]))
                Assert.Fail($"{context} [{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
