using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>
/// The main job's four generated models (full, LoRA, QLoRA over the NF4 base, prompt tuning) through the trainer of
/// their generated training glue: a step, with its evaluation and checkpoint, leaves no TorchSharp tensor wrapper for
/// the garbage collector, which could finalize one while a native call still reads its handle (the crash of long runs
/// before 066626c). The runtime's own models are checked in PeftGen.Tests' <c>UnownedTensorTests</c>.
/// </summary>
[Collection("torch")]
public sealed class TensorLifetimeTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "tinygpt-lifetime-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    // Short definition-shaped records over the tiny vocabulary: a prompt of four tokens, a completion of six.
    private static List<TokenizedExample> Records(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var ids = Enumerable.Range(0, 10).Select(_ => random.Next(1, TinyConfig.Vocab)).ToArray();
            var labels = ids.Select((id, i) => i < 4 ? -100 : id).ToArray();
            return new TokenizedExample(ids, labels);
        }).ToList();
    }

    [Theory]
    [InlineData(Method.Full, TrainingPrecision.Float32)]
    [InlineData(Method.Lora, TrainingPrecision.BFloat16)]
    [InlineData(Method.QLora, TrainingPrecision.BFloat16)]
    [InlineData(Method.QLora, TrainingPrecision.Float32)]
    [InlineData(Method.Prompt, TrainingPrecision.BFloat16)]
    public void A_fine_tuning_step_of_every_method_leaves_no_tensor_wrapper_to_the_garbage_collector(Method method, TrainingPrecision precision)
    {
        using var model = TinyModels.Create(method, seed: 3);
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        var peft = (IPeftTrainableModel)model;
        var options = new TrainerOptions
        {
            MaxSteps = 6,
            LearningRate = 1e-3,
            WarmupSteps = 1,
            Seed = 5,
            EvaluateEvery = 2,
            CheckpointEvery = 2,
            CheckpointDirectory = folder,
            Precision = precision,
        };
        using var trainer = peft.CreateTrainer(options);
        var train = new ExampleBatches(Records(16, seed: 1), batchSize: 2, padId: 0, seed: 3);
        var validation = new ExampleBatches(Records(4, seed: 2), 2, 0, seed: 0, shuffle: false);
        var live = new List<long>();
        trainer.CheckpointSaved += (_, _) => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        var result = trainer.Train(train, validation);

        Assert.Equal(6, result.Steps.Count);
        Assert.Equal(3, live.Count);
        // The first two steps create what stays (optimizer moments, kept casts); after them nothing more may stay.
        Assert.True(live[2] == live[1], $"live tensor wrappers after steps 2, 4, 6: {string.Join(", ", live)}; a step leaves wrappers for the garbage collector to finalize");
    }
}
