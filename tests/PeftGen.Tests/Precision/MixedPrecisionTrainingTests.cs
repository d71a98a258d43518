using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Tests.Training;
using PeftGen.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Precision;

/// <summary>A small causal LM made of the library's blocks (LoRA projections, a tied head), for precision runs.</summary>
internal sealed class TinyLoraLm : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly Embedding tokens;
    private readonly LayerNorm norm1;
    private readonly LoraLinear up;
    private readonly LoraLinear down;
    private readonly LayerNorm norm2;

    public TinyLoraLm(long vocab, long dim, long seed) : base(nameof(TinyLoraLm))
    {
        manual_seed(seed);
        tokens = nn.Embedding(vocab, dim);
        norm1 = nn.LayerNorm(dim);
        up = new LoraLinear(dim, 4 * dim);
        down = new LoraLinear(4 * dim, dim);
        norm2 = nn.LayerNorm(dim);
        foreach (var projection in new[] { up, down }) projection.AddAdapter("default", new LoraConfig(Rank: 4, Alpha: 8));
        RegisterComponents();
    }

    public IEnumerable<LoraLinear> Projections => [up, down];

    /// <summary>The LoRA A and B matrices of both projections, named as a trainer lists them.</summary>
    public List<(string Name, Parameter Parameter)> AdapterParameters() =>
        Projections.SelectMany((p, i) => new[] { ($"{i}.A", p.LoraA("default")), ($"{i}.B", p.LoraB("default")) }).ToList();

    public Tensor HeadWeight => tokens.weight!;

    public Tensor ForwardHidden(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var x = tokens.call(inputIds);
        // A causal mix (each position sees the running mean of the ones before it), then a residual LoRA MLP.
        var counts = arange(1, x.shape[1] + 1, dtype: x.dtype).view(1, -1, 1);
        x = x + x.cumsum(1).div(counts);
        x = x + down.forward(nn.functional.gelu(up.forward(norm1.call(x))));
        return norm2.call(x).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor inputIds) => ForwardHidden(inputIds).matmul(HeadWeight.t());
}

[Collection(nameof(SerialTorchTests))]
public sealed class MixedPrecisionTrainingTests
{
    private static readonly List<TokenizedExample> Train = TrainingFixtures.CountingExamples(96, seed: 1);
    private static readonly List<TokenizedExample> Validation = TrainingFixtures.CountingExamples(32, seed: 2);

    private static (double Before, double Loss, string ComputeDType) Run(bool adaptersOnly, TrainingPrecision precision)
    {
        using var model = new TinyLoraLm(64, 32, seed: 7);
        var parameters = adaptersOnly
            ? model.AdapterParameters()
            : TrainingFixtures.AllParameters(model);
        foreach (var (_, p) in parameters) p.requires_grad = true;
        var options = new TrainerOptions { MaxSteps = 200, LearningRate = adaptersOnly ? 1e-2 : 3e-3, WarmupSteps = 10, Seed = 5, Precision = precision, LossChunkSize = 16 };
        using var trainer = new PeftTrainer(model, parameters, options);
        var validation = new ExampleBatches(Validation, 8, TrainingFixtures.Eos, seed: 0, shuffle: false);
        double before = trainer.Evaluate(validation).Loss;
        var result = trainer.Train(new ExampleBatches(Train, 8, TrainingFixtures.Eos, seed: 3), validation);
        Assert.All(parameters, p => Assert.Equal(ScalarType.Float32, p.Item2.dtype));
        return (before, result.Evaluations[^1].Loss, result.ComputeDType);
    }

    [Theory]
    [InlineData(false, TrainingPrecision.BFloat16)]
    [InlineData(true, TrainingPrecision.BFloat16)]
    [InlineData(false, TrainingPrecision.Float16)]
    [InlineData(true, TrainingPrecision.Float16)]
    public void Two_hundred_16_bit_steps_end_within_0_02_of_float32_s_validation_loss(bool adaptersOnly, TrainingPrecision precision)
    {
        var (before, fp32, fp32Type) = Run(adaptersOnly, TrainingPrecision.Float32);
        var (_, half, halfType) = Run(adaptersOnly, precision);
        Assert.Equal("float32", fp32Type);
        Assert.Equal(precision == TrainingPrecision.Float16 ? "float16" : "bfloat16", halfType);
        Assert.True(System.Math.Abs(fp32 - half) < 0.02, $"float32 {fp32:F4}, {halfType} {half:F4}");
        // Both runs learned something (adapters on a random base learn little), so the comparison is not between two
        // untrained models.
        Assert.True(fp32 < before - 0.05 && half < before - 0.05, $"validation loss {before:F4} before, float32 {fp32:F4}, {halfType} {half:F4}");
    }
}
