using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen;
using TorchSharp;
using PeftGen.Checkpoints;
using PeftGen.Data;
using PeftGen.Metrics;
using PeftGen.Training;
using TinyGpt.Models;
using TinyGpt.Rendering;

namespace TinyGpt.Jobs;

/// <summary>Everything measured for one fine-tuning method.</summary>
public sealed record MethodResult(
    string Method,
    long TrainableParameters,
    long AllParameters,
    double TrainablePercent,
    long BaseWeightBytes,
    long PeakTrainingBytes,
    double MedianStepSeconds,
    double TokensPerSecond,
    double ValidationLoss,
    double ValidationPerplexity,
    double Rouge1,
    double Rouge2,
    double RougeL,
    int TruncatedRecords,
    string AdapterFolder,
    double[] LossCurve,
    ValidationPoint[] ValidationCurve,
    GeneratedSample[] Samples);

/// <summary>Validation loss after a step.</summary>
public sealed record ValidationPoint(int Step, double Loss);

/// <summary>A generated definition next to its reference.</summary>
public sealed record GeneratedSample(string Prompt, string Reference, string Prediction);

/// <summary>Fine-tunes the pretrained base one way, evaluates it and saves what it trained.</summary>
public static class FineTuneJob
{
    /// <summary>Runs one method end to end.</summary>
    public static MethodResult Run(RunContext context, Method method, ITextTokenizer tokenizer, string baseFolder)
    {
        var settings = context.Settings;
        ConsoleReporter.Stage($"Fine-tuning: {method.Display()} — {TinyModels.Summary(method)}");

        using var model = TinyModels.Create(method);
        var peft = (IPeftModel)model;
        TinyModels.LoadBase(model, baseFolder);
        model.to(context.Device);
        var trainable = peft.NamedTrainableParameters();

        var examples = new SupervisedExamples(tokenizer, settings.MaxRecordTokens);
        var train = examples.EncodeAll(ExampleData.Sample(ExampleData.Train(), settings.TrainRecords, settings.Seed));
        var validRecords = ExampleData.Valid();
        var valid = examples.EncodeAll(validRecords.Take(settings.ValidationRecords));
        if (train.TruncatedCount > 0)
            ConsoleReporter.Info($"{train.TruncatedCount} of {train.Examples.Count} training records were longer than {settings.MaxRecordTokens} tokens and were truncated.");

        var trainBatches = new ExampleBatches(train.Examples, settings.FineTuneBatch, tokenizer.EndOfSequenceId, settings.Seed);
        var validBatches = new ExampleBatches(valid.Examples, settings.FineTuneBatch, tokenizer.EndOfSequenceId, settings.Seed, shuffle: false);
        var options = new TrainerOptions
        {
            MaxSteps = settings.FineTuneSteps,
            LearningRate = JobSettings.FineTuneLearningRate(method),
            WarmupSteps = Math.Max(1, settings.FineTuneSteps / 10),
            WeightDecay = method == Method.Full ? 0.01 : 0.0,
            Seed = settings.Seed,
            EvaluateEvery = Math.Max(1, settings.FineTuneSteps / 3),
            EvaluationBatches = (int)validBatches.BatchesPerEpoch,
        };

        ProcessMemory.TryResetPeak();
        TrainingResult result;
        using (var trainer = new PeftTrainer(model, trainable, options))
        {
            result = ConsoleReporter.Training(method.Cli(), settings.FineTuneSteps, progress => trainer.Train(trainBatches, validBatches, progress));
        }

        var validationLoss = result.Evaluations.Count > 0 ? result.Evaluations[^1].Loss : ValidationLoss.Mean(model, validBatches, validBatches.BatchesPerEpoch);
        var generationRecords = validRecords.Take(settings.GenerationRecords).ToList();
        var generator = new TextGenerator(model);
        var generation = new GenerationOptions { MaxNewTokens = settings.MaxNewTokens, Seed = settings.Seed };
        var score = ConsoleReporter.Counted($"{method.Cli()}: generating {generationRecords.Count} definitions", generationRecords.Count,
            progress => GenerationScoring.Run(generator, examples, tokenizer, generationRecords, generation, progress));

        var adapterFolder = Path.Combine(context.OutputFolder, method.Cli());
        Save(model, method, adapterFolder, BaseModelName(settings));

        var (trainableCount, allCount) = TinyModels.Counts(method);
        return new MethodResult(
            method.Display(),
            trainableCount,
            allCount,
            100.0 * trainableCount / allCount,
            peft.BaseWeightBytes(),
            result.PeakResidentBytes,
            result.MedianStepSeconds,
            result.TokensPerSecond,
            validationLoss,
            Perplexity.FromMeanLoss(validationLoss),
            score.Rouge.Rouge1,
            score.Rouge.Rouge2,
            score.Rouge.RougeL,
            train.TruncatedCount,
            adapterFolder,
            result.Steps.Select(s => s.Loss).ToArray(),
            result.Evaluations.Select(e => new ValidationPoint(e.Step, e.Loss)).ToArray(),
            generationRecords.Zip(score.Predictions, (r, p) => new GeneratedSample(r.Prompt, r.Completion, p)).Take(5).ToArray());
    }

    /// <summary>The name adapters record as <c>base_model_name_or_path</c>: the cached base of these settings.</summary>
    public static string BaseModelName(JobSettings settings) => $"tinygpt/{settings.PretrainKey}";

    /// <summary>Saves what the method trained, in the format its peers use.</summary>
    private static void Save(GptLanguageModel model, Method method, string folder, string baseModelName)
    {
        switch (model)
        {
            case TinyGptFull full:
                PretrainedSaver.Save(full, folder, new PretrainedSaveOptions { TiedWeights = [TiedWeight.Gpt2Head], Config = PretrainJob.Gpt2Config() });
                break;
            case TinyGptPrompt prompt:
                prompt.transformer.wte.SaveSoftPrompt(folder, "default", baseModelNameOrPath: baseModelName, numLayers: TinyConfig.Layers, numAttentionHeads: TinyConfig.Heads);
                break;
            case IPeftModel peft:
                peft.SaveAdapter(folder, "default", baseModelNameOrPath: baseModelName);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(method), method, null);
        }
    }
}
