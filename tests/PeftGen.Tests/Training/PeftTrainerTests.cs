using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Data;
using PeftGen.Tests.Support;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

[Collection(nameof(SerialTorchTests))]
public sealed class PeftTrainerTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-trainer-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    private static readonly List<TokenizedExample> Train = TrainingFixtures.CountingExamples(48, seed: 1);
    private static readonly List<TokenizedExample> Validation = TrainingFixtures.CountingExamples(16, seed: 2);

    private static TrainerOptions Options(int steps) => new()
    {
        MaxSteps = steps,
        LearningRate = 3e-3,
        WarmupSteps = 2,
        GradientAccumulationSteps = 2,
        LossChunkSize = 16,
        Seed = 5,
    };

    private static (TinyCausalLm Model, PeftTrainer Trainer) Create(TrainerOptions options)
    {
        var model = new TinyCausalLm(seed: 99);
        return (model, new PeftTrainer(model, TrainingFixtures.AllParameters(model), options));
    }

    private static ExampleBatches TrainBatches() => new(Train, batchSize: 4, padId: TrainingFixtures.Eos, seed: 3);

    [Fact]
    public void Loss_falls_and_evaluation_reports_loss_and_perplexity()
    {
        var (model, trainer) = Create(Options(40) with { EvaluateEvery = 20, LearningRate = 1e-2 });
        var evaluations = new List<EvaluationResult>();
        int reported = 0;
        trainer.Evaluated += (_, e) => evaluations.Add(e);
        trainer.StepCompleted += (_, _) => reported++;
        var validation = new ExampleBatches(Validation, 8, TrainingFixtures.Eos, seed: 0, shuffle: false);
        double before = ValidationLoss.Mean(model, validation, validation.BatchesPerEpoch);

        var result = trainer.Train(TrainBatches(), validation);

        Assert.Equal(TrainingStopReason.Completed, result.StopReason);
        Assert.Equal(40, result.Steps.Count);
        Assert.Equal(40, reported);
        Assert.Equal(new[] { 20, 40 }, evaluations.Select(e => e.Step));
        Assert.Equal(result.Evaluations, evaluations);
        Assert.True(evaluations[^1].Loss < before * 0.85, $"validation loss {before} → {evaluations[^1].Loss}");
        Assert.Equal(Math.Exp(evaluations[^1].Loss), evaluations[^1].Perplexity, 9);
        Assert.True(result.Steps.Take(4).Average(s => s.Loss) > result.Steps.TakeLast(4).Average(s => s.Loss));
        Assert.All(result.Steps, s => Assert.True(s.Tokens > 0 && s.LabelledTokens > 0 && s.Seconds > 0 && !s.Skipped));
        Assert.True(result.MedianStepSeconds > 0 && result.TokensPerSecond > 0);
        Assert.True(result.PeakResidentBytes >= result.FinalResidentBytes && result.FinalResidentBytes > 0);
        // Warm-up then cosine: the peak is reached after warm-up and the last step sits at the floor.
        Assert.Equal(1e-2, result.Steps[2].LearningRate, 12);
        Assert.Equal(1e-3, result.Steps[^1].LearningRate, 12);
    }

    [Fact]
    public void A_fixed_seed_makes_a_run_repeatable()
    {
        double[] Run()
        {
            var (_, trainer) = Create(Options(6));
            return trainer.Train(TrainBatches()).Steps.Select(s => s.Loss).ToArray();
        }
        var first = Run();
        var second = Run();
        Assert.Equal(first, second);
        var (_, other) = Create(Options(6) with { Seed = 6 });
        Assert.NotEqual(first, other.Train(TrainBatches()).Steps.Select(s => s.Loss).ToArray());
    }

    [Fact]
    public void Resuming_from_a_checkpoint_continues_the_same_loss_curve()
    {
        var options = Options(8) with { CheckpointEvery = 4, CheckpointDirectory = folder };
        var (uninterruptedModel, uninterrupted) = Create(options);
        var checkpoint = Path.Combine(folder, TrainingCheckpoint.FileName);
        var midRun = checkpoint + ".step4";
        int saves = 0;
        uninterrupted.CheckpointSaved += (_, path) =>
        {
            saves++;
            // The step-8 checkpoint replaces the file; keep the step-4 one to resume from.
            if (uninterrupted.CompletedSteps == 4) File.Copy(path, midRun);
        };
        var full = uninterrupted.Train(TrainBatches()).Steps.Select(s => s.Loss).ToArray();
        Assert.Equal(2, saves);

        var (resumedModel, resumed) = Create(options with { CheckpointEvery = 0 });
        // Disturb the generator: the checkpoint must restore it.
        randn(100);
        resumed.Resume(midRun);
        Assert.Equal(4, resumed.CompletedSteps);
        Assert.Equal(4, resumed.Optimizer.StepCount);
        var rest = resumed.Train(TrainBatches()).Steps;

        Assert.Equal(new[] { 5, 6, 7, 8 }, rest.Select(s => s.Step));
        Assert.Equal(full.Skip(4), rest.Select(s => s.Loss));
        foreach (var ((name, a), (_, b)) in TrainingFixtures.AllParameters(uninterruptedModel).Zip(TrainingFixtures.AllParameters(resumedModel)))
            Assert.True(TensorHash.Of(a) == TensorHash.Of(b), name);
        Assert.DoesNotContain(Directory.GetFiles(folder), f => PeftGen.IO.AtomicFile.IsTempName(Path.GetFileName(f)));
    }

    [Fact]
    public void A_checkpoint_that_does_not_fit_is_refused_and_changes_nothing()
    {
        var (_, trainer) = Create(Options(2) with { CheckpointEvery = 2, CheckpointDirectory = folder });
        trainer.Train(TrainBatches());
        var other = new TinyCausalLm(dim: 8, seed: 1);
        var before = TrainingFixtures.AllParameters(other).Select(p => TensorHash.Of(p.Parameter)).ToArray();
        var otherTrainer = new PeftTrainer(other, TrainingFixtures.AllParameters(other), Options(2));
        var error = Assert.Throws<InvalidOperationException>(() => otherTrainer.Resume(Path.Combine(folder, TrainingCheckpoint.FileName)));
        Assert.Contains("'trainable/head' is [64, 16], the parameter [64, 8]", error.Message);
        Assert.Equal(before, TrainingFixtures.AllParameters(other).Select(p => TensorHash.Of(p.Parameter)));
    }

    [Theory]
    [InlineData(PeftGen.Precision.TrainingPrecision.Float16)]
    [InlineData(PeftGen.Precision.TrainingPrecision.BFloat16)]
    [InlineData(PeftGen.Precision.TrainingPrecision.Float32)]
    public void An_explicit_precision_the_cpu_emulates_is_warned_of_once_before_the_first_step(PeftGen.Precision.TrainingPrecision precision)
    {
        var (_, trainer) = Create(Options(2) with { Precision = precision });
        var warnings = new List<TrainingWarning>();
        trainer.Warning += (_, w) => warnings.Add(w);

        trainer.Train(TrainBatches());
        trainer.Train(TrainBatches()); // already at MaxSteps: runs nothing, says nothing again

        // This host's verdict, from the same /proc/cpuinfo the trainer reads: float32 is never warned of, float16 and
        // bfloat16 wherever the CPU lacks their instructions (float16's on every x86 CPU without AVX-512 FP16).
        string? expected = PeftGen.Precision.PrecisionSupport.SlowComputeWarning(trainer.ComputeDType, CPU);
        if (precision == PeftGen.Precision.TrainingPrecision.Float32) Assert.Null(expected);
        if (expected is null)
        {
            Assert.Empty(warnings);
        }
        else
        {
            var warning = Assert.Single(warnings);
            Assert.Equal(0, warning.Step);
            Assert.Equal(expected, warning.Message);
        }
    }

    [Fact]
    public void A_nan_batch_is_skipped_with_a_warning_and_leaves_parameters_untouched()
    {
        var inner = new TinyCausalLm(seed: 99);
        var model = new PoisonedModel(inner);
        var parameters = TrainingFixtures.AllParameters(model);
        var trainer = new PeftTrainer(model, parameters, Options(5));
        var warnings = new List<TrainingWarning>();
        trainer.Warning += (_, w) => warnings.Add(w);
        string[]? beforeBad = null, afterBad = null;
        trainer.StepCompleted += (_, s) =>
        {
            if (s.Step == 2) beforeBad = parameters.Select(p => TensorHash.Of(p.Parameter)).ToArray();
            if (s.Step == 3) afterBad = parameters.Select(p => TensorHash.Of(p.Parameter)).ToArray();
        };

        // Micro-batch 5 belongs to step 3 (accumulation 2).
        var result = trainer.Train(new PoisonedBatches(TrainBatches(), poisonedIndex: 5));

        Assert.Equal(TrainingStopReason.Completed, result.StopReason);
        Assert.Equal(1, result.SkippedSteps);
        Assert.True(result.Steps[2].Skipped && double.IsNaN(result.Steps[2].Loss));
        Assert.All(result.Steps.Where(s => s.Step != 3), s => Assert.True(double.IsFinite(s.Loss) && !s.Skipped));
        Assert.Equal(beforeBad, afterBad);
        Assert.Equal(4, trainer.Optimizer.StepCount); // five steps, one skipped
        var warning = Assert.Single(warnings);
        Assert.Equal(3, warning.Step);
        Assert.Contains("Skipped step 3", warning.Message);
    }

    [Fact]
    public void A_nan_gradient_with_a_finite_loss_is_skipped_too()
    {
        var model = new PoisonedModel(new TinyCausalLm(seed: 99));
        var parameters = TrainingFixtures.AllParameters(model);
        var trainer = new PeftTrainer(model, parameters, Options(3));
        var warnings = new List<TrainingWarning>();
        trainer.Warning += (_, w) => warnings.Add(w);
        string[]? before = null, after = null;
        trainer.StepCompleted += (_, s) =>
        {
            if (s.Step == 1) before = parameters.Select(p => TensorHash.Of(p.Parameter)).ToArray();
            if (s.Step == 2) after = parameters.Select(p => TensorHash.Of(p.Parameter)).ToArray();
        };

        var result = trainer.Train(new PoisonedBatches(TrainBatches(), poisonedIndex: 2, PoisonedModel.GradientPoisonId));

        var bad = result.Steps[1];
        Assert.True(bad.Skipped && double.IsFinite(bad.Loss) && double.IsNaN(bad.GradientNorm));
        Assert.Equal(before, after);
        Assert.Equal(2, trainer.Optimizer.StepCount);
        Assert.Equal(2, Assert.Single(warnings).Step);
    }

    [Fact]
    public void A_nan_batch_can_stop_the_run_and_the_last_checkpoint_stays_intact()
    {
        var model = new PoisonedModel(new TinyCausalLm(seed: 99));
        var options = Options(6) with { OnNonFinite = NonFiniteAction.Stop, CheckpointEvery = 2, CheckpointDirectory = folder };
        var trainer = new PeftTrainer(model, TrainingFixtures.AllParameters(model), options);
        var result = trainer.Train(new PoisonedBatches(TrainBatches(), poisonedIndex: 6));

        Assert.Equal(TrainingStopReason.NonFinite, result.StopReason);
        Assert.Equal(4, result.Steps.Count);
        var fresh = new PoisonedModel(new TinyCausalLm(seed: 99));
        var check = new PeftTrainer(fresh, TrainingFixtures.AllParameters(fresh), options);
        check.Resume(Path.Combine(folder, TrainingCheckpoint.FileName));
        Assert.Equal(2, check.CompletedSteps);
    }

    [Fact]
    public void Gradient_accumulation_equals_one_large_batch()
    {
        var examples = Train.Take(8).ToList();
        // With a huge epsilon AdamW's first update is linear in the gradient (lr·g/ε), so equal updates mean equal
        // gradients; with the default epsilon, near-zero gradients (the attention key bias) would be amplified to ±lr.
        // The 1e-4 bound is float32's: bfloat16 rounds a quarter batch's products differently from the whole batch's
        // (its own bounds are in MixedPrecisionTests).
        var linear = Options(1) with { MaxGradNorm = 0, Epsilon = 100, LearningRate = 1, WeightDecay = 0, Precision = PeftGen.Precision.TrainingPrecision.Float32 };
        var (model1, model2) = (new TinyCausalLm(dropout: 0, seed: 7), new TinyCausalLm(dropout: 0, seed: 7));
        var big = new PeftTrainer(model1, TrainingFixtures.AllParameters(model1), linear with { GradientAccumulationSteps = 1 });
        big.Train(new ExampleBatches(examples, 8, TrainingFixtures.Eos, seed: 0, shuffle: false));
        var accumulated = new PeftTrainer(model2, TrainingFixtures.AllParameters(model2), linear with { GradientAccumulationSteps = 4 });
        accumulated.Train(new ExampleBatches(examples, 2, TrainingFixtures.Eos, seed: 0, shuffle: false));
        var initial = new TinyCausalLm(dropout: 0, seed: 7);
        foreach (var (((name, a), (_, b)), (_, start)) in TrainingFixtures.AllParameters(model1).Zip(TrainingFixtures.AllParameters(model2)).Zip(TrainingFixtures.AllParameters(initial)))
        {
            // Compare the updates, not the parameters, so the check is not diluted by the weights themselves.
            Assert.True(Reference.RelativeError(b - start, a - start) < 1e-4, name);
        }
    }
}

[Collection(nameof(SerialTorchTests))]
public sealed class CheckpointFileTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-ckpt-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void A_checkpoint_is_a_safetensors_file_with_every_state_and_a_damaged_one_is_refused()
    {
        var model = new TinyCausalLm(seed: 4);
        var parameters = TrainingFixtures.AllParameters(model);
        var options = new TrainerOptions { MaxSteps = 2, CheckpointEvery = 2, CheckpointDirectory = folder };
        Directory.CreateDirectory(folder);
        // A temp file left by a crash during an earlier save is removed, never read.
        var stale = Path.Combine(folder, "." + TrainingCheckpoint.FileName + ".tmp-" + new string('0', 32));
        File.WriteAllText(stale, "half a checkpoint");
        new PeftTrainer(model, parameters, options).Train(new ExampleBatches(TrainingFixtures.CountingExamples(8, 1), 4, 0, 1));
        Assert.False(File.Exists(stale));

        var path = Path.Combine(folder, TrainingCheckpoint.FileName);
        using (var file = PeftGen.Formats.SafeTensors.SafeTensorsFile.Open(path))
        {
            Assert.Equal("2", file.Metadata["step"]);
            Assert.Equal("2", file.Metadata["optimizer_step"]);
            Assert.Contains("rng.cpu", file.Names);
            foreach (var (name, _) in parameters)
            {
                Assert.Contains("trainable/" + name, file.Names);
                Assert.Contains("adamw.exp_avg/" + name, file.Names);
                Assert.Contains("adamw.exp_avg_sq/" + name, file.Names);
            }
        }

        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var fresh = new TinyCausalLm(seed: 4);
        var trainer = new PeftTrainer(fresh, TrainingFixtures.AllParameters(fresh), options);
        var error = Assert.Throws<PeftGen.Formats.PeftFormatException>(() => trainer.Resume(path));
        Assert.Equal(Path.GetFullPath(path), Path.GetFullPath(error.FilePath!));
    }
}
