using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Data;
using PeftGen.Formats.SafeTensors;
using PeftGen.Precision;
using PeftGen.Tests.Support;
using PeftGen.Tests.Training;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Precision;

/// <summary>
/// float16 mixed precision in the trainer: the loss is scaled before the backward pass and the gradients unscaled
/// before clipping and the update; a step whose scaled gradients overflow is skipped and the scale lowered; the scale
/// survives a checkpoint. The model is <see cref="TinyLoraLm"/>, whose projections compute in the scope's dtype.
/// </summary>
[Collection(nameof(SerialTorchTests))]
public sealed class Float16TrainingTests : IDisposable
{
    private static readonly List<TokenizedExample> Examples = TrainingFixtures.CountingExamples(64, seed: 1);
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-fp16-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    private static ExampleBatches Batches() => new(Examples, 8, TrainingFixtures.Eos, seed: 3);

    private static TrainerOptions Options(int steps, LossScaling scaling) => new()
    {
        MaxSteps = steps,
        LearningRate = 3e-3,
        WarmupSteps = 2,
        Seed = 5,
        LossChunkSize = 16,
        Precision = TrainingPrecision.Float16,
        LossScaling = scaling,
    };

    private static (TinyLoraLm Model, List<(string, TorchSharp.Modules.Parameter)> Parameters) Model()
    {
        var model = new TinyLoraLm(64, 32, seed: 7);
        var parameters = TrainingFixtures.AllParameters(model);
        foreach (var (_, p) in parameters) p.requires_grad = true;
        return (model, parameters.ToList());
    }

    private static string[] Hashes(IEnumerable<(string, TorchSharp.Modules.Parameter)> parameters) => parameters.Select(p => TensorHash.Of(p.Item2)).ToArray();

    [Fact]
    public void Steps_whose_scaled_gradients_overflow_are_skipped_and_the_scale_halves_until_they_fit()
    {
        // 2³⁰ times a per-token gradient is far beyond float16's 65,504: the first steps must overflow.
        const int steps = 16;
        var (model, parameters) = Model();
        var options = Options(steps, new LossScaling { InitialScale = Math.Pow(2, 30), GrowthInterval = 1000 }) with { OnNonFinite = NonFiniteAction.Stop };
        using var trainer = new PeftTrainer(model, parameters, options);
        var warnings = new List<TrainingWarning>();
        trainer.Warning += (_, w) => { if (w.Step > 0) warnings.Add(w); }; // the run's own: a CPU without float16 products adds one before step 1
        var initial = Hashes(parameters);
        var hashes = new List<string[]>();
        trainer.StepCompleted += (_, _) => hashes.Add(Hashes(parameters));

        var result = trainer.Train(Batches());

        Assert.Equal(ScalarType.Float16, trainer.ComputeDType);
        Assert.Equal("float16", result.ComputeDType);
        // An overflow is float16's range, not a broken model: OnNonFinite = Stop does not stop the run.
        Assert.Equal(TrainingStopReason.Completed, result.StopReason);
        int skipped = result.SkippedSteps;
        Assert.InRange(skipped, 1, steps - 2);
        for (int i = 0; i < result.Steps.Count; i++)
        {
            var step = result.Steps[i];
            Assert.Equal(i < skipped, step.Skipped);
            Assert.Equal(Math.Pow(2, 30 - Math.Min(i, skipped)), step.LossScale);
            // Skipped steps leave the parameters as they were; the others move them.
            if (i < skipped) Assert.Equal(initial, hashes[i]);
            else Assert.NotEqual(i == 0 ? initial : hashes[i - 1], hashes[i]);
            if (!step.Skipped) Assert.True(double.IsFinite(step.GradientNorm) && step.GradientNorm < 100, $"step {step.Step}: unscaled norm {step.GradientNorm}");
        }
        Assert.Equal(steps - skipped, trainer.Optimizer.StepCount);
        Assert.Equal(Math.Pow(2, 30 - skipped), trainer.LossScaler!.Scale);
        Assert.Equal(skipped, warnings.Count);
        Assert.All(warnings, w => Assert.Contains("float16 gradients overflowed at loss scale", w.Message));
        Assert.Contains("loss scale 1,073,741,824;", warnings[0].Message);
        Assert.Contains("lowered to 536,870,912", warnings[0].Message);
        Assert.All(parameters, p => Assert.Equal(ScalarType.Float32, p.Item2.dtype));
    }

    [Fact]
    public void The_scale_doubles_after_each_growth_interval_without_overflow()
    {
        var (model, parameters) = Model();
        using var trainer = new PeftTrainer(model, parameters, Options(7, new LossScaling { InitialScale = 256, GrowthInterval = 3 }));
        var result = trainer.Train(Batches());
        Assert.Equal(0, result.SkippedSteps);
        Assert.Equal(new double[] { 256, 256, 256, 512, 512, 512, 1024 }, result.Steps.Select(s => s.LossScale));
        Assert.Equal(1024.0, trainer.LossScaler!.Scale);
        Assert.Equal(1, trainer.LossScaler.GoodSteps);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_update_is_float32_s_whatever_the_scale_so_the_gradients_are_unscaled_before_clipping_and_the_step(bool clip)
    {
        // With a huge epsilon AdamW's first update is linear in the gradient (lr·g/ε), so the update shows the
        // gradient the optimizer was given: a missing unscale would make it 1,024 times too large, and unscaling after
        // clipping would clip the scaled norm instead of the real one.
        Tensor Update(TrainingPrecision precision, double scale, out double norm)
        {
            var (model, parameters) = Model();
            var start = parameters.Select(p => p.Item2.detach().clone()).ToArray();
            var options = Options(1, new LossScaling { InitialScale = scale, MinimumScale = 1 }) with
            {
                Precision = precision, WarmupSteps = 0, LearningRate = 1, Epsilon = 100, WeightDecay = 0, MaxGradNorm = clip ? 1e-3 : 0,
            };
            using var trainer = new PeftTrainer(model, parameters, options);
            var step = trainer.Train(new ExampleBatches(Examples.Take(8).ToList(), 8, TrainingFixtures.Eos, seed: 0, shuffle: false)).Steps.Single();
            Assert.False(step.Skipped);
            norm = step.GradientNorm;
            return cat(parameters.Select((p, i) => (p.Item2.detach() - start[i]).flatten()).ToArray()).to(ScalarType.Float64);
        }

        var fp32 = Update(TrainingPrecision.Float32, 1, out var fp32Norm);
        var scaled = Update(TrainingPrecision.Float16, 1024, out var scaledNorm);
        var unscaled = Update(TrainingPrecision.Float16, 1, out _);

        Assert.True(Reference.RelativeError(scaled, fp32) < 0.01, $"float16 at scale 1,024 against float32: {Reference.RelativeError(scaled, fp32):E2}");
        Assert.True(Reference.RelativeError(scaled, unscaled) < 0.01, $"scale 1,024 against scale 1: {Reference.RelativeError(scaled, unscaled):E2}");
        // The reported norm is the real (unscaled) one.
        Assert.True(Math.Abs(scaledNorm - fp32Norm) / fp32Norm < 0.01, $"norm {scaledNorm} against float32's {fp32Norm}");
        // float16 really ran: its update is not float32's to the bit.
        Assert.True(Reference.RelativeError(scaled, fp32) > 1e-6);
    }

    [Theory]
    [InlineData(1.0, true)]
    [InlineData(4.0, false)]
    public void A_non_finite_gradient_at_the_minimum_scale_is_the_model_s_and_above_it_is_taken_for_an_overflow(double initialScale, bool stops)
    {
        var model = new PoisonedModel(new TinyCausalLm(seed: 99));
        var options = new TrainerOptions
        {
            MaxSteps = 4, LearningRate = 3e-3, LossChunkSize = 16, Seed = 5, OnNonFinite = NonFiniteAction.Stop,
            Precision = TrainingPrecision.Float16, LossScaling = new LossScaling { InitialScale = initialScale, MinimumScale = 1 },
        };
        using var trainer = new PeftTrainer(model, TrainingFixtures.AllParameters(model), options);
        var warnings = new List<TrainingWarning>();
        trainer.Warning += (_, w) => { if (w.Step > 0) warnings.Add(w); }; // the run's own: a CPU without float16 products adds one before step 1
        var batches = new PoisonedBatches(new ExampleBatches(Examples, 4, TrainingFixtures.Eos, seed: 3), poisonedIndex: 1, PoisonedModel.GradientPoisonId);

        var result = trainer.Train(batches);

        var warning = Assert.Single(warnings);
        Assert.Equal(2, warning.Step);
        Assert.True(result.Steps[1].Skipped);
        if (stops)
        {
            Assert.Equal(TrainingStopReason.NonFinite, result.StopReason);
            Assert.Equal(2, result.Steps.Count);
            Assert.Contains("Stopping: non-finite loss or gradient at step 2", warning.Message);
            Assert.Contains("even at the minimum loss scale 1)", warning.Message);
        }
        else
        {
            Assert.Equal(TrainingStopReason.Completed, result.StopReason);
            Assert.Equal(4, result.Steps.Count);
            Assert.Contains("overflowed at loss scale 4", warning.Message);
            Assert.Equal(2.0, trainer.LossScaler!.Scale);
        }
    }

    [Fact]
    public void A_checkpoint_keeps_the_loss_scale_and_a_resumed_run_continues_as_the_uninterrupted_one()
    {
        var scaling = new LossScaling { InitialScale = Math.Pow(2, 26), GrowthInterval = 2 };
        var options = Options(8, scaling) with { CheckpointEvery = 4, CheckpointDirectory = folder };

        var (model, parameters) = Model();
        using var uninterrupted = new PeftTrainer(model, parameters, options);
        double scaleAtCheckpoint = 0;
        int goodAtCheckpoint = -1;
        uninterrupted.StepCompleted += (_, s) =>
        {
            if (s.Step == 4) (scaleAtCheckpoint, goodAtCheckpoint) = (uninterrupted.LossScaler!.Scale, uninterrupted.LossScaler.GoodSteps);
        };
        var path = Path.Combine(folder, TrainingCheckpoint.FileName);
        var full = uninterrupted.Train(Batches());
        Assert.True(full.SkippedSteps >= 1);

        // The file written at step 8 is the last one; write the step-4 state again from a run stopped there.
        var (midModel, midParameters) = Model();
        using (var mid = new PeftTrainer(midModel, midParameters, options with { MaxSteps = 4 })) mid.Train(Batches());
        using (var file = SafeTensorsFile.Open(path))
        {
            Assert.Equal(scaleAtCheckpoint.ToString("R", System.Globalization.CultureInfo.InvariantCulture), file.Metadata["loss_scale"]);
            Assert.Equal(goodAtCheckpoint.ToString(System.Globalization.CultureInfo.InvariantCulture), file.Metadata["loss_scale_good_steps"]);
        }

        var (resumedModel, resumedParameters) = Model();
        using var resumed = new PeftTrainer(resumedModel, resumedParameters, options with { CheckpointEvery = 0 });
        resumed.Resume(path);
        Assert.Equal(scaleAtCheckpoint, resumed.LossScaler!.Scale);
        Assert.Equal(goodAtCheckpoint, resumed.LossScaler.GoodSteps);
        var rest = resumed.Train(Batches());
        Assert.Equal(full.Steps.Skip(4).Select(s => (s.Loss, s.LossScale, s.Skipped)), rest.Steps.Select(s => (s.Loss, s.LossScale, s.Skipped)));
        Assert.Equal(Hashes(parameters), Hashes(resumedParameters));
    }

    [Fact]
    public void A_checkpoint_without_a_loss_scale_leaves_the_initial_one_and_a_bad_one_is_refused()
    {
        var (model, parameters) = Model();
        var float32 = Options(2, new LossScaling()) with { Precision = TrainingPrecision.Float32, CheckpointEvery = 2, CheckpointDirectory = folder };
        using (var trainer = new PeftTrainer(model, parameters, float32))
        {
            Assert.Null(trainer.LossScaler);
            trainer.Train(Batches());
        }
        var path = Path.Combine(folder, TrainingCheckpoint.FileName);
        using (var file = SafeTensorsFile.Open(path)) Assert.False(file.Metadata.ContainsKey("loss_scale"));

        var (other, otherParameters) = Model();
        using var half = new PeftTrainer(other, otherParameters, Options(4, new LossScaling { InitialScale = 512 }));
        half.Resume(path);
        Assert.Equal(2, half.CompletedSteps);
        Assert.Equal(512.0, half.LossScaler!.Scale);

        // The same file with a loss scale that is not a number.
        Dictionary<string, Tensor> tensors;
        Dictionary<string, string> metadata;
        using (var file = SafeTensorsFile.Open(path))
        {
            tensors = file.Names.ToDictionary(n => n, n => file.Read(n));
            metadata = new Dictionary<string, string>(file.Metadata) { ["loss_scale"] = "lots", ["loss_scale_good_steps"] = "0" };
        }
        var bad = Path.Combine(folder, "bad.safetensors");
        SafeTensorsFile.Save(bad, tensors, metadata);
        var error = Assert.Throws<PeftGen.Formats.PeftFormatException>(() => half.Resume(bad));
        Assert.Contains("loss_scale", error.Message);
        Assert.Equal(512.0, half.LossScaler.Scale);
    }
}
