using System.Linq;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Training;
using Xunit;

namespace PeftGen.Tests.Training;

[Collection(nameof(SerialTorchTests))]
public sealed class RestoreBestTests
{
    [Fact]
    public void A_run_that_keeps_the_best_evaluation_ends_with_its_parameters()
    {
        var train = TrainingFixtures.CountingExamples(48, seed: 1);
        var validation = new ExampleBatches(TrainingFixtures.CountingExamples(16, seed: 2), 8, TrainingFixtures.Eos, seed: 0, shuffle: false);
        // A learning rate high enough that later evaluations are not always the best.
        var options = new TrainerOptions { MaxSteps = 40, LearningRate = 0.05, MinLearningRateRatio = 1, WarmupSteps = 1, EvaluateEvery = 5, Seed = 5, LossChunkSize = 16, RestoreBestEvaluation = true, Precision = TrainingPrecision.Float32 };
        var model = new TinyCausalLm(dropout: 0.0, seed: 99);
        using var trainer = new PeftTrainer(model, TrainingFixtures.AllParameters(model), options);
        var result = trainer.Train(new ExampleBatches(train, 4, TrainingFixtures.Eos, seed: 3), validation);

        var best = result.Evaluations.MinBy(e => e.Loss)!;
        Assert.Equal(best, result.RestoredEvaluation);
        Assert.Equal(best.Loss, trainer.Evaluate(validation).Loss, 6);

        // Without the option the model keeps its last parameters.
        var last = new TinyCausalLm(dropout: 0.0, seed: 99);
        using var plain = new PeftTrainer(last, TrainingFixtures.AllParameters(last), options with { RestoreBestEvaluation = false });
        var plainResult = plain.Train(new ExampleBatches(train, 4, TrainingFixtures.Eos, seed: 3), validation);
        Assert.Null(plainResult.RestoredEvaluation);
        Assert.Equal(plainResult.Evaluations[^1].Loss, plain.Evaluate(validation).Loss, 6);
    }
}
