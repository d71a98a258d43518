using System;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Budget;
using PeftGen.Generators.Tests.SixteenBit;
using Xunit;

namespace PeftGen.Generators.Tests.Budget;

/// <summary>
/// The compile-time memory budget: strict sizes, the estimate's parts as generated constants (hand-computed), and
/// PEFT404 naming the largest items and concrete changes that fit.
/// </summary>
public sealed class BudgetTests
{
    private const string Estimate = "Demo.Half.HalfModel+Accounting+Estimate";

    [Theory]
    [InlineData("24 GiB", 24L << 30)]
    [InlineData("512 MiB", 512L << 20)]
    [InlineData("6 GB", 6_000_000_000L)]
    [InlineData("1.5 KiB", 1536L)]
    [InlineData("1 B", 1L)]
    [InlineData("2 TiB", 2L << 40)]
    public void Sizes_parse_with_their_unit(string text, long bytes)
    {
        Assert.True(BudgetParser.TryParseSize(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("24GiB")]
    [InlineData("24  GiB")]
    [InlineData(" 24 GiB")]
    [InlineData("24 gib")]
    [InlineData("24 GIB")]
    [InlineData("24 G")]
    [InlineData("-1 GiB")]
    [InlineData("0 GiB")]
    [InlineData("1,5 GiB")]
    [InlineData("1.5.1 GiB")]
    [InlineData(".5 GiB")]
    [InlineData("5. GiB")]
    [InlineData("0.5 B")]
    [InlineData("1e3 MB")]
    [InlineData("9999999999 TiB")]
    [InlineData("24 GiB ")]
    public void Malformed_sizes_are_rejected(string text)
        => Assert.False(BudgetParser.TryParseSize(text, out _));

    [Fact]
    public void The_estimate_parts_are_generated_constants()
    {
        var result = TestHelpers.Run(SixteenBitModels.Small);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        // h = 16 and V = 32 (token embedding), L = 2 (the stack), a = 2 (Heads), f = 48 with k = 1 (up_proj), LoRA r = 4
        // on q_proj in 2 layers, no dropout: 8 values per token.
        Assert.Equal(2L, result.Constant(Estimate, "Layers"));
        Assert.Equal(48L, result.Constant(Estimate, "MlpWidth"));
        Assert.Equal(1L, result.Constant(Estimate, "MlpInputs"));
        Assert.Equal(8L, result.Constant(Estimate, "LoraValuesPerToken"));
        // 2·(8·16 + 2·1·48) + 3·16 + 8.
        Assert.Equal(504L, result.Constant(Estimate, "ValuesPerToken"));
        // 24 MiB of float32 logits hold 196,608 rows of 32: capped at 4,096.
        Assert.Equal(4096L, result.Constant(Estimate, "LogitChunkRows"));
        // b·s = 16 tokens: 4·(16·504 + L·b·a·s² = 2·2·2·64 = 512) + 4·16·32.
        Assert.Equal(36_352L, result.Constant(Estimate, "ActivationBytes"));
        // The widest 16-bit base widened to float32: up_proj, 16·48·4.
        Assert.Equal(3_072L, result.Constant(Estimate, "TransientBytes"));
        // 14,720 weights + 7,424 gradients + 14,848 AdamW (SixteenBitTests) + 36,352 + 3,072.
        Assert.Equal(76_416L, result.Constant(Estimate, "TotalBytes"));
        Assert.Equal(1L << 20, result.Constant(Estimate, "BudgetBytes"));
    }

    [Fact]
    public void Over_budget_names_the_largest_items_and_what_fits()
    {
        var source = SixteenBitModels.Small.Replace("MemoryBudget = \"1 MiB\"", "MemoryBudget = \"64 KiB\"", StringComparison.Ordinal);
        var diagnostic = Assert.Single(TestHelpers.Run(source).GeneratorDiagnostics);
        Assert.Equal("PEFT404", diagnostic.Id);
        // Sequence 5: 40,064 fixed + 4·(10·504 + 2·2·2·25) + 4·10·32 = 62,304; Batch 1: 40,064 + 18,176 = 58,240;
        // 4-bit q/up (the head stays float): 73,440; LoRA rank 1: 72,960.
        Assert.Equal(
            "Model 'HalfModel' needs an estimated 74.6 KiB to train at Batch = 2 × Sequence = 8, over its MemoryBudget of 64 KiB "
            + "(weights 14.4 KiB, gradients 7.2 KiB, AdamW state 14.5 KiB, activations 35.5 KiB, largest dequantized weight 3.0 KiB); "
            + "largest: activations 35.5 KiB, AdamW state 14.5 KiB, gradients 7.2 KiB; "
            + "would fit: Sequence = 5 (60.8 KiB), Batch = 1 (56.9 KiB); too large still: [Quantize4Bit] on the model class (71.7 KiB), LoRA rank 1 (71.2 KiB)",
            diagnostic.GetMessage(CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Llama2_7b_in_float32_does_not_fit_24_gib_and_is_told_that_4_bit_or_bfloat16_does()
    {
        var source = Models.Llama.Replace("ContextLength = \"Context\")]", "ContextLength = \"Context\", MemoryBudget = \"24 GiB\", Batch = 1, Sequence = 512)]", StringComparison.Ordinal);
        var diagnostic = Assert.Single(TestHelpers.Run(source).GeneratorDiagnostics);
        Assert.Equal("PEFT404", diagnostic.Id);
        // Weights 26,970,439,680 (float32) + 16 MiB gradients + 32 MiB AdamW + activations
        // 4·(512·2,732,544 + 32·32·512²) + 4·196·32,000 = 6,695,079,936. Model-wide NF4 (the head float32):
        // 4,407,190,400 weights + 48 MiB + activations + the widest dequantized weight 4096·11008·4. bfloat16 bases:
        // 13,756,284,928 + 48 MiB + activations + the head widened, 4096·32000·4.
        Assert.Equal(
            "Model 'Llama2' needs an estimated 31.40 GiB to train at Batch = 1 × Sequence = 512, over its MemoryBudget of 24 GiB "
            + "(weights 25.12 GiB, gradients 16.0 MiB, AdamW state 32.0 MiB, activations 6.24 GiB); "
            + "largest: activations 6.24 GiB, weights of 'layers.*.mlp.gate_proj' 5.38 GiB, weights of 'layers.*.mlp.up_proj' 5.38 GiB; "
            + "would fit: [Quantize4Bit] on the model class (10.55 GiB), BaseDType = BaseDType.BFloat16 (19.58 GiB); "
            + "too large still: Sequence = 1 (25.18 GiB), LoRA rank 1 (31.34 GiB)",
            diagnostic.GetMessage(CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("MemoryBudget = \"1 MiB\", Sequence = 8")]
    [InlineData("Batch = 4, Sequence = 2")]
    [InlineData("Sequence = 8, BaseDType = BaseDType.Float32")]
    public void A_budget_that_fits_or_an_estimate_without_budget_reports_nothing(string arguments)
    {
        var source = SixteenBitModels.Small.Replace("BaseDType = BaseDType.BFloat16, Batch = 2, Sequence = 8, MemoryBudget = \"1 MiB\"", arguments, StringComparison.Ordinal);
        var result = TestHelpers.Run(source);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        Assert.Contains("public static class Estimate", result.Source("Demo.Half.HalfModel.Peft.g.cs"), StringComparison.Ordinal);
    }

    [Fact]
    public void Without_sequence_nothing_is_estimated()
    {
        var result = TestHelpers.Run(SixteenBitModels.Quantized);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.DoesNotContain("class Estimate", result.Source("Demo.Half.HalfModel.Peft.g.cs"), StringComparison.Ordinal);
    }

    [Fact]
    public void Snapshot()
    {
        var source = Models.Llama.Replace("ContextLength = \"Context\")]", "ContextLength = \"Context\", BaseDType = BaseDType.BFloat16, MemoryBudget = \"24 GiB\", Batch = 1, Sequence = 512)]", StringComparison.Ordinal);
        var result = TestHelpers.Run(source);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        var model = result.Sources.Single(s => s.HintName == "Demo.Llama.Llama2.Peft.g.cs");
        Tests.Snapshot.Verify("Budget/Demo.Llama.Llama2.Peft", model.SourceText.ToString());
    }
}
