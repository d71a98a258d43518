using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Accounting;
using PeftGen.Generators.Model;
using Xunit;

namespace PeftGen.Generators.Tests.SixteenBit;

/// <summary>
/// <c>BaseDType</c> at compile time: two bytes per float value of a frozen projection (weight and bias), float32 for
/// trainable bases, embeddings, norms, adapters and soft prompts, 4-bit weights as before; the generated constructors
/// build those projections in 16 bits.
/// </summary>
public sealed class SixteenBitTests
{
    private const string Model = "Demo.Half.HalfModel+Accounting";

    [Fact]
    public void Frozen_projections_count_two_bytes_per_value_and_everything_else_four()
    {
        var result = TestHelpers.Run(SixteenBitModels.Small);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());

        // Per block: q_proj 16·16 + 16 = 272 values × 2 B = 544; up_proj 16·48 = 768 × 2 = 1,536; down_proj trains:
        // 768 × 4 = 3,072; LoRA on q_proj 4·(16 + 16) = 128 × 4 = 512. Two blocks: 11,328. Then the token embedding
        // 32·16 × 4 = 2,048, the norm 16 × 4 = 64, the frozen head 16·32 × 2 = 1,024 and the soft prompt 4·16 × 4 = 256.
        Assert.Equal(14_720L, result.Constant(Model, "WeightBytes"));
        // Trainable: LoRA 2·128 + down_proj 2·768 + the prompt 64 = 1,856 → gradients 4 B, AdamW 8 B each.
        Assert.Equal(1_856L, result.Constant(Model, "TrainableParameters"));
        Assert.Equal(7_424L, result.Constant(Model, "GradientBytes"));
        Assert.Equal(14_848L, result.Constant(Model, "OptimizerBytes"));
        Assert.Equal(36_992L, result.Constant(Model, "TrainingBytes"));
        // Full fine-tuning stays float32: 2,048 + 2·(272 + 768 + 768)·4 + 64 + 2,048.
        Assert.Equal(18_624L, result.Constant(Model, "FullFineTuningWeightBytes"));
    }

    [Fact]
    public void Four_bit_weights_stay_four_bit_and_their_biases_follow_the_base_dtype()
    {
        var result = TestHelpers.Run(SixteenBitModels.Quantized);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        // q_proj: 256 values in 4 bits with blocks of 32 and double quantization = 128 + 8 + 4·1 + 4 = 144, its bias
        // 16 × 2 = 32; up_proj: 768 values = 384 + 24 + 4 + 4 = 416; down_proj trains: 3,072; LoRA 512. Two blocks:
        // 2·(176 + 416 + 3,072 + 512) = 8,352; embedding 2,048, norm 64, the head (kept float, frozen) 1,024.
        Assert.Equal(11_488L, result.Constant(Model, "WeightBytes"));
    }

    [Fact]
    public void Blocks_build_frozen_projections_in_the_dtype_the_model_hands_down()
    {
        var result = TestHelpers.Run(SixteenBitModels.Small);
        var model = result.Source("Demo.Half.HalfModel.Peft.g.cs");
        var block = result.Source("Demo.Half.HalfBlock.Peft.g.cs");
        Assert.Contains("new global::Demo.Half.HalfBlock(dims, modelBaseDType: global::PeftGen.BaseDType.BFloat16)", model, System.StringComparison.Ordinal);
        Assert.Contains("_lm_head = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Vocab\"], false, null, global::PeftGen.BaseDType.BFloat16);", model, System.StringComparison.Ordinal);
        Assert.Contains("_q_proj = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Width\"], true, modelQuantization, modelBaseDType);", block, System.StringComparison.Ordinal);
        // A [Trainable] base stays float32.
        Assert.Contains("_down_proj = new global::PeftGen.LoraLinear(dims[\"Mlp\"], dims[\"Width\"], false);", block, System.StringComparison.Ordinal);
    }

    [Fact]
    public void The_accounting_applies_sixteen_bits_to_frozen_projections_only()
    {
        // The pure function: one frozen projection (In 4, Out 2, bias), one trainable, one embedding.
        var frozen = new ResolvedLayer("p", LayerKind.Linear, 1, 10, 0, null, false, EquatableArray<Model.ResolvedAdapter>.Empty, new long[] { 4, 2 }.ToEquatableArray());
        var trained = frozen with { Path = "t", Trainable = true };
        var embedding = new ResolvedLayer("e", LayerKind.Embedding, 1, 8, 0, null, false, EquatableArray<Model.ResolvedAdapter>.Empty, new long[] { 4, 2 }.ToEquatableArray());
        var layers = new[] { frozen, trained, embedding }.ToEquatableArray();
        var float32 = ParameterAccounting.Compute(new AccountingSpec(layers, EquatableArray<AccountedPrompt>.Empty, null, null));
        var sixteen = ParameterAccounting.Compute(new AccountingSpec(layers, EquatableArray<AccountedPrompt>.Empty, null, null, SixteenBitBases: true));
        Assert.Equal(4L * (10 + 10 + 8), float32.WeightBytes);
        Assert.Equal((2L * 10) + (4 * 10) + (4 * 8), sixteen.WeightBytes);
        Assert.Equal(float32.FullFineTuningWeightBytes, sixteen.FullFineTuningWeightBytes);
    }

    [Fact]
    public void Snapshot()
    {
        var result = TestHelpers.Run(SixteenBitModels.Small);
        Assert.Empty(result.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        foreach (var generated in result.Sources.OrderBy(s => s.HintName, System.StringComparer.Ordinal))
            Tests.Snapshot.Verify("SixteenBit/" + generated.HintName.Replace(".g.cs", ""), generated.SourceText.ToString());
    }
}
