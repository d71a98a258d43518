using System.Linq;
using PeftGen;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Generated;

public static class HalfBaseConfig
{
    public const int Vocab = 64, Width = 16, Mlp = 32, Layers = 2, Heads = 2;
}

/// <summary>A bfloat16 base through the generator: frozen projections in 16 bits, a 4-bit one, a [Trainable] one, a soft prompt.</summary>
[PeftModel(typeof(HalfBaseConfig), BaseDType = BaseDType.BFloat16, Batch = 2, Sequence = 8)]
[Lora(Rank = 2, Alpha = 4, Targets = new[] { "q_proj" })]
[SoftPrompt(4)]
public partial class HalfBaseModel : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
    [Stack("Layers")] public partial ModuleList<HalfBaseBlock> h { get; }
    [RmsNorm("Width")] public partial RmsNorm norm { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = wte.forward(ids);
        foreach (var block in h) x = block.forward(x);
        return lm_head.forward(norm.forward(x)).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class HalfBaseBlock : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Width")] public partial LoraLinear q_proj { get; }
    [Linear("Width", "Mlp", Bias = false), Quantize4Bit(BlockSize = 32)] public partial LoraLinear up_proj { get; }
    [Linear("Mlp", "Width", Bias = false), Trainable] public partial LoraLinear down_proj { get; }

    public override Tensor forward(Tensor x) => x + down_proj.forward(up_proj.forward(q_proj.forward(x)));
}

/// <summary>A generated model with <c>BaseDType = BaseDType.BFloat16</c>: built in 16 bits, and its bytes are the compile-time constant.</summary>
public sealed class SixteenBitModelTests
{
    [Fact]
    public void Frozen_projections_are_built_in_bfloat16_and_the_rest_stays_as_it_was()
    {
        using var model = new HalfBaseModel();
        Assert.Equal(ScalarType.BFloat16, model.lm_head.Weight.dtype);
        Assert.Equal(ScalarType.BFloat16, model.h[1].q_proj.Weight.dtype);
        Assert.Equal(ScalarType.BFloat16, model.h[1].q_proj.Bias!.dtype);
        Assert.Equal(ScalarType.Float32, model.h[1].q_proj.LoraA(HalfBaseModel.Adapters.Default).dtype);
        Assert.True(model.h[1].up_proj.IsQuantized);
        Assert.Equal(ScalarType.Float32, model.h[1].down_proj.Weight.dtype);
        Assert.True(model.h[1].down_proj.Weight.requires_grad);
        Assert.All(model.wte.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.All(model.norm.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
    }

    [Fact]
    public void Real_bytes_equal_the_compile_time_weight_bytes()
    {
        using var model = new HalfBaseModel();
        var parameters = model.parameters().ToList();
        var quantized = model.Layers.Select(l => l.Module).OfType<LoraLinear>().Where(p => p.IsQuantized).ToList();
        var bytes = parameters.Sum(p => p.numel() * p.element_size()) + quantized.Sum(p => p.QuantizedWeight!.StorageBytes);
        Assert.Equal(HalfBaseModel.Accounting.WeightBytes, bytes);
        Assert.Equal(HalfBaseModel.Accounting.TrainableParameters, parameters.Where(p => p.requires_grad).Sum(p => p.numel()));
        // By hand: token embedding 64·16·4 = 4,096; per block q_proj (16·16 + 16)·2 = 544, up_proj 512 values in 4 bits
        // (blocks of 32, double quantization) 256 + 16 + 4 + 4 = 280, down_proj trains 512·4 = 2,048, LoRA 2·32·4 = 256;
        // two blocks 6,256; norm 64; head 16·64·2 = 2,048; soft prompt 4·16·4 = 256.
        Assert.Equal(12_720L, HalfBaseModel.Accounting.WeightBytes);
    }

    [Fact]
    public void The_model_runs_in_float32_compute_over_its_bfloat16_bases()
    {
        manual_seed(41);
        using var model = new HalfBaseModel();
        using var output = model.forward(randint(0, HalfBaseConfig.Vocab, new long[] { 2, 8 }));
        // The soft prompt's 4 virtual tokens come first.
        Assert.Equal(new long[] { 2, 4 + 8, HalfBaseConfig.Vocab }, output.shape);
        Assert.Equal(ScalarType.Float32, output.dtype);
    }

    [Fact]
    public void The_generated_estimate_is_its_own_formula_at_the_declared_batch_and_sequence()
    {
        Assert.Equal(HalfBaseModel.Accounting.Estimate.ActivationBytes, HalfBaseModel.Accounting.Estimate.ActivationBytesFor(2, 8));
        Assert.Equal(HalfBaseModel.Accounting.Estimate.TotalBytes, HalfBaseModel.Accounting.Estimate.TotalBytesFor(2, 8));
        Assert.Equal(HalfBaseModel.Accounting.TrainingBytes,
            HalfBaseModel.Accounting.Estimate.WeightBytes + HalfBaseModel.Accounting.Estimate.GradientBytes + HalfBaseModel.Accounting.Estimate.OptimizerBytes);
    }
}
