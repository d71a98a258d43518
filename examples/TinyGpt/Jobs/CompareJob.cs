using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using PeftGen.Data;
using TinyGpt.Rendering;

namespace TinyGpt.Jobs;

/// <summary>
/// The main job: pretrain (or reuse) the tiny base, fine-tune it four ways with the same data, steps and seed,
/// score each on the validation set, and report the comparison.
/// </summary>
public static class CompareJob
{
    /// <summary>Runs the comparison; returns the report.</summary>
    public static CompareReport Run(RunContext context, IReadOnlyList<Method>? methods = null)
    {
        var clock = Stopwatch.StartNew();
        var tokenizer = new Gpt2Tokenizer();
        var pretrained = PretrainJob.Run(context, tokenizer);
        var results = new List<MethodResult>();
        foreach (var method in methods ?? [Method.Full, Method.Lora, Method.QLora, Method.Prompt])
            results.Add(FineTuneJob.Run(context, method, tokenizer, pretrained.BaseFolder));

        var report = new CompareReport(
            DateTime.Now.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            $"{Environment.ProcessorCount} cores, {Environment.OSVersion}, torch threads {TorchSharp.torch.get_num_threads()}",
            Describe(context.Settings),
            pretrained.ValidationPerplexity,
            pretrained.Reused,
            results,
            clock.Elapsed.TotalSeconds);

        Reports.PrintTable(results);
        foreach (var r in results)
        {
            foreach (var s in r.Samples.Take(2))
                ConsoleReporter.Info($"{r.Method}: \"{s.Prompt}\" -> \"{s.Prediction}\" (reference: \"{s.Reference}\")");
        }
        var files = Reports.Write(context.OutputFolder, report);
        ConsoleReporter.Info($"Finished in {clock.Elapsed.TotalMinutes:F1} min. Results: {context.OutputFolder} ({string.Join(", ", files.Select(System.IO.Path.GetFileName))}).");
        return report;
    }

    private static string Describe(JobSettings s) => string.Create(CultureInfo.InvariantCulture,
        $"{(s.IsQuick ? "quick" : "default")} settings: pretrain {s.PretrainSteps} steps × {s.PretrainBatch}×{s.PretrainBlock} tokens; " +
        $"fine-tune {s.FineTuneSteps} steps × {s.FineTuneBatch} records (≤ {s.MaxRecordTokens} tokens) from {s.TrainRecords} training records; " +
        $"validation loss on {s.ValidationRecords} records, ROUGE on {s.GenerationRecords} greedy generations (≤ {s.MaxNewTokens} tokens); seed {s.Seed}.");
}
