using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Checkpoints;
using PeftGen.Precision;
using PeftGen.Tests.Checkpoints;
using PeftGen.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.BaseWeights;

/// <summary>
/// A projection whose frozen base is stored in bfloat16 or float16, against float64 references computed from the
/// stored (already rounded) values. Outside a compute scope the product runs in float32 on those exact values, so it is
/// held to float32's 1e-5; under a scope of the base's own dtype the product runs in 16 bits and is held to the dtype's
/// tolerance (bfloat16 keeps 8 significant bits: 2 %; float16 keeps 11: 0.5 %), and checked to be above float32's
/// error, so 16-bit arithmetic really ran.
/// </summary>
public sealed class SixteenBitBaseTests
{
    private static LoraLinear Layer(BaseDType dtype)
    {
        var layer = new LoraLinear(64, 48, hasBias: true, quantization: null, baseDType: dtype);
        layer.AddAdapter("default", new LoraConfig(Rank: 8, Alpha: 16));
        using var _ = no_grad();
        layer.LoraB("default").copy_(randn(48, 8) * 0.1);
        return layer;
    }

    private static (Tensor Output, Tensor GradA, Tensor GradB) Run(LoraLinear layer, Tensor x, ScalarType? compute)
    {
        using var precision = ComputePrecision.Use(compute);
        var output = layer.forward(x);
        output.pow(2).sum().backward();
        var result = (output.detach().to(ScalarType.Float32), layer.LoraA("default").grad!.clone(), layer.LoraB("default").grad!.clone());
        layer.LoraA("default").grad!.zero_();
        layer.LoraB("default").grad!.zero_();
        return result;
    }

    [Theory]
    [InlineData(BaseDType.BFloat16, 0.02)]
    [InlineData(BaseDType.Float16, 0.005)]
    public void A_16_bit_base_matches_float64_in_float32_compute_and_within_its_dtype_tolerance_in_its_own(BaseDType dtype, double tolerance)
    {
        manual_seed(31);
        using var scope = NewDisposeScope();
        using var layer = Layer(dtype);
        layer.eval();
        var stored = dtype.ToScalarType();
        Assert.Equal(stored, layer.Weight.dtype);
        Assert.Equal(stored, layer.Bias!.dtype);
        Assert.Equal(ScalarType.Float32, layer.LoraA("default").dtype);
        var x = randn(4, 10, 64);

        // float64 reference of y = xWᵀ + b + s·(xAᵀ)Bᵀ from the stored values, and of the gradients of Σy².
        var x64 = x.to(float64);
        var a64 = layer.LoraA("default").detach().to(float64).requires_grad_(true);
        var b64 = layer.LoraB("default").detach().to(float64).requires_grad_(true);
        var y64 = x64.matmul(layer.Weight.to(float64).t()) + layer.Bias.to(float64) + x64.matmul(a64.t()).matmul(b64.t()) * 2.0;
        y64.pow(2).sum().backward();

        var wide = Run(layer, x, null);
        var narrow = Run(layer, x, stored);
        Assert.True(Reference.RelativeError(wide.Output, y64) < 1e-5);
        Assert.True(Reference.RelativeError(wide.GradA, a64.grad!) < 1e-5);
        Assert.True(Reference.RelativeError(wide.GradB, b64.grad!) < 1e-5);
        Assert.True(Reference.RelativeError(narrow.Output, y64) < tolerance);
        Assert.True(Reference.RelativeError(narrow.GradA, a64.grad!) < tolerance);
        Assert.True(Reference.RelativeError(narrow.GradB, b64.grad!) < tolerance);
        Assert.True(Reference.RelativeError(narrow.Output, y64) > 1e-4);
        // Gradients reach the float32 adapters in float32; the base takes none.
        Assert.Equal(ScalarType.Float32, narrow.GradA.dtype);
        Assert.Null(layer.Weight.grad);
    }

    [Fact]
    public void The_output_has_the_compute_dtype_and_a_float32_base_under_bfloat16_compute_is_cast_per_call_as_before()
    {
        manual_seed(32);
        using var scope = NewDisposeScope();
        using var bf16 = Layer(BaseDType.BFloat16);
        using var fp32 = Layer(BaseDType.Float32);
        var x = randn(3, 64);
        Assert.Equal(ScalarType.Float32, bf16.forward(x).dtype);
        using (ComputePrecision.Use(ScalarType.BFloat16))
        {
            Assert.Equal(ScalarType.BFloat16, bf16.forward(x).dtype);
            Assert.Equal(ScalarType.BFloat16, fp32.forward(x).dtype);
        }
    }

    [Fact]
    public void A_16_bit_base_takes_half_the_bytes_of_a_float32_one()
    {
        using var fp32 = new LoraLinear(1024, 768, hasBias: false);
        using var bf16 = new LoraLinear(1024, 768, hasBias: false, null, BaseDType.BFloat16);
        using var fp16 = new LoraLinear(1024, 768, hasBias: false, null, BaseDType.Float16);
        Assert.Equal(1024L * 768 * 4, fp32.Base.StorageBytes);
        Assert.Equal(fp32.Base.StorageBytes / 2, bf16.Base.StorageBytes);
        Assert.Equal(fp32.Base.StorageBytes / 2, fp16.Base.StorageBytes);
        Assert.Equal(BaseDType.BFloat16.BytesPerValue() * 1024L * 768, bf16.Base.StorageBytes);
    }

    [Fact]
    public void A_16_bit_base_is_frozen_and_refuses_to_train()
    {
        using var layer = Layer(BaseDType.BFloat16);
        Assert.False(layer.Base.CanTrain);
        Assert.Throws<InvalidOperationException>(() => layer.SetBaseTrainable(true));
        Assert.False(layer.Weight.requires_grad);
        layer.SetBaseTrainable(false);

        using var training = new LoraLinear(8, 8);
        training.SetBaseTrainable(true);
        Assert.Throws<InvalidOperationException>(() => training.ConvertBase(BaseDType.BFloat16));
        Assert.Equal(ScalarType.Float32, training.Weight.dtype);
    }

    [Fact]
    public void Converting_a_float32_base_rounds_it_once_and_merging_into_it_stays_within_bfloat16_rounding()
    {
        manual_seed(33);
        using var scope = NewDisposeScope();
        using var layer = Layer(BaseDType.Float32);
        layer.eval();
        var original = layer.Weight.detach().clone();
        layer.ConvertBase(BaseDType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, layer.Weight.dtype);
        Assert.Equal(ScalarType.BFloat16, layer.Bias!.dtype);
        Assert.Equal(TensorHash.Of(original.to(ScalarType.BFloat16)), TensorHash.Of(layer.Weight));
        Assert.Contains(layer.Weight, layer.parameters());

        var x = randn(5, 64);
        var unmerged = layer.forward(x).detach().clone();
        layer.Merge();
        Assert.True(Reference.RelativeError(layer.forward(x), unmerged) < 0.01);
        layer.Unmerge();
        Assert.True(Reference.RelativeError(layer.forward(x), unmerged) < 0.01);
    }

    [Fact]
    public void A_dtype_move_of_the_module_keeps_the_base_bound_to_the_registered_weight()
    {
        manual_seed(34);
        using var layer = Layer(BaseDType.BFloat16);
        layer.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, layer.Weight.dtype);
        Assert.Same(layer.Weight, layer.named_parameters(recurse: false).Single(p => p.name == "weight").parameter);
        Assert.Equal(ScalarType.Float64, layer.forward(randn(2, 64, dtype: ScalarType.Float64)).dtype);
    }

    [Fact]
    public void A_bfloat16_checkpoint_loads_into_bfloat16_bases_as_stored_and_the_model_matches_its_float64_reference()
    {
        var config = new LlamaConfig();
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(config, seed: 35).ToDictionary(e => e.Key, e => e.Value.to(ScalarType.BFloat16));
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyLlama(config);
        var converted = ((IPeftModel)model).ConvertFrozenBases(BaseDType.BFloat16);
        Assert.Equal(model.ProjectionLayers.Select(p => p.Path), converted);
        var float32Bytes = model.ProjectionLayers.Sum(p => p.Projection.InFeatures * p.Projection.OutFeatures * 4);
        Assert.Equal(float32Bytes / 2, model.ProjectionLayers.Sum(p => p.Projection.Base.StorageBytes));

        var result = PretrainedLoader.Load(model, temp.Path);

        Assert.Equal(new[] { "BF16" }, result.StoredDTypes);
        foreach (var (path, projection) in model.ProjectionLayers)
        {
            Assert.Equal(ScalarType.BFloat16, projection.Weight.dtype);
            Assert.Equal(TensorHash.Of(raw[path + ".weight"]), TensorHash.Of(projection.Weight));
        }
        var ids = Ids.Random(config.Vocab, 2, 8, seed: 36);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.LlamaReference(raw, ids, config)) < 1e-5);
    }
}
