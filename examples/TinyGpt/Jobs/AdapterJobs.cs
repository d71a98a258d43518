using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using PeftGen;
using PeftGen.Architectures;
using TorchSharp;
using PeftGen.Checkpoints;
using PeftGen.Data;
using PeftGen.Metrics;
using PeftGen.Training;
using PeftGen.Formats.Peft;
using PeftGen.Formats;
using TinyGpt.Models;
using TinyGpt.Rendering;

namespace TinyGpt.Jobs;

/// <summary>Loads what a fine-tuning run saved (LoRA/QLoRA adapter, soft prompt or full model) and uses it.</summary>
public static class AdapterJobs
{
    /// <summary>Builds the right variant, loads the base and the saved folder into it.</summary>
    /// <exception cref="UserInputException">The folder is missing, malformed or does not fit the model.</exception>
    public static (Gpt2LMHeadModel Model, Method Method) Load(RunContext context, string folder, bool quantized, string baseFolder)
    {
        if (!Directory.Exists(folder)) throw new UserInputException($"The adapter folder '{folder}' does not exist.");
        TrainedKind kind;
        try
        {
            kind = AsInputError(folder, () => TrainedFolder.Detect(folder));
        }
        catch (FileNotFoundException e)
        {
            throw new UserInputException(e.Message, e);
        }
        var method = TinyModels.MethodOf(kind, quantized);
        var model = TinyModels.Create(method);
        try
        {
            // The base is ours, not the user's folder: its problems are not input errors.
            if (kind != TrainedKind.FullWeights) TinyModels.LoadBase(model, baseFolder);
            AsInputError(folder, () => TrainedFolder.LoadTrained((IPeftTrainableModel)model, folder, kind, PretrainedLoadOptions.Gpt2));
            model.to(context.Device);
            model.eval();
            return (model, method);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void AsInputError(string folder, Action read) => AsInputError(folder, () => { read(); return 0; });

    // The library's reports on a folder the user named become one-line input errors; the full report stays inside.
    private static T AsInputError<T>(string folder, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (PeftFormatException e)
        {
            throw new UserInputException($"Cannot load '{folder}': {e.Message}", e);
        }
        catch (CheckpointMismatchException e) when (e.Mismatches.Count > 0)
        {
            var more = e.Mismatches.Count > 1 ? $" And {e.Mismatches.Count - 1} more problems (--verbose lists them)." : "";
            throw new UserInputException($"'{folder}' does not fit the model: {e.Mismatches[0]}{more}", e);
        }
    }

    /// <summary>Scores a JSONL file of prompt/completion records: validation loss, perplexity and ROUGE of greedy generations.</summary>
    /// <exception cref="UserInputException">The data file, the adapter or the base cannot be used.</exception>
    public static string Evaluate(RunContext context, string adapter, string dataPath, bool quantized, string? basePath, int? limit)
    {
        // The data first: a mistake in it is reported before the model loads.
        var records = ReadRecords(dataPath);
        if (limit is int n) records = records.Take(n).ToList();
        var pretrained = BaseChoice.Resolve(context, basePath);
        var (model, method) = Load(context, adapter, quantized, pretrained.Folder);
        using var _ = model;
        var tokenizer = pretrained.Tokenizer;
        var examples = new SupervisedExamples(tokenizer, context.Settings.MaxRecordTokens);
        var encoded = examples.EncodeAll(records);
        var batches = new ExampleBatches(encoded.Examples, context.Settings.FineTuneBatch, tokenizer.EndOfSequenceId, context.Settings.Seed, shuffle: false);
        var compute = PeftGen.Precision.PrecisionSupport.ComputeDType(context.Precision, context.Device);
        double loss;
        using (PeftGen.Precision.ComputePrecision.Use(compute)) loss = ValidationLoss.Mean(model, batches, batches.BatchesPerEpoch);
        var (scores, _) = Scoring.Generate(method.Cli(), new TextGenerator(model), examples, tokenizer, records, context.Settings,
            Scoring.Decoding(context.Settings, context), loss);

        var result = new
        {
            adapter = Path.GetFullPath(adapter),
            data = Path.GetFullPath(dataPath),
            method = method.Cli(),
            records = records.Count,
            truncated = encoded.TruncatedCount,
            validation_loss = loss,
            perplexity = Perplexity.FromMeanLoss(loss),
            rouge1 = scores.Rouge1.Mean,
            rouge1_interval = new[] { scores.Rouge1.Lower, scores.Rouge1.Upper },
            rouge1_greedy = double.IsNaN(scores.GreedyRouge1) ? (double?)null : scores.GreedyRouge1,
            rouge2 = scores.Rouge2,
            rougeL = scores.RougeL,
            decoding = Scoring.Consensus(context.Settings) is { } mbr ? $"minimum Bayes risk over {mbr.Samples} samples at temperature {mbr.Temperature:R}" : "greedy",
            compute = PeftGen.Precision.PrecisionSupport.Name(compute),
        };
        var output = Path.Combine(context.OutputFolder, $"eval-{Path.GetFileNameWithoutExtension(dataPath)}.json");
        File.WriteAllText(output, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{records.Count} records: loss {loss:F4}, perplexity {result.perplexity:F2}, ROUGE-1 {result.rouge1:F4}, ROUGE-2 {result.rouge2:F4}, ROUGE-L {result.rougeL:F4}"));
        Console.WriteLine($"Scores written to {output}");
        return output;
    }

    /// <summary>The records of a JSON Lines file the user named; at least one.</summary>
    /// <exception cref="UserInputException">The file is missing, has a malformed line or holds no record.</exception>
    public static IReadOnlyList<PromptCompletion> ReadRecords(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"The data file '{path}' does not exist.");
        IReadOnlyList<PromptCompletion> records;
        try
        {
            records = TextReaders.ReadPromptCompletions(path);
        }
        catch (FormatException e)
        {
            throw new UserInputException(e.Message, e);
        }
        catch (InvalidDataException e)
        {
            // A .gz file that is not gzip.
            throw new UserInputException($"'{path}': {e.Message}", e);
        }
        if (records.Count == 0)
            throw new UserInputException($"The data file '{path}' holds no records: write one JSON object per line, {{\"prompt\": \"…\", \"completion\": \"…\"}}.");
        return records;
    }

    /// <summary>Generates a completion for one prompt.</summary>
    public static string Generate(RunContext context, string? adapter, string prompt, bool quantized, string? basePath, double temperature, int topK, int maxNewTokens)
    {
        var pretrained = BaseChoice.Resolve(context, basePath);
        Gpt2LMHeadModel model;
        if (adapter is null)
        {
            model = TinyModels.Create(Method.Full);
            TinyModels.LoadBase(model, pretrained.Folder);
            model.to(context.Device);
        }
        else
        {
            model = Load(context, adapter, quantized, pretrained.Folder).Model;
        }
        using var _ = model;
        var tokenizer = pretrained.Tokenizer;
        var examples = new SupervisedExamples(tokenizer, context.Settings.MaxRecordTokens);
        var ids = new TextGenerator(model).Generate(examples.EncodePrompt(prompt),
            Scoring.Decoding(context.Settings, context) with { MaxNewTokens = maxNewTokens, Temperature = temperature, TopK = topK, EndOfSequenceId = tokenizer.EndOfSequenceId });
        var text = tokenizer.Decode(ids).Trim();
        Console.WriteLine($"{prompt} -> {text}");
        return text;
    }
}
