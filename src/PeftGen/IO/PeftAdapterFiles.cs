using System;
using System.Collections.Generic;
using System.IO;
using static TorchSharp.torch;

namespace PeftGen.IO;

/// <summary>
/// An adapter folder as Hugging Face PEFT saves it: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c>
/// holding the adapter tensors only, under PEFT's key names.
/// </summary>
public static class PeftAdapterFiles
{
    /// <summary>The weights file name PEFT uses.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>The key of a prompt-tuning adapter's single tensor.</summary>
    public const string PromptEmbeddingsKey = "prompt_embeddings";

    private const string Prefix = "base_model.model.";

    /// <summary>PEFT's key for LoRA's A matrix (<c>r × In</c>) of the module at <paramref name="modulePath"/>.</summary>
    /// <param name="modulePath">The module path in the base model, e.g. <c>transformer.h.0.attn.c_attn</c>.</param>
    /// <returns><c>base_model.model.{modulePath}.lora_A.weight</c>.</returns>
    public static string LoraAKey(string modulePath) => Prefix + modulePath + ".lora_A.weight";

    /// <summary>PEFT's key for LoRA's B matrix (<c>Out × r</c>) of the module at <paramref name="modulePath"/>.</summary>
    /// <param name="modulePath">The module path in the base model.</param>
    /// <returns><c>base_model.model.{modulePath}.lora_B.weight</c>.</returns>
    public static string LoraBKey(string modulePath) => Prefix + modulePath + ".lora_B.weight";

    /// <summary>Saves an adapter folder: the weights (with PEFT's <c>{"format": "pt"}</c> metadata), then the config.</summary>
    /// <param name="folder">The adapter folder; created if missing.</param>
    /// <param name="config">The adapter config.</param>
    /// <param name="tensors">The adapter tensors under PEFT's keys; checked against <paramref name="config"/> first.</param>
    /// <exception cref="ArgumentException">The tensors do not match the config (the message lists every problem).</exception>
    public static void Save(string folder, PeftAdapterConfig config, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
            shapes[name] = tensor.shape;
        var problems = Check(config, shapes);
        if (problems.Count > 0)
            throw new ArgumentException("The adapter tensors do not match the config: " + string.Join("; ", problems) + ".", nameof(tensors));
        config.Validate();
        Directory.CreateDirectory(folder);
        SafeTensors.Save(Path.Combine(folder, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        config.Write(Path.Combine(folder, PeftAdapterConfig.FileName));
    }

    /// <summary>Reads an adapter folder and checks that its tensors fit its config.</summary>
    /// <param name="folder">The adapter folder.</param>
    /// <param name="device">Where the tensors go; the CPU when <see langword="null"/>.</param>
    /// <returns>The config and the tensors by PEFT key (owned by the caller).</returns>
    /// <exception cref="PeftFormatException">A file is malformed, or the tensors do not fit the config.</exception>
    public static (PeftAdapterConfig Config, Dictionary<string, Tensor> Tensors) Load(string folder, Device? device = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var config = PeftAdapterConfig.Read(Path.Combine(folder, PeftAdapterConfig.FileName));
        var weights = Path.Combine(folder, WeightsFileName);
        if (!File.Exists(weights))
        {
            var hint = File.Exists(Path.Combine(folder, "adapter_model.bin"))
                ? " The folder has adapter_model.bin, a pickle file, which PeftGen never reads."
                : "";
            throw new PeftFormatException(weights, null, "the adapter weights file is missing." + hint);
        }
        using (var file = SafeTensorsFile.Open(weights))
        {
            var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
            foreach (var name in file.Names)
                shapes[name] = file.TensorInfo(name).Shape;
            var problems = Check(config, shapes);
            if (problems.Count > 0)
                throw new PeftFormatException(weights, problems[0].Tensor, "the tensors do not match adapter_config.json: " + string.Join("; ", problems.ConvertAll(p => p.Problem)) + ".");
        }
        return (config, SafeTensors.Load(weights, device));
    }

    private static List<(string Tensor, string Problem)> Check(PeftAdapterConfig config, IReadOnlyDictionary<string, long[]> shapes) => config switch
    {
        LoraAdapterConfig lora => CheckLora(lora, shapes),
        PromptTuningAdapterConfig prompt => CheckPrompt(prompt, shapes),
        _ => throw new NotSupportedException($"Unknown adapter config type {config.GetType().Name}."),
    };

    private static List<(string, string)> CheckPrompt(PromptTuningAdapterConfig config, IReadOnlyDictionary<string, long[]> shapes)
    {
        var problems = new List<(string, string)>();
        foreach (var name in shapes.Keys)
        {
            if (name != PromptEmbeddingsKey)
                problems.Add((name, $"'{name}' is not part of a prompt-tuning adapter (only '{PromptEmbeddingsKey}' is)"));
        }
        if (!shapes.TryGetValue(PromptEmbeddingsKey, out var shape))
        {
            problems.Add((PromptEmbeddingsKey, $"'{PromptEmbeddingsKey}' is missing"));
            return problems;
        }
        var rows = (long)config.NumVirtualTokens * (config.NumTransformerSubmodules ?? 1);
        if (shape.Length != 2 || shape[0] != rows || (config.TokenDim is { } dim && shape[1] != dim))
            problems.Add((PromptEmbeddingsKey, $"'{PromptEmbeddingsKey}' has shape [{string.Join(", ", shape)}] but the config says [{rows}, {config.TokenDim?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "token_dim"}]"));
        return problems;
    }

    private static List<(string, string)> CheckLora(LoraAdapterConfig config, IReadOnlyDictionary<string, long[]> shapes)
    {
        var problems = new List<(string, string)>();
        var modules = new SortedDictionary<string, (long[]? A, long[]? B)>(StringComparer.Ordinal);
        foreach (var (name, shape) in shapes)
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal))
            {
                problems.Add((name, $"'{name}' does not start with '{Prefix}' as PEFT's keys do"));
                continue;
            }
            if (name.EndsWith(".lora_A.weight", StringComparison.Ordinal))
            {
                var module = name[Prefix.Length..^".lora_A.weight".Length];
                modules[module] = (shape, modules.GetValueOrDefault(module).B);
            }
            else if (name.EndsWith(".lora_B.weight", StringComparison.Ordinal))
            {
                var module = name[Prefix.Length..^".lora_B.weight".Length];
                modules[module] = (modules.GetValueOrDefault(module).A, shape);
            }
            else if (!IsSavedModule(config, name))
            {
                problems.Add((name, $"'{name}' is neither a lora_A/lora_B weight nor part of modules_to_save or a trained bias"));
            }
        }
        foreach (var (module, (a, b)) in modules)
        {
            if (a is null || b is null)
            {
                var missing = a is null ? LoraAKey(module) : LoraBKey(module);
                problems.Add((missing, $"'{missing}' is missing (its partner is present)"));
                continue;
            }
            var rank = RankOf(config, module);
            if (a.Length != 2 || b.Length != 2 || a[0] != rank || b[1] != rank)
                problems.Add((LoraAKey(module), $"module '{module}' has lora_A [{string.Join(", ", a)}] and lora_B [{string.Join(", ", b)}] but rank {rank}"));
        }
        return problems;
    }

    // PEFT's rank_pattern keys match a module path exactly or as a dotted suffix.
    private static int RankOf(LoraAdapterConfig config, string module)
    {
        foreach (var (pattern, rank) in config.RankPattern)
        {
            if (module == pattern || module.EndsWith("." + pattern, StringComparison.Ordinal))
                return rank;
        }
        return config.Rank;
    }

    private static bool IsSavedModule(LoraAdapterConfig config, string name)
    {
        if (config.Bias != "none" && name.EndsWith(".bias", StringComparison.Ordinal))
            return true;
        if (config.ModulesToSave is null)
            return false;
        var path = name[Prefix.Length..];
        foreach (var module in config.ModulesToSave)
        {
            if (path.StartsWith(module + ".", StringComparison.Ordinal) || path.Contains("." + module + ".", StringComparison.Ordinal))
                return true;
        }
        return false;
    }
}
