using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Quantization;

/// <summary>LoraLinear with a 4-bit base: forward and backward numerics, training, merging, loading.</summary>
public sealed class QLoraLinearTests(ITestOutputHelper output)
{
    [Fact]
    public void QuantizeBase_frees_the_float_weight_and_forward_uses_the_dequantized_base()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var layer = new LoraLinear(96, 40, hasBias: true);
        layer.AddAdapter("default", new LoraConfig(4, 8, 0, false));
        using (no_grad()) nn.init.normal_(layer.LoraB("default"));
        layer.QuantizeBase(new Quant4BitOptions());

        Assert.True(layer.IsQuantized);
        Assert.Equal(new Quant4BitOptions(), layer.Quantization);
        Assert.Equal(ScalarType.Float32, layer.ComputeScalarType);
        Assert.Throws<InvalidOperationException>(() => layer.Weight);
        var names = layer.state_dict().Keys.ToList();
        Assert.DoesNotContain("weight", names);
        Assert.Contains("bias", names);
        Assert.Contains("lora_A.default.weight", names);
        Assert.DoesNotContain(layer.parameters(), p => p.shape.SequenceEqual(new long[] { 40, 96 }));

        var x = randn(3, 5, 96, dtype: ScalarType.Float64).to(ScalarType.Float32);
        var y = layer.forward(x);

        // float64 reference on the dequantized weight
        var w = layer.DequantizedWeight(ScalarType.Float64);
        var config = layer.AdapterConfig("default");
        var a = layer.LoraA("default").to(ScalarType.Float64);
        var b = layer.LoraB("default").to(ScalarType.Float64);
        var x64 = x.to(ScalarType.Float64);
        var expected = x64.matmul(w.t()).add(layer.Bias!.to(ScalarType.Float64)).add(x64.matmul(a.t()).matmul(b.t()).mul(config.Scale));
        var relative = y.to(ScalarType.Float64).sub(expected).norm().item<double>() / expected.norm().item<double>();
        Assert.True(relative < 1e-5, $"relative error {relative}");
    }

    [Fact]
    public void Gradients_flow_to_the_input_and_adapters_but_not_the_base()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var layer = new LoraLinear(64, 48, hasBias: false);
        layer.AddAdapter("default", new LoraConfig(4, 8, 0, false));
        using (no_grad()) nn.init.normal_(layer.LoraB("default"));
        layer.QuantizeBase(new Quant4BitOptions(QuantType.Nf4, 64));

        var x = randn(6, 64).requires_grad_(true);
        var y = layer.forward(x);
        var upstream = randn(6, 48);
        y.backward(new List<Tensor> { upstream });

        // Reference: the same computation with the dequantized weight as a constant float64 tensor.
        var w = layer.DequantizedWeight(ScalarType.Float64);
        var a = layer.LoraA("default").detach().to(ScalarType.Float64).requires_grad_(true);
        var b = layer.LoraB("default").detach().to(ScalarType.Float64).requires_grad_(true);
        var x64 = x.detach().to(ScalarType.Float64).requires_grad_(true);
        var y64 = x64.matmul(w.t()).add(x64.matmul(a.t()).matmul(b.t()).mul(layer.AdapterConfig("default").Scale));
        y64.backward(new List<Tensor> { upstream.to(ScalarType.Float64) });

        AssertClose(x64.grad!, x.grad!, "input grad");
        AssertClose(a.grad!, layer.LoraA("default").grad!, "lora_A grad");
        AssertClose(b.grad!, layer.LoraB("default").grad!, "lora_B grad");
        Assert.All(layer.parameters(), p => Assert.True(p.shape.Length != 2 || p.shape[0] != 48 || p.shape[1] != 64));
    }

    [Fact]
    public void Base_cannot_be_made_trainable_and_merge_refuses_without_requantize()
    {
        using var layer = new LoraLinear(64, 32, hasBias: true);
        layer.AddAdapter("default", new LoraConfig(4, 8, 0, false));
        layer.QuantizeBase(new Quant4BitOptions());
        var trainable = Assert.Throws<InvalidOperationException>(() => layer.SetBaseTrainable(true));
        Assert.Contains("4 bits", trainable.Message);
        layer.SetBaseTrainable(false);

        var merge = Assert.Throws<InvalidOperationException>(() => layer.Merge());
        Assert.Contains("requantize: true", merge.Message);
        Assert.Null(layer.MergedAdapter);
        Assert.Throws<InvalidOperationException>(() => layer.QuantizeBase(new Quant4BitOptions()));
    }

    [Fact]
    public void Requantizing_merge_changes_outputs_by_the_reported_rounding()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var layer = new LoraLinear(128, 64, hasBias: false);
        layer.AddAdapter("default", new LoraConfig(8, 16, 0, false));
        using (no_grad()) nn.init.normal_(layer.LoraB("default"), std: 0.02);
        layer.QuantizeBase(new Quant4BitOptions());
        var x = randn(4, 128);
        var before = layer.forward(x);
        var exactMerged = layer.DequantizedWeight().add(layer.DeltaWeight("default"));

        var report = layer.Merge("default", requantize: true);
        Assert.NotNull(report);
        Assert.Equal("default", layer.MergedAdapter);
        var merged = layer.DequantizedWeight();
        var maxError = merged.sub(exactMerged).abs().max().item<float>();
        Assert.Equal(report!.MaxAbsError, maxError, 6);
        Assert.True(report.MaxAbsError > 0, "4-bit re-quantization rounds");
        var after = layer.forward(x);
        var change = after.sub(before).abs().max().item<float>();
        output.WriteLine($"requantizing merge: weight error max {report.MaxAbsError:E3}, mean {report.MeanAbsError:E3}; output change max {change:E3}");
        Assert.True(change > 0 && change < 128 * report.MaxAbsError * x.abs().max().item<float>());

        Assert.Throws<InvalidOperationException>(() => layer.Unmerge());
        var unmergeReport = layer.Unmerge(requantize: true);
        Assert.NotNull(unmergeReport);
        Assert.Null(layer.MergedAdapter);
    }

    [Fact]
    public void LoadBase_quantizes_incoming_weights()
    {
        using var scope = NewDisposeScope();
        using var layer = new LoraLinear(64, 32, hasBias: true);
        layer.QuantizeBase(new Quant4BitOptions(QuantType.Fp4, 32, DoubleQuant: false));
        var weight = randn(32, 64);
        var bias = randn(32);
        layer.LoadBase(weight, bias);
        using var expected = Nf4Tensor.Quantize(weight, layer.Quantization!);
        Assert.Equal(QuantTestData.Hash(expected), QuantTestData.Hash(layer.QuantizedWeight!));
        Assert.Equal(QuantTestData.Floats(bias), QuantTestData.Floats(layer.Bias!));
        Assert.Throws<ArgumentException>(() => layer.LoadBase(randn(64, 32)));
    }

    [Theory]
    [InlineData(QuantType.Nf4, 64, true, 40, 96)]
    [InlineData(QuantType.Nf4, 64, false, 33, 65)]     // odd count, partial last block
    [InlineData(QuantType.Fp4, 32, true, 257, 64)]     // several nested blocks
    [InlineData(QuantType.Fp4, 128, false, 7, 9)]
    public void A_projection_built_in_4_bits_holds_what_quantizing_zeros_gives_and_no_float_weight(QuantType type, int blockSize, bool doubleQuant, int outFeatures, int inFeatures)
    {
        using var scope = NewDisposeScope();
        var options = new Quant4BitOptions(type, blockSize, doubleQuant);
        using var layer = new LoraLinear(inFeatures, outFeatures, hasBias: true, options, dtype: ScalarType.BFloat16);
        using var zeroWeight = Nf4Tensor.Quantize(zeros(outFeatures, inFeatures, ScalarType.BFloat16), options);

        Assert.True(layer.IsQuantized);
        Assert.Equal(QuantTestData.Hash(zeroWeight), QuantTestData.Hash(layer.QuantizedWeight!));
        Assert.Equal(zeroWeight.StorageBytes, layer.QuantizedWeight!.StorageBytes);
        Assert.Equal(ScalarType.BFloat16, layer.QuantizedWeight.OriginalDType);
        Assert.Equal(new[] { "bias" }, layer.named_parameters().Select(p => p.name));
        Assert.Equal(ScalarType.BFloat16, layer.Bias!.dtype);
        Assert.Equal(0.0, layer.DequantizedWeight(ScalarType.Float32).abs().sum().item<float>());

        var weight = randn(outFeatures, inFeatures);
        layer.LoadBase(weight);
        using var expected = Nf4Tensor.Quantize(weight, options);
        Assert.Equal(QuantTestData.Hash(expected), QuantTestData.Hash(layer.QuantizedWeight!));
    }

    [Fact]
    public void Quantized_layers_take_at_most_0_135_of_their_float32_bytes()
    {
        // The tiny model's projections (d = 256, 4 blocks): attention 256→768 and 256→256, MLP 256→1024 and 1024→256.
        var shapes = new (int In, int Out)[] { (256, 768), (256, 256), (256, 1024), (1024, 256) };
        long quantizedBytes = 0, floatBytes = 0;
        for (var block = 0; block < 4; block++)
            foreach (var (inF, outF) in shapes)
            {
                using var layer = new LoraLinear(inF, outF, hasBias: false);
                layer.QuantizeBase(new Quant4BitOptions());
                quantizedBytes += layer.QuantizedWeight!.StorageBytes;
                floatBytes += 4L * inF * outF;
            }
        var ratio = (double)quantizedBytes / floatBytes;
        output.WriteLine($"quantized base: {quantizedBytes:N0} bytes vs float32 {floatBytes:N0} bytes: ratio {ratio:F4} (shared code books: 16 + 256 floats per device)");
        Assert.True(ratio <= 0.135, $"ratio {ratio}");
    }

    [Fact]
    public void QLoRA_training_lowers_the_loss_and_leaves_base_codes_bit_identical()
    {
        manual_seed(4);
        var layers = new[] { new LoraLinear(32, 64, true), new LoraLinear(64, 64, true), new LoraLinear(64, 8, true) };
        var teacher = new[] { randn(64, 32) * 0.2, randn(64, 64) * 0.1, randn(8, 64) * 0.1 };
        foreach (var layer in layers)
        {
            layer.AddAdapter("default", new LoraConfig(8, 16, 0, false));
            layer.QuantizeBase(new Quant4BitOptions());
        }
        var hashes = layers.Select(l => QuantTestData.Hash(l.QuantizedWeight!)).ToList();
        var biasBefore = layers.Select(l => QuantTestData.Floats(l.Bias!)).ToList();
        var trainable = layers.SelectMany(l => new[] { l.LoraA("default"), l.LoraB("default") }).ToList();
        Assert.Equal(trainable.Count, layers.SelectMany(l => l.parameters()).Count(p => p.requires_grad));
        using var optimizer = optim.AdamW(trainable, lr: 0.01);
        var inputs = randn(64, 32);
        Tensor Forward(Tensor x) => layers[2].forward(nn.functional.gelu(layers[1].forward(nn.functional.gelu(layers[0].forward(x)))));
        var target = nn.functional.gelu(inputs.matmul(teacher[0].t())).matmul(teacher[1].t());
        target = nn.functional.gelu(target).matmul(teacher[2].t());

        var losses = new List<float>();
        for (var step = 0; step < 40; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(Forward(inputs.requires_grad_(false)), target);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }
        output.WriteLine($"QLoRA loss: {losses[0]:F4} -> {losses[^1]:F4}");
        Assert.True(losses[^1] < 0.7 * losses[0], $"loss {losses[0]} -> {losses[^1]}");
        Assert.Equal(hashes, layers.Select(l => QuantTestData.Hash(l.QuantizedWeight!)).ToList());
        for (var i = 0; i < layers.Length; i++) Assert.Equal(biasBefore[i], QuantTestData.Floats(layers[i].Bias!));
        foreach (var layer in layers) layer.Dispose();
    }

    private static void AssertClose(Tensor expected64, Tensor actual, string what)
    {
        var e = expected64.to(ScalarType.Float64);
        var relative = actual.to(ScalarType.Float64).sub(e).norm().item<double>() / e.norm().item<double>();
        Assert.True(relative < 1e-5, $"{what}: relative error {relative}");
    }
}
