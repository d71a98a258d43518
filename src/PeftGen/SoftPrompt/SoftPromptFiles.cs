using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using PeftGen.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// Hugging Face PEFT's files for a prompt-tuning adapter: <c>adapter_config.json</c>
/// (<see cref="PromptTuningAdapterConfig"/>) and <c>adapter_model.safetensors</c> holding the single tensor
/// <c>prompt_embeddings</c> (<c>N × Dim</c>), written through <see cref="PeftAdapterFiles"/>.
/// </summary>
/// <remarks>
/// Loading reads and checks everything before it touches the model: the config, the tensor file and the fit to the
/// model are checked in one pass, so a folder that does not fit fails with one <see cref="PeftFormatException"/>
/// that lists every mismatch, and the model is left exactly as it was.
/// </remarks>
public static class SoftPromptFiles
{
    private const string WeightsFileName = PeftAdapterFiles.WeightsFileName;
    private const string TensorName = PeftAdapterFiles.PromptEmbeddingsKey;

    /// <summary>The only task type PeftGen's causal LMs write.</summary>
    public const string CausalLmTask = "CAUSAL_LM";

    private static readonly string[] FloatDTypes = { "F32", "F16", "BF16", "F64" };

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
        PeftAdapterFiles.Save(folder, ConfigFor(prompt, baseModelNameOrPath, numLayers, numAttentionHeads),
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
    /// <exception cref="PeftFormatException">A file is missing, malformed or does not fit the model; nothing changed.</exception>
    public static SoftPrompt Load(TokenEmbedding embedding, string folder, string name, bool trainable = false)
    {
        ArgumentNullException.ThrowIfNull(embedding);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var existing = embedding.HasSoftPrompt(name) ? embedding.SoftPrompt(name) : null;
        if (existing is null) embedding.CheckNewSoftPromptName(name);

        var read = ReadConfig(Path.Combine(folder, PeftAdapterConfig.FileName));
        var config = read as PromptTuningAdapterConfig;
        var problems = ConfigProblems(read, embedding.Dim, existing?.VirtualTokens).Select(p => $"{PeftAdapterConfig.FileName}: {p}").ToList();

        var weightsPath = Path.Combine(folder, WeightsFileName);
        if (!File.Exists(weightsPath)) throw new PeftFormatException(weightsPath, null, "the file does not exist; a PEFT adapter folder holds its tensors there.");
        using var file = SafeTensorsFile.Open(weightsPath);
        problems.AddRange(TensorProblems(file, config?.NumVirtualTokens, embedding.Dim).Select(p => $"{WeightsFileName}: {p}"));
        if (problems.Count > 0 || config is null)
            throw new PeftFormatException(folder, null, $"the soft prompt does not fit this model ({problems.Count} problem(s)): {string.Join("; ", problems)}.");

        using var scope = NewDisposeScope();
        var values = file.Read(TensorName, embedding.Weight.device);
        using (var finite = values.isfinite().all())
        {
            if (!finite.item<bool>()) throw new PeftFormatException(weightsPath, TensorName, "the prompt holds NaN or infinite values.");
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

    private static PeftAdapterConfig ReadConfig(string path)
    {
        try
        {
            return PeftAdapterConfig.Read(path);
        }
        catch (FileNotFoundException e)
        {
            throw new PeftFormatException(path, null, "the file does not exist; a PEFT adapter folder holds its config there.", e);
        }
    }

    private static IEnumerable<string> ConfigProblems(PeftAdapterConfig read, long dim, int? virtualTokens)
    {
        if (read is not PromptTuningAdapterConfig config)
        {
            yield return $"peft_type is {(read.PeftType == PeftType.Lora ? "LORA" : read.PeftType.ToString())}, expected PROMPT_TUNING";
            yield break;
        }
        if (config.TaskType is { } task && task != CausalLmTask) yield return $"task_type is \"{task}\", expected \"{CausalLmTask}\"";
        if (virtualTokens is { } n && config.NumVirtualTokens != n)
            yield return $"num_virtual_tokens is {config.NumVirtualTokens}, but the model's prompt has {n}";
        if (config.TokenDim != dim)
            yield return $"token_dim is {Show(config.TokenDim)}, but the model's embedding width is {dim}";
        // PEFT fills a missing num_transformer_submodules from the model: 1 for a decoder-only one.
        if (config.NumTransformerSubmodules is { } submodules && submodules != 1)
            yield return $"num_transformer_submodules is {submodules}, expected 1 (a decoder-only model)";
    }

    private static IEnumerable<string> TensorProblems(SafeTensorsFile file, int? virtualTokens, long dim)
    {
        foreach (var unexpected in file.Names.Where(n => n != TensorName))
            yield return $"unexpected tensor '{unexpected}' (a prompt-tuning adapter holds only '{TensorName}')";
        if (!file.Contains(TensorName))
        {
            yield return $"tensor '{TensorName}' is missing";
            yield break;
        }
        var (dtype, shape) = file.TensorInfo(TensorName);
        if (!FloatDTypes.Contains(dtype))
            yield return $"tensor '{TensorName}' has dtype {dtype}, expected a floating type ({string.Join(", ", FloatDTypes)})";
        var rows = virtualTokens?.ToString(CultureInfo.InvariantCulture) ?? "num_virtual_tokens";
        if (shape.Length != 2 || shape[1] != dim || virtualTokens is null || shape[0] != virtualTokens)
            yield return $"tensor '{TensorName}' has shape [{string.Join(", ", shape)}], expected [{rows}, {dim}]";
    }

    private static string Show(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "missing";
}
