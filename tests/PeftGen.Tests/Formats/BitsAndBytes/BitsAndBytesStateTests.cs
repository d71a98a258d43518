using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.Json;
using PeftGen.Formats.BitsAndBytes;
using TorchSharp;
using PeftGen.Tests.Quantization;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Formats.BitsAndBytes;

/// <summary>The transformers + bitsandbytes serialized layout of a 4-bit weight: keys, shapes, JSON, strict reading.</summary>
public sealed class BitsAndBytesStateTests
{
    [Fact]
    public void Double_quantized_state_has_bitsandbytes_keys_shapes_and_json()
    {
        using var scope = NewDisposeScope();
        using var q = Nf4Tensor.Quantize(randn(48, 100), new Quant4BitOptions());
        var state = BitsAndBytesState.Write(q, "model.layers.0.mlp.up_proj.weight");
        const string p = "model.layers.0.mlp.up_proj.weight";
        Assert.Equal(
            new[] { p, p + ".absmax", p + ".quant_map", p + ".nested_absmax", p + ".nested_quant_map", p + ".quant_state.bitsandbytes__nf4" }.Order(),
            state.Keys.Order());
        Assert.Equal(new long[] { 2400, 1 }, state[p].shape);
        Assert.Equal(ScalarType.Byte, state[p].dtype);
        Assert.Equal(new long[] { 75 }, state[p + ".absmax"].shape);
        Assert.Equal(ScalarType.Byte, state[p + ".absmax"].dtype);
        Assert.Equal(new long[] { 1 }, state[p + ".nested_absmax"].shape);
        Assert.Equal(new long[] { 16 }, state[p + ".quant_map"].shape);
        Assert.Equal(new long[] { 256 }, state[p + ".nested_quant_map"].shape);

        var json = Encoding.UTF8.GetString(QuantTestData.Bytes(state[p + ".quant_state.bitsandbytes__nf4"]));
        // json.dumps of QuantState.as_dict(packed=True)'s non-tensor items, in that order and spacing.
        var expectedPrefix = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [48, 100], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ";
        Assert.StartsWith(expectedPrefix, json);
        var offset = double.Parse(json[expectedPrefix.Length..^1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal((double)q.Offset, offset);
        foreach (var t in state.Values) t.Dispose();
    }

    [Theory]
    [InlineData(QuantType.Nf4, true)]
    [InlineData(QuantType.Fp4, false)]
    [InlineData(QuantType.Fp4, true)]
    public void Round_trip_restores_identical_codes_and_values(QuantType type, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        using var q = Nf4Tensor.Quantize(randn(33, 65).to(ScalarType.BFloat16), new Quant4BitOptions(type, 128, doubleQuant));
        var state = BitsAndBytesState.Write(q, "w");
        if (!doubleQuant)
        {
            Assert.False(state.ContainsKey("w.nested_absmax"));
            Assert.Contains("\"dtype\": \"bfloat16\", \"shape\": [33, 65]}", Encoding.UTF8.GetString(QuantTestData.Bytes(state["w.quant_state.bitsandbytes__fp4"])));
        }
        using var back = BitsAndBytesState.Read(state, "w");
        Assert.Equal(QuantTestData.Hash(q), QuantTestData.Hash(back));
        Assert.Equal(q.Shape, back.Shape);
        Assert.Equal(ScalarType.BFloat16, back.OriginalDType);
        Assert.Equal(q.Options, back.Options);
        using var a = q.Dequantize();
        using var b = back.Dequantize();
        Assert.Equal(QuantTestData.Floats(a), QuantTestData.Floats(b));
    }

    [Fact]
    public void Reading_is_strict_and_names_the_culprit()
    {
        using var scope = NewDisposeScope();
        using var q = Nf4Tensor.Quantize(randn(16, 64), new Quant4BitOptions());
        Dictionary<string, Tensor> Fresh() => BitsAndBytesState.Write(q, "w");

        var missing = Fresh();
        missing.Remove("w.nested_absmax");
        Assert.Contains("w.nested_absmax", Assert.Throws<FormatException>(() => BitsAndBytesState.Read(missing, "w")).Message);

        var extra = Fresh();
        extra["w.SCB"] = zeros(3);
        Assert.Contains("w.SCB", Assert.Throws<FormatException>(() => BitsAndBytesState.Read(extra, "w")).Message);

        var wrongCode = Fresh();
        wrongCode["w.quant_map"] = tensor(CodeBooks.Fp4);
        Assert.Contains("w.quant_map", Assert.Throws<FormatException>(() => BitsAndBytesState.Read(wrongCode, "w")).Message);

        var wrongLength = Fresh();
        wrongLength["w"] = zeros(new long[] { 10, 1 }, dtype: ScalarType.Byte);
        Assert.Throws<FormatException>(() => BitsAndBytesState.Read(wrongLength, "w"));

        var badJson = Fresh();
        badJson["w.quant_state.bitsandbytes__nf4"] = tensor(Encoding.UTF8.GetBytes("{\"quant_type\": \"fp4\"}"), dtype: ScalarType.Byte);
        Assert.Throws<FormatException>(() => BitsAndBytesState.Read(badJson, "w"));

        var notJson = Fresh();
        notJson["w.quant_state.bitsandbytes__nf4"] = tensor(new byte[] { 0xFF, 0x7B }, dtype: ScalarType.Byte);
        Assert.Throws<FormatException>(() => BitsAndBytesState.Read(notJson, "w"));
    }

    [Fact]
    public void A_nested_map_from_another_torch_build_is_read_and_used_as_stored()
    {
        using var scope = NewDisposeScope();
        const int rows = 64, cols = 96, blockSize = 64;
        var values = QuantTestData.Normal(rows * cols, seed: 151);
        using var q = Nf4Tensor.Quantize(tensor(values, new long[] { rows, cols }), new Quant4BitOptions(BlockSize: blockSize));
        // Another build's map: 43 entries one or two ulp away from ours, still strictly ascending.
        var map = CodeBooks.DynamicMap.ToArray();
        for (var i = 0; i < map.Length; i += 6) map[i] = i % 12 == 0 ? MathF.BitIncrement(MathF.BitIncrement(map[i])) : MathF.BitDecrement(map[i]);
        var state = BitsAndBytesState.Write(q, "w");
        state["w.nested_quant_map"] = tensor(map);

        using var back = BitsAndBytesState.Read(state, "w");

        var absmax = BitsAndBytesReference.DequantizeAbsmax(QuantTestData.Bytes(q.QuantizedAbsmax!), QuantTestData.Floats(q.NestedAbsmax!), q.Offset, map);
        var expected = BitsAndBytesReference.Dequantize(QuantTestData.Bytes(q.Packed), absmax, values.Length, blockSize, fp4: false);
        using var onCpu = back.Dequantize();
        using var withTorchOps = back.DequantizeWithTorchOps();
        QuantTestData.AssertBitEqual(expected, QuantTestData.Floats(onCpu));
        QuantTestData.AssertBitEqual(expected, QuantTestData.Floats(withTorchOps));
        using var ours = q.Dequantize();
        Assert.NotEqual(QuantTestData.Floats(ours), QuantTestData.Floats(onCpu));
        Assert.Equal(map.Select(BitConverter.SingleToInt32Bits), QuantTestData.Floats(back.NestedMap!).Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(q.StorageBytes + 256 * sizeof(float), back.StorageBytes);

        // Written back as it was read; and a copy on another device keeps it.
        var again = BitsAndBytesState.Write(back, "w");
        Assert.Equal(map.Select(BitConverter.SingleToInt32Bits), QuantTestData.Floats(again["w.nested_quant_map"]).Select(BitConverter.SingleToInt32Bits));
        using var moved = back.To(CPU);
        using var movedValues = moved.Dequantize();
        QuantTestData.AssertBitEqual(expected, QuantTestData.Floats(movedValues));
    }

    [Fact]
    public void A_nested_map_must_be_256_finite_ascending_float32_values()
    {
        using var scope = NewDisposeScope();
        using var q = Nf4Tensor.Quantize(randn(16, 64), new Quant4BitOptions());
        var map = CodeBooks.DynamicMap;
        var cases = new (string Label, Tensor Map)[]
        {
            ("255 entries", tensor(map.Take(255).ToArray())),
            ("float64", tensor(map.Select(v => (double)v).ToArray())),
            ("NaN", tensor(map.Select((v, i) => i == 40 ? float.NaN : v).ToArray())),
            ("infinity", tensor(map.Select((v, i) => i == 255 ? float.PositiveInfinity : v).ToArray())),
            ("two entries swapped", tensor(map.Select((v, i) => i == 10 ? map[11] : i == 11 ? map[10] : v).ToArray())),
            ("a repeated entry", tensor(map.Select((v, i) => i == 200 ? map[199] : v).ToArray())),
        };
        foreach (var (label, bad) in cases)
        {
            var state = BitsAndBytesState.Write(q, "w");
            state["w.nested_quant_map"] = bad;
            var error = Assert.Throws<FormatException>(() => BitsAndBytesState.Read(state, "w"));
            Assert.True(error.Message.Contains("w.nested_quant_map", StringComparison.Ordinal), $"{label}: {error.Message}");
        }
    }

    [Fact]
    public void Absmax_values_near_float32_max_give_a_finite_offset_that_round_trips()
    {
        using var scope = NewDisposeScope();
        // Four blocks whose absmax values are float32's maximum (twice), 2^127 and 2^126: their float32 sum overflows;
        // their float64 sum is exact, and so is its quarter.
        float[] targets = [float.MaxValue, float.MaxValue, MathF.Pow(2, 127), MathF.Pow(2, 126)];
        var values = QuantTestData.Normal(4 * 64, seed: 153, scale: 1e36f);
        for (var b = 0; b < 4; b++) values[b * 64 + b] = b % 2 == 0 ? targets[b] : -targets[b];
        Assert.True(float.IsInfinity(targets.Aggregate(0f, (sum, v) => sum + v)), "the float32 sum must overflow for this test to mean anything");
        var mean = (float)(targets.Sum(v => (double)v) / 4);

        using var q = Nf4Tensor.Quantize(tensor(values, new long[] { 4, 64 }), new Quant4BitOptions(BlockSize: 64));

        Assert.Equal(mean, q.Offset);
        var reference = BitsAndBytesReference.Quantize(values, 64, fp4: false, doubleQuant: true, _ => mean, CodeBooks.DynamicMap);
        Assert.Equal(reference.QuantizedAbsmax, QuantTestData.Bytes(q.QuantizedAbsmax!));
        QuantTestData.AssertBitEqual(reference.NestedAbsmax!, QuantTestData.Floats(q.NestedAbsmax!));
        var state = BitsAndBytesState.Write(q, "w");
        Assert.Contains($"\"nested_offset\": {BitsAndBytesState.PythonFloat(mean)}}}", Encoding.UTF8.GetString(QuantTestData.Bytes(state["w.quant_state.bitsandbytes__nf4"])));
        using var back = BitsAndBytesState.Read(state, "w");
        using var restored = back.BlockAbsmax();
        var expectedAbsmax = BitsAndBytesReference.DequantizeAbsmax(reference.QuantizedAbsmax!, reference.NestedAbsmax!, mean, CodeBooks.DynamicMap);
        Assert.All(expectedAbsmax, a => Assert.True(float.IsFinite(a)));
        QuantTestData.AssertBitEqual(expectedAbsmax, QuantTestData.Floats(restored));
        using var weights = back.Dequantize();
        Assert.All(QuantTestData.Floats(weights), v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NaN)]
    public void Double_quantization_refuses_a_weight_it_could_not_write_readably(float bad)
    {
        using var scope = NewDisposeScope();
        var values = QuantTestData.Normal(128, seed: 154);
        values[70] = bad;
        var error = Assert.Throws<ArgumentException>(() => Nf4Tensor.Quantize(tensor(values), new Quant4BitOptions()));
        Assert.Contains("NaN or infinite", error.Message);
        using var plain = Nf4Tensor.Quantize(tensor(values), new Quant4BitOptions(DoubleQuant: false));
        using var back = BitsAndBytesState.Read(BitsAndBytesState.Write(plain, "w"), "w");
        Assert.Equal(QuantTestData.Hash(plain), QuantTestData.Hash(back));
    }

    [Fact]
    public void LoraLinear_round_trips_its_4bit_base_and_bias()
    {
        using var scope = NewDisposeScope();
        using var source = new LoraLinear(64, 24, hasBias: true);
        source.QuantizeBase(new Quant4BitOptions());
        var state = BitsAndBytesState.Write(source, "transformer.h.0.mlp.c_fc.");
        Assert.Contains("transformer.h.0.mlp.c_fc.bias", state.Keys);

        using var target = new LoraLinear(64, 24, hasBias: true);
        target.QuantizeBase(new Quant4BitOptions());
        BitsAndBytesState.Load(target, state, "transformer.h.0.mlp.c_fc.");
        Assert.Equal(QuantTestData.Hash(source.QuantizedWeight!), QuantTestData.Hash(target.QuantizedWeight!));
        var x = randn(3, 64);
        Assert.Equal(QuantTestData.Floats(source.forward(x)), QuantTestData.Floats(target.forward(x)));

        using var wrongShape = new LoraLinear(24, 64, hasBias: true);
        Assert.Throws<ArgumentException>(() => BitsAndBytesState.Load(wrongShape, state, "transformer.h.0.mlp.c_fc."));
        Assert.False(wrongShape.IsQuantized);
    }

    [Theory]
    [InlineData(0.0123f)]
    [InlineData(1f)]
    [InlineData(2.5e-6f)]
    [InlineData(-0.5f)]
    [InlineData(123456.78f)]
    [InlineData(3e16f)]
    public void Offsets_are_written_as_python_repr_of_the_double(float value)
    {
        var text = BitsAndBytesState.PythonFloat(value);
        Assert.Equal((double)value, double.Parse(text, System.Globalization.CultureInfo.InvariantCulture));
        var expected = value switch
        {
            1f => "1.0",
            -0.5f => "-0.5",
            2.5e-6f => "2.499999936844688e-06",
            123456.78f => "123456.78125",
            3e16f => "3.000000081769267e+16",
            0.0123f => "0.012299999594688416",
            _ => null,
        };
        if (expected is not null) Assert.Equal(expected, text);
        Assert.DoesNotContain("E", text);
    }
}
