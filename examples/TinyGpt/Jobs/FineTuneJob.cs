using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen;
using PeftGen.Checkpoints;
using PeftGen.Data;
using PeftGen.Metrics;
using PeftGen.Training;
using TinyGpt.Models;
using TinyGpt.Rendering;
using TorchSharp;
using static TorchSharp.torch;

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
    double LearningRate,
    int Steps,
    int TrainRecords,
    int SelectedStep,
    string ComputeDType,
    Scores Scores,
    int TruncatedRecords,
    string AdapterFolder,
    double[] LossCurve,
    ValidationPoint[] ValidationCurve,
    GeneratedSample[] Samples);

/// <summary>Loss on the selection split after a step.</summary>
public sealed record ValidationPoint(int Step, double Loss);

/// <summary>The records one run uses, split once so that every method sees exactly the same data.</summary>
/// <param name="Train">Training records: each is seen once (steps × batch of them).</param>
/// <param name="Selection">Held-out training records on which the checkpoint to score is chosen.</param>
/// <param name="Valid">
/// The records scored: valid.jsonl (all of it by default) for validation loss and ROUGE, or the selection records
/// themselves when the settings say <see cref="JobSettings.ScoreOnSelection"/>.
/// </param>
public sealed record FineTuneData(IReadOnlyList<PromptCompletion> Train, IReadOnlyList<PromptCompletion> Selection, IReadOnlyList<PromptCompletion> Valid)
{
    /// <summary>A seeded shuffle of train.jsonl.gz: the first records for selection, the next for training.</summary>
    public static FineTuneData For(JobSettings settings)
    {
        var shuffled = ExampleData.Sample(ExampleData.Train(), settings.SelectionRecords + settings.TrainRecords, settings.Seed);
        var selection = shuffled.Take(settings.SelectionRecords).ToList();
        return new FineTuneData(
            shuffled.Skip(settings.SelectionRecords).ToList(),
            selection,
            settings.ScoreOnSelection ? selection : ExampleData.Valid().Take(settings.ValidationRecords).ToList());
    }
}

/// <summary>Fine-tunes the pretrained base one way, evaluates it and saves what it trained.</summary>
public static class FineTuneJob
{
    /// <summary>The text whose token embeddings the soft prompt starts from (PEFT's text initialisation).</summary>
    public const string PromptInitText = "Give a short dictionary definition of the word in its part of speech.";

    /// <summary>Runs one method end to end.</summary>
    public static MethodResult Run(RunContext context, Method method, ITextTokenizer tokenizer, string baseFolder, FineTuneData? data = null)
    {
        var settings = context.Settings;
        data ??= FineTuneData.For(settings);
        using var model = TinyModels.Create(method, settings.Seed);
        // Every generated model knows what it trains (its TrainingPlan) and what it counts (its Accounting): the
        // trainer, the save and the report follow them.
        var peft = (IPeftTrainableModel)model;
        ConsoleReporter.Stage($"Fine-tuning: {method.Display()} — {peft.Accounting.Summary}");
        TinyModels.LoadBase(model, baseFolder);
        if (model is TinyGptPrompt prompt) InitializePromptFromText(prompt, tokenizer, PromptInitText);
        model.to(context.Device);

        var examples = new SupervisedExamples(tokenizer, settings.MaxRecordTokens);
        var train = examples.EncodeAll(data.Train);
        var selection = examples.EncodeAll(data.Selection);
        var valid = examples.EncodeAll(data.Valid);
        if (train.TruncatedCount > 0)
            ConsoleReporter.Info($"{train.TruncatedCount} of {train.Examples.Count} training records were longer than {settings.MaxRecordTokens} tokens and were truncated.");

        var trainBatches = new ExampleBatches(train.Examples, settings.FineTuneBatch, tokenizer.EndOfSequenceId, settings.Seed);
        var selectionBatches = new ExampleBatches(selection.Examples, settings.FineTuneBatch, tokenizer.EndOfSequenceId, settings.Seed, shuffle: false);
        var validBatches = new ExampleBatches(valid.Examples, settings.FineTuneBatch, tokenizer.EndOfSequenceId, settings.Seed, shuffle: false);
        double learningRate = settings.LearningRate ?? JobSettings.FineTuneLearningRate(method);
        var options = context.TrainerOptions() with
        {
            MaxSteps = settings.FineTuneSteps,
            LearningRate = learningRate,
            WarmupSteps = Math.Max(1, settings.FineTuneSteps / 10),
            WeightDecay = method == Method.Full ? 0.01 : 0.0,
            Seed = settings.Seed,
            EvaluateEvery = Math.Max(1, settings.FineTuneSteps / settings.Evaluations),
            EvaluationBatches = (int)selectionBatches.BatchesPerEpoch,
            RestoreBestEvaluation = true,
        };

        ProcessMemory.TryResetPeak();
        TrainingResult result;
        using (var trainer = peft.CreateTrainer(options))
        {
            result = ConsoleReporter.Training(method.Cli(), trainer, () => trainer.Train(trainBatches, selectionBatches));
        }
        var selected = result.RestoredEvaluation?.Step ?? result.Steps.Count;
        ConsoleReporter.Info($"{method.Cli()}: scoring the checkpoint of step {selected} (lowest loss on {data.Selection.Count} held-out training records; {result.ComputeDType} compute).");

        model.eval();
        if (settings.ScoreOnSelection)
            ConsoleReporter.Info($"{method.Cli()}: scoring on the {data.Valid.Count} held-out training records (--score-on selection): the table's validation loss and ROUGE are theirs; validation is not read.");
        var validationLoss = ValidationLoss.Mean(model, validBatches, validBatches.BatchesPerEpoch);
        var (scores, predictions) = Scoring.Generate(method.Cli(), new TextGenerator(model), examples, tokenizer, data.Valid, settings, Scoring.Decoding(settings, context), validationLoss);
        Scoring.WritePredictions(Path.Combine(context.OutputFolder, $"predictions-{method.Cli()}.jsonl"), data.Valid, predictions, scores);

        var adapterFolder = Path.Combine(context.OutputFolder, method.Cli());
        peft.SaveTrained(adapterFolder, new TrainedSaveOptions
        {
            BaseModelNameOrPath = BaseModelName,
            NumLayers = TinyConfig.Layers,
            NumAttentionHeads = TinyConfig.Heads,
            Weights = new PretrainedSaveOptions { TiedWeights = [TiedWeight.Gpt2Head], Config = PretrainJob.Gpt2Config() },
        });

        var (trainableCount, allCount) = (peft.Accounting.TrainableParameters, peft.Accounting.AllParameters);
        return new MethodResult(
            method.Display(),
            trainableCount,
            allCount,
            100.0 * trainableCount / allCount,
            peft.BaseWeightBytes(),
            result.PeakResidentBytes,
            result.MedianStepSeconds,
            result.TokensPerSecond,
            learningRate,
            result.Steps.Count,
            data.Train.Count,
            selected,
            result.ComputeDType,
            scores,
            train.TruncatedCount,
            adapterFolder,
            result.Steps.Select(s => s.Loss).ToArray(),
            result.Evaluations.Select(e => new ValidationPoint(e.Step, e.Loss)).ToArray(),
            Scoring.Samples(data.Valid, predictions));
    }

    /// <summary>
    /// Starts the soft prompt from the pretrained embeddings of <paramref name="text"/>'s tokens, repeated or cut to
    /// its length (PEFT's <c>prompt_tuning_init = TEXT</c>), through the base's own tokenizer.
    /// </summary>
    public static void InitializePromptFromText(TinyGptPrompt model, ITextTokenizer tokenizer, string text)
    {
        var embedding = model.transformer.wte;
        var prompt = embedding.SoftPrompt(TinyGptPrompt.SoftPrompts.Default);
        var textIds = tokenizer.Encode(text);
        var ids = Enumerable.Range(0, prompt.VirtualTokens).Select(i => (long)textIds[i % textIds.Count]).ToArray();
        using var _ = no_grad();
        using var index = tensor(ids, device: embedding.Weight.device);
        using var rows = embedding.Weight.index_select(0, index);
        prompt.Embeddings.copy_(rows);
    }

    /// <summary>The name adapters record as <c>base_model_name_or_path</c>: the example's Brown-pretrained tiny GPT.</summary>
    public const string BaseModelName = "tinygpt-brown";
}
