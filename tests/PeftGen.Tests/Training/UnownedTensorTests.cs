using System;
using System.Collections.Generic;
using System.IO;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Tests.Precision;
using PeftGen.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

/// <summary>
/// A TorchSharp tensor wrapper that is neither in a dispose scope nor disposed is left to the garbage collector, and
/// the collector may finalize it while a native call still reads its handle: TorchSharp's <c>zero_()</c> reads the
/// handle, calls into libtorch and never touches the wrapper again, so <c>parameter.grad?.zero_()</c> outside a scope
/// freed the handle under the call now and then and crashed the process (a segfault in <c>THSTensor_zeros_out</c>,
/// typically in the step after a checkpoint save, whose allocations start a collection). A race cannot be caught
/// reliably; what makes it impossible can: a training step leaves no wrapper alive behind it. The trainer runs with
/// evaluation and a checkpoint every few steps, and the thread's count of live wrappers must not grow between them.
/// </summary>
[Collection(nameof(SerialTorchTests))]
public sealed class UnownedTensorTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-unowned-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Theory]
    [InlineData(false, TrainingPrecision.Float32)]
    [InlineData(false, TrainingPrecision.BFloat16)]
    [InlineData(false, TrainingPrecision.Float16)]
    [InlineData(true, TrainingPrecision.Float32)]
    [InlineData(true, TrainingPrecision.BFloat16)]
    [InlineData(true, TrainingPrecision.Float16)]
    public void A_training_step_leaves_no_tensor_wrapper_to_the_garbage_collector(bool lora, TrainingPrecision precision)
    {
        var options = new TrainerOptions
        {
            MaxSteps = 16,
            LearningRate = 3e-3,
            WarmupSteps = 2,
            GradientAccumulationSteps = 2,
            LossChunkSize = 16,
            MaxGradNorm = 0.5,
            Seed = 5,
            EvaluateEvery = 4,
            CheckpointEvery = 4,
            CheckpointDirectory = folder,
            Precision = precision,
        };
        // Full fine-tuning of a hand-written model, or LoRA adapters over the library's blocks (tied head included).
        using var model = lora ? new TinyLoraLm(64, 32, seed: 7) : (nn.Module<Tensor, Tensor>)new TinyCausalLm(seed: 99);
        var parameters = model is TinyLoraLm loraModel
            ? loraModel.AdapterParameters()
            : TrainingFixtures.AllParameters(model);
        using var trainer = new PeftTrainer(model, parameters, options);
        var train = new ExampleBatches(TrainingFixtures.CountingExamples(48, seed: 1), batchSize: 4, padId: TrainingFixtures.Eos, seed: 3);
        var validation = new ExampleBatches(TrainingFixtures.CountingExamples(16, seed: 2), 8, TrainingFixtures.Eos, seed: 0, shuffle: false);
        // Sampled after each checkpoint: every sample follows the same work (4 steps, an evaluation, a save).
        var live = new List<long>();
        trainer.CheckpointSaved += (_, _) => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        var result = trainer.Train(train, validation);

        Assert.Equal(16, result.Steps.Count);
        Assert.Equal(4, live.Count);
        // The first four steps create what stays (optimizer moments, buffers); after them nothing more may stay.
        Assert.True(live[1] == live[0] && live[3] == live[0],
            $"live tensor wrappers after steps 4, 8, 12, 16: {string.Join(", ", live)}; a step leaves wrappers for the garbage collector to finalize");
    }

    [Theory]
    [InlineData(false, TrainingPrecision.Float32)]
    [InlineData(true, TrainingPrecision.BFloat16)]
    public void Generation_leaves_no_tensor_wrapper_to_the_garbage_collector(bool lora, TrainingPrecision precision)
    {
        using var model = lora ? new TinyLoraLm(64, 32, seed: 7) : (nn.Module<Tensor, Tensor>)new TinyCausalLm(seed: 99);
        var generator = new TextGenerator(model);
        var prompts = new[] { new[] { 3, 4, 5 }, new[] { 7, 8, 9 } };
        var options = new GenerationOptions { MaxNewTokens = 8, Temperature = 0.7, TopK = 10, TopP = 0.9, NoRepeatNGramSize = 3, Seed = 1, Precision = precision };
        var live = new List<long>();
        for (int call = 0; call < 3; call++)
        {
            var outputs = generator.GenerateBatch(prompts, options);
            Assert.All(outputs, o => Assert.Equal(8, o.Count));
            live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.True(live[2] == live[0], $"live tensor wrappers after three calls: {string.Join(", ", live)}; generation leaves wrappers for the garbage collector to finalize");
    }
}
