using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Rendering;
using TorchSharp;

namespace TinyGpt.Jobs;

/// <summary>A row that trains nothing, against which the fine-tuned rows are read.</summary>
/// <param name="Name">The row's name.</param>
/// <param name="Description">What it answers.</param>
/// <param name="Scores">Its scores on the validation records.</param>
/// <param name="Samples">Its first outputs.</param>
public sealed record BaselineResult(string Name, string Description, Scores Scores, GeneratedSample[] Samples);

/// <summary>
/// The main job: take the shipped pretrained base (or pretrain one), fine-tune it four ways with the same data, steps
/// and seed, score each on the validation set next to two baselines, and report the comparison.
/// </summary>
public static class CompareJob
{
    /// <summary>Runs the comparison; returns the report.</summary>
    public static CompareReport Run(RunContext context, IReadOnlyList<Method>? methods = null)
    {
        var clock = Stopwatch.StartNew();
        var settings = context.Settings;
        var pretrained = BaseChoice.Resolve(context);
        var tokenizer = pretrained.Tokenizer;
        var compute = PrecisionSupport.ComputeDType(context.Precision, context.Device);
        ConsoleReporter.Info($"Base: {(pretrained.Shipped ? "the shipped base" : pretrained.Folder)} ({pretrained.Recipe.Parameters:N0} parameters, held-out perplexity {pretrained.Recipe.HeldOutPerplexity:F1}); compute {PrecisionSupport.Name(compute)} ({context.Precision}).");
        var data = FineTuneData.For(settings);

        var baselines = new List<BaselineResult> { Constant(data, context.OutputFolder), Untuned(context, pretrained, data) };
        var results = new List<MethodResult>();
        foreach (var method in methods ?? [Method.Full, Method.Lora, Method.QLora, Method.Prompt])
            results.Add(FineTuneJob.Run(context, method, tokenizer, pretrained.Folder, data));

        var constant = baselines[0].Scores;
        var againstConstant = baselines.Skip(1).Select(b => b.Scores.Against(b.Name, constant))
            .Concat(results.Select(r => r.Scores.Against(r.Method, constant))).ToList();
        var report = new CompareReport(
            DateTime.Now.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            $"{Environment.ProcessorCount} cores of {PrecisionSupport.CpuDescription}, {Environment.OSVersion}, torch threads {TorchSharp.torch.get_num_threads()}",
            Describe(settings),
            PrecisionSupport.Name(compute),
            pretrained.Recipe,
            pretrained.Shipped,
            baselines,
            results,
            againstConstant,
            clock.Elapsed.TotalSeconds);

        Reports.PrintTable(baselines, results);
        foreach (var (name, samples) in baselines.Select(b => (b.Name, b.Samples)).Concat(results.Select(r => (r.Method, r.Samples))))
        {
            foreach (var s in samples.Take(2))
                ConsoleReporter.Info($"{name}: \"{s.Prompt}\" -> \"{s.Prediction}\" (reference: \"{s.Reference}\")");
        }
        ConsoleReporter.Info(Reports.AgainstConstantLine(againstConstant));
        var files = Reports.Write(context.OutputFolder, report);
        ConsoleReporter.Info($"Finished in {clock.Elapsed.TotalMinutes:F1} min. Results: {context.OutputFolder} ({string.Join(", ", files.Select(System.IO.Path.GetFileName))}; every row's outputs in predictions-*.jsonl).");
        return report;
    }

    /// <summary>The best constant answer, chosen on the training records, given for every validation prompt.</summary>
    /// <param name="data">The run's records.</param>
    /// <param name="outputFolder">Where to write <c>predictions-constant.jsonl</c>; null writes nothing.</param>
    public static BaselineResult Constant(FineTuneData data, string? outputFolder = null)
    {
        var answer = ConstantBaseline.Choose(data.Train.Concat(data.Selection).ToList());
        var predictions = data.Valid.Select(_ => answer).ToList();
        var scores = Scoring.Of(data.Valid, predictions, double.NaN, 0);
        if (outputFolder is not null) Scoring.WritePredictions(System.IO.Path.Combine(outputFolder, "predictions-constant.jsonl"), data.Valid, predictions, scores);
        return new BaselineResult("Constant answer", $"\"{answer}\" for every prompt (chosen on the training split)",
            scores, Scoring.Samples(data.Valid, predictions));
    }

    /// <summary>The pretrained base, prompted the way fine-tuning formats records, without any training.</summary>
    public static BaselineResult Untuned(RunContext context, BaseChoice pretrained, FineTuneData data)
    {
        ConsoleReporter.Stage("Baseline: the pretrained base without fine-tuning");
        using var model = TinyModels.Create(Method.Full);
        TinyModels.LoadBase(model, pretrained.Folder);
        model.to(context.Device);
        model.eval();
        var settings = context.Settings;
        var examples = new SupervisedExamples(pretrained.Tokenizer, settings.MaxRecordTokens);
        var valid = examples.EncodeAll(data.Valid);
        var batches = new ExampleBatches(valid.Examples, settings.FineTuneBatch, pretrained.Tokenizer.EndOfSequenceId, settings.Seed, shuffle: false);
        double loss;
        using (PeftGen.Precision.ComputePrecision.Use(PrecisionSupport.ComputeDType(context.Precision, context.Device)))
            loss = ValidationLoss.Mean(model, batches, batches.BatchesPerEpoch);
        var (scores, predictions) = Scoring.Generate("base", new TextGenerator(model), examples, pretrained.Tokenizer, data.Valid, settings, Scoring.Decoding(settings, context), loss);
        Scoring.WritePredictions(System.IO.Path.Combine(context.OutputFolder, "predictions-base.jsonl"), data.Valid, predictions, scores);
        return new BaselineResult("Base, not fine-tuned", "the pretrained base continuing \"prompt\\n\"", scores, Scoring.Samples(data.Valid, predictions));
    }

    private static string Describe(JobSettings s)
    {
        var culture = CultureInfo.InvariantCulture;
        var decoding = s.DecodingSamples > 0
            ? string.Create(culture, $"minimum-Bayes-risk decoding: {s.DecodingSamples} samples per prompt at temperature {s.DecodingTemperature:R}, scoring the one with the highest mean ROUGE-1 against the other samples (greedy outputs scored too, column \"ROUGE-1 greedy\")")
            : "greedy decoding";
        return string.Create(culture,
            $"{(s.IsQuick ? "quick" : "default")} settings: fine-tune {s.FineTuneSteps} steps × {s.FineTuneBatch} records (≤ {s.MaxRecordTokens} tokens), each of {s.TrainRecords} training records once; " +
            $"checkpoint chosen by loss on {s.SelectionRecords} held-out training records ({s.Evaluations} evaluations); validation loss and ROUGE on {s.ValidationRecords} validation records, " +
            $"{decoding}, ≤ {s.MaxNewTokens} tokens, no repeated trigram, at least one token; ROUGE-1 intervals: 95 % percentile bootstrap, 2,000 resamples; seed {s.Seed}.");
    }
}
