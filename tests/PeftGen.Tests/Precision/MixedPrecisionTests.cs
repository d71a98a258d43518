using System;
using System.Linq;
using PeftGen.Precision;
using PeftGen.Tests.Support;
using PeftGen.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Precision;

/// <summary>
/// bfloat16 and float16 mixed precision against float64 references. bfloat16 keeps 8 significant bits (relative
/// rounding error 2⁻⁹ ≈ 0.002 per value); a product of length-k dot products accumulated in float32 lands within a few
/// times that, so outputs and gradients are held to 2 % relative error. float16 keeps 11 (2⁻¹² ≈ 0.00024 per value): held
/// to 0.25 %. float32 is held to 1e-5 on the same data as a control that the tolerance is the dtype's, not a loose
/// test's, and each 16-bit result must be further off than float32 could be (<see cref="Floor"/>), so the test knows the
/// 16-bit path really ran.
/// </summary>
public sealed class MixedPrecisionTests
{
    private const double Bf16Tolerance = 0.02;

    /// <summary>The relative error a 16-bit compute dtype is held to.</summary>
    private static double Tolerance(ScalarType dtype) => dtype == ScalarType.Float16 ? 0.0025 : Bf16Tolerance;

    /// <summary>An error no float32 computation reaches: a 16-bit result above it was really computed in 16 bits.</summary>
    private static double Floor(ScalarType dtype) => dtype == ScalarType.Float16 ? 1e-5 : 1e-4;

    private static LoraLinear Layer()
    {
        var layer = new LoraLinear(64, 48);
        layer.AddAdapter("default", new LoraConfig(Rank: 8, Alpha: 16));
        using var _ = no_grad();
        layer.LoraB("default").copy_(randn(48, 8) * 0.1);
        return layer;
    }

    // The layer with its base in NF4, in eval mode (no dropout).
    private static LoraLinear QuantizedLayer()
    {
        var layer = Layer();
        layer.QuantizeBase(new Quant4BitOptions());
        layer.eval();
        return layer;
    }

    private static (Tensor Output, Tensor GradA, Tensor GradB, Tensor GradX) Run(LoraLinear layer, Tensor x, ScalarType? compute)
    {
        using var precision = ComputePrecision.Use(compute);
        var input = x.detach().clone().requires_grad_(true);
        var output = layer.forward(input);
        output.pow(2).sum().backward();
        var result = (output.detach().to(ScalarType.Float32), layer.LoraA("default").grad!.clone(), layer.LoraB("default").grad!.clone(), input.grad!.clone());
        layer.LoraA("default").grad!.zero_();
        layer.LoraB("default").grad!.zero_();
        return result;
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void LoRA_forward_and_gradients_in_16_bits_match_float64_within_the_dtype_s_tolerance(ScalarType dtype)
    {
        manual_seed(11);
        using var scope = NewDisposeScope();
        using var layer = Layer();
        layer.eval();
        var x = randn(4, 10, 64);

        // float64 reference of y = xWᵀ + b + s·(xAᵀ)Bᵀ and of the gradients of Σy².
        var x64 = x.to(float64).requires_grad_(true);
        var a64 = layer.LoraA("default").detach().to(float64).requires_grad_(true);
        var b64 = layer.LoraB("default").detach().to(float64).requires_grad_(true);
        var y64 = x64.matmul(layer.Weight.to(float64).t()) + layer.Bias!.to(float64) + x64.matmul(a64.t()).matmul(b64.t()) * 2.0;
        y64.pow(2).sum().backward();

        var half = Run(layer, x, dtype);
        var fp32 = Run(layer, x, null);
        Assert.True(Reference.RelativeError(half.Output, y64) < Tolerance(dtype), $"output: {Reference.RelativeError(half.Output, y64):E2}");
        Assert.True(Reference.RelativeError(half.GradA, a64.grad!) < Tolerance(dtype), $"A: {Reference.RelativeError(half.GradA, a64.grad!):E2}");
        Assert.True(Reference.RelativeError(half.GradB, b64.grad!) < Tolerance(dtype), $"B: {Reference.RelativeError(half.GradB, b64.grad!):E2}");
        Assert.True(Reference.RelativeError(half.GradX, x64.grad!) < Tolerance(dtype), $"x: {Reference.RelativeError(half.GradX, x64.grad!):E2}");
        Assert.True(Reference.RelativeError(fp32.Output, y64) < 1e-5);
        Assert.True(Reference.RelativeError(fp32.GradA, a64.grad!) < 1e-5);
        // The 16-bit dtype really ran: its error is well above float32's.
        Assert.True(Reference.RelativeError(half.Output, y64) > Floor(dtype));
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void A_16_bit_decoding_step_of_one_row_matches_float64_and_keeps_the_adapter_update(ScalarType dtype)
    {
        // Decoding (few rows, no gradients, CPU) adds the LoRA update in float32 (FewRowProduct.IsCpuDecoding): the
        // answer is still the compute dtype's, within its tolerance, and the update is really in it.
        manual_seed(13);
        using var scope = NewDisposeScope();
        using var layer = Layer();
        layer.eval();
        using var _ = no_grad();
        foreach (var x in new[] { randn(1, 1, 64), randn(3, 1, 64) })
        {
            var x64 = x.to(float64);
            var base64 = x64.matmul(layer.Weight.to(float64).t()) + layer.Bias!.to(float64);
            var y64 = base64 + x64.matmul(layer.LoraA("default").to(float64).t()).matmul(layer.LoraB("default").to(float64).t()) * 2.0;
            Tensor output;
            using (ComputePrecision.Use(dtype)) output = layer.forward(x);
            Assert.Equal(dtype, output.dtype);
            Assert.Equal(x.shape[0], output.shape[0]);
            Assert.True(Reference.RelativeError(output, y64) < Tolerance(dtype), $"relative error {Reference.RelativeError(output, y64):E2}");
            // Without the update the output would be much further off.
            Assert.True(Reference.RelativeError(base64, y64) > 10 * Reference.RelativeError(output, y64));
        }
    }

    [Fact]
    public void Master_weights_and_their_gradients_stay_float32_and_the_output_is_in_the_compute_dtype()
    {
        manual_seed(12);
        using var scope = NewDisposeScope();
        using var layer = Layer();
        var (output, gradA, gradB, _) = Run(layer, randn(2, 3, 64), ScalarType.BFloat16);
        Assert.Equal(ScalarType.Float32, layer.LoraA("default").dtype);
        Assert.Equal(ScalarType.Float32, gradA.dtype);
        Assert.Equal(ScalarType.Float32, gradB.dtype);
        using (ComputePrecision.Use(ScalarType.BFloat16)) Assert.Equal(ScalarType.BFloat16, layer.forward(randn(2, 64)).dtype);
        Assert.Equal(ScalarType.Float32, layer.forward(randn(2, 64)).dtype);
        Assert.Equal(ScalarType.Float32, output.dtype);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void QLoRA_dequantizes_to_the_scope_s_compute_dtype_and_matches_its_float64_reference(ScalarType dtype)
    {
        manual_seed(13);
        using var scope = NewDisposeScope();
        using var layer = QuantizedLayer();
        var x = randn(4, 10, 64);
        var weight = layer.DequantizedWeight(ScalarType.Float64);
        var expected = x.to(float64).matmul(weight.t()) + layer.Bias!.to(float64)
            + x.to(float64).matmul(layer.LoraA("default").to(float64).t()).matmul(layer.LoraB("default").to(float64).t()) * 2.0;
        using (ComputePrecision.Use(dtype))
        {
            Assert.Equal(dtype, layer.ComputeScalarType);
            var output = layer.forward(x);
            Assert.Equal(dtype, output.dtype);
            Assert.True(Reference.RelativeError(output, expected) < Tolerance(dtype), $"output: {Reference.RelativeError(output, expected):E2}");
            Assert.True(Reference.RelativeError(output, expected) > Floor(dtype));
        }
        Assert.Equal(ScalarType.Float32, layer.ComputeScalarType);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void QLoRA_gradients_in_16_bits_match_float64_through_the_dequantized_base(ScalarType dtype)
    {
        manual_seed(15);
        using var scope = NewDisposeScope();
        using var layer = QuantizedLayer();
        var x = randn(4, 10, 64);

        // float64 reference over the base the NF4 weight dequantizes to (what QLoRA trains against).
        var x64 = x.to(float64).requires_grad_(true);
        var a64 = layer.LoraA("default").detach().to(float64).requires_grad_(true);
        var b64 = layer.LoraB("default").detach().to(float64).requires_grad_(true);
        var y64 = x64.matmul(layer.DequantizedWeight(ScalarType.Float64).t()) + layer.Bias!.to(float64) + x64.matmul(a64.t()).matmul(b64.t()) * 2.0;
        y64.pow(2).sum().backward();

        var half = Run(layer, x, dtype);
        Assert.True(Reference.RelativeError(half.GradA, a64.grad!) < Tolerance(dtype), $"A: {Reference.RelativeError(half.GradA, a64.grad!):E2}");
        Assert.True(Reference.RelativeError(half.GradB, b64.grad!) < Tolerance(dtype), $"B: {Reference.RelativeError(half.GradB, b64.grad!):E2}");
        Assert.True(Reference.RelativeError(half.GradX, x64.grad!) < Tolerance(dtype), $"x: {Reference.RelativeError(half.GradX, x64.grad!):E2}");
        Assert.True(Reference.RelativeError(half.GradX, x64.grad!) > Floor(dtype)); // the 16-bit dtype really ran
        Assert.Equal(ScalarType.Float32, half.GradA.dtype);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void A_soft_prompts_gradient_in_16_bits_matches_float64_through_a_projection_and_the_chunked_loss(ScalarType dtype)
    {
        // Prompt tuning end to end at one layer: [prompt ; token embeddings] → a frozen projection (recast to bfloat16)
        // → the chunked head and loss (bfloat16 products, float32 softmax); the prompt's gradient against float64.
        manual_seed(16);
        using var scope = NewDisposeScope();
        const long vocab = 50, dim = 32, batch = 3, seq = 7;
        const int virtualTokens = 4;
        using var embedding = new TokenEmbedding(vocab, dim);
        var prompt = embedding.AddSoftPrompt("task", new SoftPromptConfig(virtualTokens));
        embedding.SetActiveSoftPrompt("task");
        using var projection = new LoraLinear(dim, dim);
        projection.Weight.requires_grad_(false);
        projection.Bias!.requires_grad_(false);
        var head = randn(vocab, dim) * 0.3;
        var ids = randint(0, vocab, new long[] { batch, seq });
        var labels = embedding.ExtendLabels(ids);

        // float64: the same sum of cross-entropies over the real tokens, written out.
        var prompt64 = prompt.Embeddings.detach().to(float64).requires_grad_(true);
        var x64 = cat(new[] { prompt64.unsqueeze(0).expand(batch, -1, -1), embedding.Weight.detach().to(float64).index_select(0, ids.flatten()).view(batch, seq, dim) }, 1);
        var h64 = x64.matmul(projection.Weight.to(float64).t()) + projection.Bias!.to(float64);
        var logits64 = h64.narrow(1, 0, virtualTokens + seq - 1).matmul(head.to(float64).t());
        var targets = labels.narrow(1, 1, virtualTokens + seq - 1);
        var rows = targets.reshape(-1).ne(TokenEmbedding.IgnoreLabel).nonzero().squeeze(1);
        var expected = nn.functional.cross_entropy(logits64.reshape(-1, vocab).index_select(0, rows), targets.reshape(-1).index_select(0, rows), reduction: nn.Reduction.Sum);
        expected.backward();

        Tensor loss;
        using (ComputePrecision.Use(dtype))
        {
            var hidden = projection.forward(embedding.forward(ids));
            Assert.Equal(dtype, hidden.dtype);
            loss = CausalLmLoss.Sum(hidden, head, labels).Sum;
        }
        loss.backward();
        var grad = prompt.Embeddings.grad!;
        Assert.Equal(ScalarType.Float32, grad.dtype);
        // The loss comes back in the hidden rows' dtype (one more rounding: 2⁻⁹ relative in bfloat16, 2⁻¹² in float16).
        Assert.True(Math.Abs(loss.to(ScalarType.Float64).item<double>() - expected.item<double>()) / expected.item<double>() < Tolerance(dtype) / 2);
        Assert.True(Reference.RelativeError(grad, prompt64.grad!) < Tolerance(dtype), $"prompt: {Reference.RelativeError(grad, prompt64.grad!):E2}");
        Assert.True(Reference.RelativeError(grad, prompt64.grad!) > Floor(dtype)); // the 16-bit dtype really ran
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void Chunked_loss_in_16_bits_matches_float64_in_value_and_gradients(ScalarType dtype)
    {
        manual_seed(14);
        using var scope = NewDisposeScope();
        var hidden = (randn(40, 32) * 0.5).requires_grad_(true);
        var weight = (randn(100, 32) * 0.3).requires_grad_(true);
        var targets = randint(0, 100, new long[] { 40 });
        var h64 = hidden.detach().to(float64).requires_grad_(true);
        var w64 = weight.detach().to(float64).requires_grad_(true);
        var expected = nn.functional.cross_entropy(h64.matmul(w64.t()), targets, reduction: nn.Reduction.Sum);
        expected.backward();

        Tensor loss;
        using (ComputePrecision.Use(dtype)) loss = ChunkedCrossEntropy.Sum(hidden, weight, targets, chunkSize: 16);
        loss.backward();
        Assert.Equal(ScalarType.Float32, loss.dtype);
        Assert.True(Math.Abs(loss.item<float>() - expected.item<double>()) / expected.item<double>() < Tolerance(dtype) / 2);
        Assert.True(Reference.RelativeError(hidden.grad!, h64.grad!) < Tolerance(dtype), $"hidden: {Reference.RelativeError(hidden.grad!, h64.grad!):E2}");
        Assert.True(Reference.RelativeError(weight.grad!, w64.grad!) < Tolerance(dtype), $"weight: {Reference.RelativeError(weight.grad!, w64.grad!):E2}");
        Assert.True(Reference.RelativeError(weight.grad!, w64.grad!) > Floor(dtype));
        Assert.Equal(ScalarType.Float32, weight.grad!.dtype);
    }

    [Fact]
    public void Scopes_nest_and_restore()
    {
        Assert.Null(ComputePrecision.Current);
        using (ComputePrecision.Use(ScalarType.BFloat16))
        {
            using (ComputePrecision.Use(null)) Assert.Null(ComputePrecision.Current);
            Assert.Equal(ScalarType.BFloat16, ComputePrecision.Current);
        }
        Assert.Null(ComputePrecision.Current);
        Assert.Throws<ArgumentOutOfRangeException>(() => ComputePrecision.Use(ScalarType.Int32));
    }

    [Fact]
    public void Auto_resolves_to_bfloat16_only_where_the_device_is_fast_and_explicit_choices_win()
    {
        var auto = PrecisionSupport.ComputeDType(TrainingPrecision.Auto, CPU);
        Assert.Equal(PrecisionSupport.CpuHasFastBFloat16 ? ScalarType.BFloat16 : ScalarType.Float32, auto);
        Assert.Equal(ScalarType.Float32, PrecisionSupport.ComputeDType(TrainingPrecision.Float32, CPU));
        Assert.Equal(ScalarType.BFloat16, PrecisionSupport.ComputeDType(TrainingPrecision.BFloat16, CPU));
        Assert.Equal(ScalarType.Float16, PrecisionSupport.ComputeDType(TrainingPrecision.Float16, CPU));
        Assert.Equal(TrainingPrecision.BFloat16, PrecisionSupport.Parse("bf16"));
        Assert.Equal(TrainingPrecision.Float16, PrecisionSupport.Parse("fp16"));
        Assert.Equal(TrainingPrecision.Float16, PrecisionSupport.Parse("Float16"));
        Assert.Equal(TrainingPrecision.Float32, PrecisionSupport.Parse("FLOAT32"));
        Assert.Throws<ArgumentException>(() => PrecisionSupport.Parse("fp8"));
    }
}
