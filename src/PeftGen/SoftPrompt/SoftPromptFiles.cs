using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using PeftGen.Formats;
using PeftGen.Formats.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// Hugging Face PEFT's files for a prompt-tuning adapter: <c>adapter_config.json</c>
/// (<see cref="PromptTuningAdapterConfig"/>) and <c>adapter_model.safetensors</c> holding the single tensor
/// <c>prompt_embeddings</c> (<c>N × Dim</c>), read and written through <see cref="PeftAdapterFolder"/>.
/// </summary>
/// <remarks>
/// Loading reads and checks everything before it touches the model: the folder (files present, tensors as the config
/// describes, dtypes) and the fit to the model are checked in one pass, so a folder that does not fit fails with one
/// <see cref="CheckpointMismatchException"/> that lists every mismatch, as a LoRA adapter's does, and the model is left
/// exactly as it was. A file that is malformed, or a prompt holding NaN or infinite values, is a
/// <see cref="PeftFormatException"/>.
/// </remarks>
public static class SoftPromptFiles
{
    private const string TensorName = PeftAdapterFolder.PromptEmbeddingsKey;

    /// <summary>The only task type PeftGen's causal LMs write.</summary>
    public const string CausalLmTask = "CAUSAL_LM";

    /// <summary>The config PEFT would write for <paramref name="prompt"/>.</summary>
    /// <param name="prompt">The prompt.</param>
    /// <param name="baseModelNameOrPath">Written as <c>base_model_name_or_path</c>.</param>
    /// <param name="numLayers">Written as <c>num_layers</c> (PEFT records the base model's).</param>
    /// <param name="numAttentionHeads">Written as <c>num_attention_heads</c>.</param>
    public static PromptTuningAdapterConfig ConfigFor(SoftPrompt prompt, string? baseModelNameOrPath = null, int? numLayers = null, int? numAttentionHeads = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var text = prompt.Config.Init == SoftPromptInit.Text;
        return new PromptTuningAdapterConfig
        {
            TaskType = CausalLmTask,
            BaseModelNameOrPath = baseModelNameOrPath,
            InferenceMode = true,
            NumVirtualTokens = prompt.VirtualTokens,
            TokenDim = checked((int)prompt.Dim),
            NumTransformerSubmodules = 1,
            NumLayers = numLayers,
            NumAttentionHeads = numAttentionHeads,
            Init = prompt.Config.Init,
            InitText = text ? prompt.Config.InitText : null,
            TokenizerNameOrPath = text ? prompt.TokenizerNameOrPath : null,
        };
    }

    /// <summary>Writes soft prompt <paramref name="name"/> as a Hugging Face PEFT prompt-tuning adapter folder, each file atomically.</summary>
    /// <param name="model">The model, whose one <see cref="TokenEmbedding"/> holds the prompt.</param>
    /// <param name="folder">The adapter folder (created if needed).</param>
    /// <param name="name">The prompt to save.</param>
    /// <param name="baseModelNameOrPath">Written as <c>base_model_name_or_path</c>.</param>
    /// <param name="numLayers">Written as <c>num_layers</c>.</param>
    /// <param name="numAttentionHeads">Written as <c>num_attention_heads</c>.</param>
    public static void SaveSoftPrompt(this IPeftModel model, string folder, string name = SettingRules.DefaultName, string? baseModelNameOrPath = null,
        int? numLayers = null, int? numAttentionHeads = null)
        => Save(model.TokenEmbedding().Embedding, folder, name, baseModelNameOrPath, numLayers, numAttentionHeads);

    /// <summary>Reads a PEFT prompt-tuning adapter folder into the model as <paramref name="name"/>; nothing changes on error.</summary>
    /// <param name="model">The model, whose one <see cref="TokenEmbedding"/> takes the prompt.</param>
    /// <param name="folder">A PEFT prompt-tuning adapter folder.</param>
    /// <param name="name">The prompt's name on the model.</param>
    /// <param name="trainable">Whether a newly added prompt takes gradients.</param>
    /// <exception cref="CheckpointMismatchException">A file is missing or the prompt does not fit the model.</exception>
    /// <exception cref="PeftFormatException">A file is malformed, or the prompt holds NaN or infinite values.</exception>
    public static SoftPrompt LoadSoftPrompt(this IPeftModel model, string folder, string name = SettingRules.DefaultName, bool trainable = false)
        => Load(model.TokenEmbedding().Embedding, folder, name, trainable);

    /// <summary>Writes soft prompt <paramref name="name"/> of <paramref name="embedding"/> to <paramref name="folder"/>, each file atomically.</summary>
    /// <param name="embedding">The token embedding that holds the prompt.</param>
    /// <param name="folder">The adapter folder (created if needed).</param>
    /// <param name="name">The prompt to save.</param>
    /// <param name="baseModelNameOrPath">Written as <c>base_model_name_or_path</c>.</param>
    /// <param name="numLayers">Written as <c>num_layers</c>.</param>
    /// <param name="numAttentionHeads">Written as <c>num_attention_heads</c>.</param>
    public static void Save(TokenEmbedding embedding, string folder, string name, string? baseModelNameOrPath = null, int? numLayers = null, int? numAttentionHeads = null)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var prompt = embedding.SoftPrompt(name);
        using var values = prompt.Embeddings.detach();
        PeftAdapterFolder.Save(folder, ConfigFor(prompt, baseModelNameOrPath, numLayers, numAttentionHeads),
            new Dictionary<string, Tensor> { [TensorName] = values });
    }

    /// <summary>
    /// Reads the prompt in <paramref name="folder"/> into <paramref name="embedding"/> as <paramref name="name"/>:
    /// into the existing prompt of that name (same N required), or as a new prompt (active if it is the first).
    /// </summary>
    /// <param name="embedding">The token embedding to load into.</param>
    /// <param name="folder">A PEFT prompt-tuning adapter folder.</param>
    /// <param name="name">The prompt's name on the model.</param>
    /// <param name="trainable">Whether a newly added prompt takes gradients (PEFT loads for inference by default).</param>
    /// <returns>The prompt that now holds the file's values.</returns>
    /// <exception cref="CheckpointMismatchException">A file is missing or the prompt does not fit the model; nothing changed.</exception>
    /// <exception cref="PeftFormatException">A file is malformed, or the prompt holds NaN or infinite values; nothing changed.</exception>
    public static SoftPrompt Load(TokenEmbedding embedding, string folder, string name, bool trainable = false)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var existing = embedding.HasSoftPrompt(name) ? embedding.SoftPrompt(name) : null;
        if (existing is null) embedding.CheckNewSoftPromptName(name);

        using var adapter = PeftAdapterFolder.Open(folder, ReadMode.Collecting);
        var problems = new List<CheckpointMismatch>(adapter.Problems);
        if (adapter.Config is { } read) problems.AddRange(ConfigProblems(read, embedding.Dim, existing?.VirtualTokens));
        var config = adapter.Config as PromptTuningAdapterConfig;
        if (config is not null && adapter.Weights is { } weights && weights.Contains(TensorName) && !problems.Any(p => p.Key == TensorName))
        {
            var shape = weights.TensorInfo(TensorName).Shape;
            if (!shape.SequenceEqual(new[] { config.NumVirtualTokens, embedding.Dim }))
                problems.Add(new(CheckpointMismatchKind.WrongShape, TensorName,
                    $"file [{string.Join(", ", shape)}], model [{config.NumVirtualTokens}, {embedding.Dim}]."));
        }
        if (problems.Count > 0 || config is null) throw new CheckpointMismatchException(folder, problems);

        using var scope = NewDisposeScope();
        var values = adapter.Weights!.Read(TensorName, embedding.Weight.device);
        using (var finite = values.isfinite().all())
        {
            if (!finite.item<bool>()) throw new PeftFormatException(adapter.Weights.FilePath, TensorName, "the prompt holds NaN or infinite values.");
        }
        values = values.to(existing?.Embeddings.dtype ?? SoftPrompt.StorageType(embedding.Weight.dtype));

        if (existing is not null)
        {
            using (no_grad()) existing.Embeddings.copy_(values);
            return existing;
        }
        var promptConfig = new SoftPromptConfig(config.NumVirtualTokens, config.Init, config.InitText ?? "",
            config.Init == SoftPromptInit.Text ? PromptTokenizer.FromHubName(config.TokenizerNameOrPath) : PeftTokenizer.None);
        var prompt = new SoftPrompt(promptConfig, values, config.TokenizerNameOrPath);
        prompt.Embeddings.requires_grad = trainable;
        embedding.AddSoftPrompt(name, prompt);
        return prompt;
    }

    private static IEnumerable<CheckpointMismatch> ConfigProblems(PeftAdapterConfig read, long dim, int? virtualTokens)
    {
        if (read is not PromptTuningAdapterConfig config)
        {
            yield return Config("peft_type", $"{(read.PeftType == PeftType.Lora ? "LORA" : read.PeftType.ToString())} in the file; a soft prompt loads from PROMPT_TUNING.");
            yield break;
        }
        if (config.TaskType is { } task && task != CausalLmTask) yield return Config("task_type", $"\"{task}\" in the file; PeftGen's models are \"{CausalLmTask}\".");
        if (virtualTokens is { } n && config.NumVirtualTokens != n)
            yield return Config("num_virtual_tokens", $"{config.NumVirtualTokens} in the file, but the model's prompt has {n}.");
        if (config.TokenDim != dim)
            yield return Config("token_dim", $"{Show(config.TokenDim)} in the file, but the model's embedding width is {dim}.");
        // PEFT fills a missing num_transformer_submodules from the model: 1 for a decoder-only one.
        if (config.NumTransformerSubmodules is { } submodules && submodules != 1)
            yield return Config("num_transformer_submodules", $"{submodules} in the file; a decoder-only model has 1.");
    }

    private static CheckpointMismatch Config(string field, string detail) => new(CheckpointMismatchKind.Config, field, detail);

    private static string Show(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "missing";
}
