using System;
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

/// <summary>Pretrains the tiny GPT on the Brown corpus, or reuses the base cached by an earlier run with the same settings.</summary>
public static class PretrainJob
{
    /// <summary>The outcome: where the base is and how good it is.</summary>
    /// <param name="BaseFolder">The base in Hugging Face layout.</param>
    /// <param name="Reused">True when the cached base was used.</param>
    /// <param name="ValidationPerplexity">Perplexity on held-out Brown documents.</param>
    /// <param name="Result">The training run, when one ran.</param>
    public sealed record Outcome(string BaseFolder, bool Reused, double ValidationPerplexity, TrainingResult? Result);

    /// <summary>Runs (or reuses) the pretraining.</summary>
    public static Outcome Run(RunContext context, ITextTokenizer tokenizer, bool force = false)
    {
        var settings = context.Settings;
        var folder = context.BaseFolder;
        var marker = Path.Combine(folder, "pretrain.json");
        if (!force && File.Exists(marker) && File.Exists(Path.Combine(folder, "model.safetensors")))
        {
            var cached = System.Text.Json.JsonSerializer.Deserialize<CachedBase>(File.ReadAllText(marker));
            ConsoleReporter.Info($"Reusing the pretrained base in {folder} (validation perplexity {cached?.ValidationPerplexity:F1}).");
            return new Outcome(folder, true, cached?.ValidationPerplexity ?? double.NaN, null);
        }

        ConsoleReporter.Stage($"Pretraining the tiny GPT ({TinyGptFull.Accounting.AllParameters:N0} parameters) on the Brown corpus");
        var train = new PackedTextBlocks(ExampleData.PretrainParagraphs(), tokenizer, settings.PretrainBlock, settings.PretrainBatch, settings.Seed);
        var valid = new PackedTextBlocks(ExampleData.PretrainValidParagraphs(), tokenizer, settings.PretrainBlock, settings.PretrainBatch, settings.Seed, shuffle: false);
        ConsoleReporter.Info($"{train.TokenCount:N0} training tokens in {train.BlockCount:N0} blocks of {settings.PretrainBlock}.");

        using var model = new TinyGptFull();
        model.to(context.Device);
        var options = new TrainerOptions
        {
            MaxSteps = settings.PretrainSteps,
            LearningRate = settings.PretrainLearningRate,
            WarmupSteps = Math.Max(1, settings.PretrainSteps / 10),
            WeightDecay = 0.1,
            Beta2 = 0.95,
            Seed = settings.Seed,
        };
        using var trainer = new PeftTrainer(model, ((IPeftModel)model).NamedTrainableParameters(), options);
        var result = ConsoleReporter.Training("pretrain", settings.PretrainSteps, progress => trainer.Train(train, progress: progress));

        var evalBatches = Math.Min(valid.BatchesPerEpoch, settings.IsQuick ? 4 : 40);
        var perplexity = Perplexity.FromMeanLoss(ValidationLoss.Mean(model, valid, evalBatches));
        ConsoleReporter.Info($"Pretrained: final loss {result.Steps[^1].Loss:F3}, held-out perplexity {perplexity:F1}.");

        var staging = folder + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        PretrainedSaver.Save(model, staging, new PretrainedSaveOptions
        {
            TiedWeights = [TiedWeight.Gpt2Head],
            Config = Gpt2Config(),
        });
        File.WriteAllText(Path.Combine(staging, "pretrain.json"), System.Text.Json.JsonSerializer.Serialize(new CachedBase(settings.PretrainKey, perplexity, result.Steps.Select(s => s.Loss).ToArray())));
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.Move(staging, folder);
        return new Outcome(folder, false, perplexity, result);
    }

    /// <summary>A GPT-2 <c>config.json</c> for the tiny dimensions, so the base is a loadable GPT-2-layout checkpoint.</summary>
    public static System.Text.Json.Nodes.JsonObject Gpt2Config() => System.Text.Json.Nodes.JsonNode.Parse($$"""
        {
          "architectures": ["GPT2LMHeadModel"],
          "model_type": "gpt2",
          "vocab_size": {{TinyConfig.Vocab}},
          "n_positions": {{TinyConfig.Context}},
          "n_embd": {{TinyConfig.Width}},
          "n_layer": {{TinyConfig.Layers}},
          "n_head": {{TinyConfig.Heads}},
          "activation_function": "gelu_new",
          "layer_norm_epsilon": 1e-05,
          "tie_word_embeddings": true,
          "torch_dtype": "float32"
        }
        """)!.AsObject();

    private sealed record CachedBase(string Settings, double ValidationPerplexity, double[] LossCurve);
}
