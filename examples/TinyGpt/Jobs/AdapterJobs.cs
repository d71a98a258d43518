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
        var (scores, predictions) = Scoring.Generate(method.Cli(), new TextGenerator(model), examples, tokenizer, records, context.Settings,
            Scoring.Decoding(context.Settings, context), loss);
        var predictionsFile = Scoring.WritePredictions(Path.Combine(context.OutputFolder, $"eval-{Path.GetFileNameWithoutExtension(dataPath)}.predictions.jsonl"), records, predictions, scores);

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
        Console.WriteLine($"Scores written to {output}, every output beside its reference to {predictionsFile}");
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

    /// <summary>
    /// Generates a completion for each request, in order: the requests that name one adapter (or none: the base) are
    /// decoded together as one left-padded batch with that adapter loaded once. Prints <c>prompt -> completion</c> lines;
    /// with <paramref name="writeFile"/> also writes <c>OUTPUT/generations.jsonl</c>.
    /// </summary>
    /// <exception cref="UserInputException">An adapter or the base cannot be used.</exception>
    public static IReadOnlyList<string> Generate(RunContext context, IReadOnlyList<GenerationRequest> requests, bool quantized, string? basePath, Sampling sampling, bool writeFile)
    {
        var pretrained = BaseChoice.Resolve(context, basePath);
        var tokenizer = pretrained.Tokenizer;
        var examples = new SupervisedExamples(tokenizer, context.Settings.MaxRecordTokens);
        var options = Scoring.Decoding(context.Settings, context) with
        {
            MaxNewTokens = sampling.MaxNewTokens,
            Temperature = sampling.Temperature,
            TopK = sampling.TopK,
            TopP = sampling.TopP,
            Seed = sampling.Seed ?? context.Settings.Seed,
            EndOfSequenceId = tokenizer.EndOfSequenceId,
        };
        var completions = new string[requests.Count];
        foreach (var group in Enumerable.Range(0, requests.Count).GroupBy(i => requests[i].Adapter, StringComparer.Ordinal))
        {
            using var model = group.Key is null ? BaseModel(context, pretrained.Folder) : Load(context, group.Key, quantized, pretrained.Folder).Model;
            var prompts = group.Select(i => (IReadOnlyList<int>)examples.EncodePrompt(requests[i].Prompt)).ToList();
            var texts = new TextGenerator(model).GenerateTexts(tokenizer, prompts, options, sampling.Stop);
            int k = 0;
            foreach (var i in group) completions[i] = texts[k++].Trim();
        }
        for (int i = 0; i < requests.Count; i++) Console.WriteLine($"{requests[i].Prompt} -> {completions[i]}");
        if (writeFile)
        {
            var path = Path.Combine(context.OutputFolder, "generations.jsonl");
            using var writer = new StreamWriter(path);
            for (int i = 0; i < requests.Count; i++)
                writer.WriteLine(JsonSerializer.Serialize(new { prompt = requests[i].Prompt, adapter = requests[i].Adapter, completion = completions[i] }));
            Console.WriteLine($"Completions written to {path}");
        }
        return completions;
    }

    private static Gpt2LMHeadModel BaseModel(RunContext context, string baseFolder)
    {
        var model = TinyModels.Create(Method.Full);
        TinyModels.LoadBase(model, baseFolder);
        model.to(context.Device);
        return model;
    }

    /// <summary>
    /// The requests of a JSON Lines file: <c>{"prompt": "…"}</c>, optionally with <c>"adapter": "folder"</c> (relative
    /// to the file's folder when not absolute); a record without one uses <paramref name="defaultAdapter"/>.
    /// </summary>
    /// <exception cref="UserInputException">The file has a malformed line, no records, or names a folder that does not exist.</exception>
    public static IReadOnlyList<GenerationRequest> ReadRequests(string path, string? defaultAdapter)
    {
        if (!File.Exists(path)) throw new UserInputException($"The input file '{path}' does not exist.");
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var requests = new List<GenerationRequest>();
        int number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string? prompt, adapter = defaultAdapter;
            try
            {
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("prompt", out var p) || p.ValueKind != JsonValueKind.String)
                    throw new UserInputException($"{path}, line {number}: expected {{\"prompt\": \"…\"}} (optionally with \"adapter\": \"folder\").");
                prompt = p.GetString()!;
                if (root.TryGetProperty("adapter", out var a) && a.ValueKind != JsonValueKind.Null)
                {
                    if (a.ValueKind != JsonValueKind.String) throw new UserInputException($"{path}, line {number}: \"adapter\" must be a folder name.");
                    adapter = Path.GetFullPath(a.GetString()!, folder);
                }
            }
            catch (JsonException e)
            {
                throw new UserInputException($"{path}, line {number}: not JSON ({e.Message})", e);
            }
            if (adapter is not null && !Directory.Exists(adapter))
                throw new UserInputException($"{path}, line {number}: the adapter folder '{adapter}' does not exist.");
            requests.Add(new GenerationRequest(prompt, adapter));
        }
        if (requests.Count == 0) throw new UserInputException($"The input file '{path}' holds no records: write one JSON object per line, {{\"prompt\": \"…\"}}.");
        return requests;
    }
}

/// <summary>One prompt to complete and the adapter folder to complete it with (null: the base).</summary>
public sealed record GenerationRequest(string Prompt, string? Adapter);

/// <summary>How <c>generate</c> picks tokens.</summary>
/// <param name="Temperature">0: greedy.</param>
/// <param name="TopK">Sample among the k most likely tokens (0: all).</param>
/// <param name="TopP">Sample among the most likely tokens making up this probability (1: all).</param>
/// <param name="Seed">Sampling seed (null: the run's).</param>
/// <param name="MaxNewTokens">Most tokens per completion.</param>
/// <param name="Stop">Texts that end a completion (cut before them).</param>
public sealed record Sampling(double Temperature, int TopK, double TopP, long? Seed, int MaxNewTokens, IReadOnlyList<string> Stop);
