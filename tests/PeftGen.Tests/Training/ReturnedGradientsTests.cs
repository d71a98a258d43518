using System.Linq;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Tests.Precision;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

[Collection(nameof(SerialTorchTests))]
public sealed class ReturnedGradientsTests
{
    [Fact]
    public void A_backward_pass_leaves_returned_gradients_kept_until_released()
    {
        // The control: the loss's and the recast projections' backward keep the gradients they return.
        using var model = new TinyLoraLm(64, 32, seed: 7);
        foreach (var (_, p) in TrainingFixtures.AllParameters(model)) p.requires_grad = true;
        ReturnedGradients.Release();
        using (var scope = NewDisposeScope())
        using (ComputePrecision.Use(ScalarType.BFloat16))
        {
            var ids = randint(1, 64, new long[] { 2, 9 });
            CausalLmLoss.Sum(model.ForwardHidden(ids), model.HeadWeight, ids, 16).Sum.backward();
        }
        Assert.True(ReturnedGradients.Pending > 0);
        ReturnedGradients.Release();
        Assert.Equal(0, ReturnedGradients.Pending);
    }

    [Theory]
    [InlineData(TrainingPrecision.Float32)]
    [InlineData(TrainingPrecision.BFloat16)]
    public void A_trainer_step_releases_every_gradient_its_backward_returned(TrainingPrecision precision)
    {
        using var model = new TinyLoraLm(64, 32, seed: 7);
        var parameters = TrainingFixtures.AllParameters(model);
        foreach (var (_, p) in parameters) p.requires_grad = true;
        var options = new TrainerOptions { MaxSteps = 2, LearningRate = 1e-3, WarmupSteps = 0, Seed = 5, Precision = precision, LossChunkSize = 16 };
        using var trainer = new PeftTrainer(model, parameters, options);
        trainer.Train(new ExampleBatches(TrainingFixtures.CountingExamples(16, seed: 1), 8, TrainingFixtures.Eos, seed: 3));
        Assert.Equal(0, ReturnedGradients.Pending);
    }
}
