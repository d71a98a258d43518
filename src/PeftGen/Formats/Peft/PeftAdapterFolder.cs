using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Formats.SafeTensors;
using PeftGen.Formats;
using static TorchSharp.torch;

namespace PeftGen.Formats.Peft;

/// <summary>
/// An adapter folder as Hugging Face PEFT saves it: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c>
/// holding the adapter tensors only, under PEFT's key names. The one reader (and writer) of adapter folders, for LoRA
/// and prompt tuning alike: <see cref="LoraAdapterFiles"/> and <see cref="SoftPromptFiles"/> open it, then check the fit to the model.
/// </summary>
/// <remarks>
/// <para>What is wrong with a folder is a <see cref="CheckpointMismatch"/>, the same kinds a pretrained checkpoint
/// reports: a missing file (<see cref="CheckpointMismatchKind.File"/>), a tensor that is not part of the adapter the
/// config describes (<see cref="CheckpointMismatchKind.Unexpected"/>), one it lacks
/// (<see cref="CheckpointMismatchKind.Missing"/>), a shape that contradicts the config
/// (<see cref="CheckpointMismatchKind.WrongShape"/>) and a dtype outside <see cref="LoadableDTypes"/>
/// (<see cref="CheckpointMismatchKind.WrongDType"/>). <see cref="ReadMode.Strict"/> throws them together in one
/// <see cref="CheckpointMismatchException"/>; <see cref="ReadMode.Collecting"/> keeps them in <see cref="Problems"/>
/// so a loader reports them with the model's own mismatches. Malformed bytes (a config that is not valid JSON or not a
/// supported adapter, a safetensors file that is not valid) are a <see cref="PeftFormatException"/> in both modes.</para>
/// <para>One dtype policy for every adapter tensor: any floating dtype safetensors stores (<c>F32</c>, <c>F16</c>,
/// <c>BF16</c>, <c>F64</c>), converted to the dtype of the parameter it loads into.</para>
/// </remarks>
public sealed class PeftAdapterFolder : IDisposable
{
    /// <summary>The weights file name PEFT uses.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>The key of a prompt-tuning adapter's single tensor.</summary>
    public const string PromptEmbeddingsKey = "prompt_embeddings";

    private const string Prefix = "base_model.model.";

    /// <summary>The safetensors dtypes an adapter tensor may be stored in (converted on load to its parameter's dtype).</summary>
    public static readonly IReadOnlyList<string> LoadableDTypes = ["F32", "F16", "BF16", "F64"];

    private readonly List<CheckpointMismatch> problems;

    private PeftAdapterFolder(string folder, PeftAdapterConfig? config, SafeTensorsFile? weights, List<CheckpointMismatch> problems)
    {
        Folder = folder;
        Config = config;
        Weights = weights;
        this.problems = problems;
    }

    /// <summary>The adapter folder.</summary>
    public string Folder { get; }

    /// <summary>The parsed <c>adapter_config.json</c>; null only when it is missing (collecting mode).</summary>
    public PeftAdapterConfig? Config { get; }

    /// <summary>The open <c>adapter_model.safetensors</c>; null only when it is missing (collecting mode).</summary>
    public SafeTensorsFile? Weights { get; }

    /// <summary>With <see cref="ReadMode.Collecting"/>, every problem found (empty when none); always empty in strict mode.</summary>
    public IReadOnlyList<CheckpointMismatch> Problems => problems;

    /// <summary>PEFT's key for LoRA's A matrix (<c>r × In</c>) of the module at <paramref name="modulePath"/>.</summary>
    /// <param name="modulePath">The module path in the base model, e.g. <c>transformer.h.0.attn.c_attn</c>.</param>
    /// <returns><c>base_model.model.{modulePath}.lora_A.weight</c>.</returns>
    public static string LoraAKey(string modulePath) => Prefix + modulePath + ".lora_A.weight";

    /// <summary>PEFT's key for LoRA's B matrix (<c>Out × r</c>) of the module at <paramref name="modulePath"/>.</summary>
    /// <param name="modulePath">The module path in the base model.</param>
    /// <returns><c>base_model.model.{modulePath}.lora_B.weight</c>.</returns>
    public static string LoraBKey(string modulePath) => Prefix + modulePath + ".lora_B.weight";

    /// <summary>Whether an adapter tensor stored in <paramref name="dtype"/> (a safetensors dtype name) loads.</summary>
    public static bool IsLoadable(string dtype) => LoadableDTypes.Contains(dtype);

    /// <summary>Saves an adapter folder: the weights (with PEFT's <c>{"format": "pt"}</c> metadata), then the config, each atomically.</summary>
    /// <param name="folder">The adapter folder; created if missing.</param>
    /// <param name="config">The adapter config.</param>
    /// <param name="tensors">The adapter tensors under PEFT's keys; checked against <paramref name="config"/> first.</param>
    /// <exception cref="ArgumentException">The tensors do not match the config (the message lists every problem).</exception>
    public static void Save(string folder, PeftAdapterConfig config, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        var problems = Check(config, tensors.ToDictionary(t => t.Key, t => (SafeTensorsDType.NameOf(t.Value.dtype), t.Value.shape), StringComparer.Ordinal));
        if (problems.Count > 0)
            throw new ArgumentException("The adapter tensors do not match the config: " + string.Join("; ", problems) + ".", nameof(tensors));
        config.Validate();
        Directory.CreateDirectory(folder);
        SafeTensorsFile.Save(Path.Combine(folder, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        config.Write(Path.Combine(folder, PeftAdapterConfig.FileName));
    }

    /// <summary>
    /// Opens an adapter folder: reads the config, opens the weights file (its header only) and checks that the tensors
    /// are what the config describes.
    /// </summary>
    /// <param name="folder">The adapter folder.</param>
    /// <param name="mode">Whether problems are thrown (strict) or collected in <see cref="Problems"/>.</param>
    /// <returns>The open folder; dispose it to close the weights file.</returns>
    /// <exception cref="CheckpointMismatchException">Strict mode: a file is missing or the tensors do not fit the config.</exception>
    /// <exception cref="PeftFormatException">The config or the weights file is malformed.</exception>
    public static PeftAdapterFolder Open(string folder, ReadMode mode = ReadMode.Strict)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var problems = new List<CheckpointMismatch>();
        var configPath = Path.Combine(folder, PeftAdapterConfig.FileName);
        var weightsPath = Path.Combine(folder, WeightsFileName);
        PeftAdapterConfig? config = null;
        if (File.Exists(configPath)) config = PeftAdapterConfig.Read(configPath);
        else problems.Add(new(CheckpointMismatchKind.File, "", $"'{configPath}' does not exist; a PEFT adapter folder holds its config there."));
        SafeTensorsFile? weights = null;
        if (File.Exists(weightsPath))
        {
            weights = SafeTensorsFile.Open(weightsPath);
        }
        else
        {
            var hint = File.Exists(Path.Combine(folder, "adapter_model.bin"))
                ? " The folder has adapter_model.bin, a pickle file, which PeftGen never reads."
                : "";
            problems.Add(new(CheckpointMismatchKind.File, "", $"'{weightsPath}' does not exist; a PEFT adapter folder holds its tensors there.{hint}"));
        }
        if (config is not null && weights is not null)
            problems.AddRange(Check(config, weights.Names.ToDictionary(n => n, n => (weights.TensorInfo(n).DType, weights.TensorInfo(n).Shape), StringComparer.Ordinal)));
        if (problems.Count > 0 && mode == ReadMode.Strict)
        {
            weights?.Dispose();
            throw new CheckpointMismatchException(folder, problems);
        }
        return new PeftAdapterFolder(folder, config, weights, problems);
    }

    /// <summary>Reads a strictly valid adapter folder whole.</summary>
    /// <param name="folder">The adapter folder.</param>
    /// <param name="device">Where the tensors go; the CPU when <see langword="null"/>.</param>
    /// <returns>The config and the tensors by PEFT key (owned by the caller).</returns>
    /// <exception cref="CheckpointMismatchException">A file is missing or the tensors do not fit the config.</exception>
    /// <exception cref="PeftFormatException">A file is malformed.</exception>
    public static (PeftAdapterConfig Config, Dictionary<string, Tensor> Tensors) Load(string folder, Device? device = null)
    {
        using var open = Open(folder);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var name in open.Weights!.Names) tensors.Add(name, open.Weights.Read(name, device));
        }
        catch
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw;
        }
        return (open.Config!, tensors);
    }

    /// <summary>Closes the weights file.</summary>
    public void Dispose() => Weights?.Dispose();

    // Whether the tensors (safetensors dtype name and shape by key) are what the config describes.
    private static List<CheckpointMismatch> Check(PeftAdapterConfig config, IReadOnlyDictionary<string, (string DType, long[] Shape)> tensors)
    {
        var shapes = tensors.ToDictionary(t => t.Key, t => t.Value.Shape, StringComparer.Ordinal);
        var problems = config switch
        {
            LoraAdapterConfig lora => CheckLora(lora, shapes),
            PromptTuningAdapterConfig prompt => CheckPrompt(prompt, shapes),
            _ => throw new NotSupportedException($"Unknown adapter config type {config.GetType().Name}."),
        };
        foreach (var (name, (dtype, _)) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (!IsLoadable(dtype))
                problems.Add(new(CheckpointMismatchKind.WrongDType, name, $"{dtype} is not a floating dtype an adapter loads from ({string.Join(", ", LoadableDTypes)})."));
        }
        return problems;
    }

    private static List<CheckpointMismatch> CheckPrompt(PromptTuningAdapterConfig config, IReadOnlyDictionary<string, long[]> shapes)
    {
        var problems = new List<CheckpointMismatch>();
        foreach (var name in shapes.Keys.Order(StringComparer.Ordinal))
        {
            if (name != PromptEmbeddingsKey)
                problems.Add(new(CheckpointMismatchKind.Unexpected, name, $"not part of a prompt-tuning adapter (only '{PromptEmbeddingsKey}' is)."));
        }
        if (!shapes.TryGetValue(PromptEmbeddingsKey, out var shape))
        {
            problems.Add(new(CheckpointMismatchKind.Missing, PromptEmbeddingsKey, "a prompt-tuning adapter holds its virtual token embeddings there."));
            return problems;
        }
        var rows = (long)config.NumVirtualTokens * (config.NumTransformerSubmodules ?? 1);
        if (shape.Length != 2 || shape[0] != rows || (config.TokenDim is { } dim && shape[1] != dim))
            problems.Add(new(CheckpointMismatchKind.WrongShape, PromptEmbeddingsKey,
                $"the file has [{string.Join(", ", shape)}] but the config says [{rows}, {config.TokenDim?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "token_dim"}]."));
        return problems;
    }

    private static List<CheckpointMismatch> CheckLora(LoraAdapterConfig config, IReadOnlyDictionary<string, long[]> shapes)
    {
        var problems = new List<CheckpointMismatch>();
        var modules = new SortedDictionary<string, (long[]? A, long[]? B)>(StringComparer.Ordinal);
        foreach (var (name, shape) in shapes)
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal))
            {
                problems.Add(new(CheckpointMismatchKind.Unexpected, name, $"does not start with '{Prefix}' as PEFT's keys do."));
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
                problems.Add(new(CheckpointMismatchKind.Unexpected, name, "neither a lora_A/lora_B weight nor part of modules_to_save or a trained bias."));
            }
        }
        foreach (var (module, (a, b)) in modules)
        {
            if (a is null || b is null)
            {
                var missing = a is null ? LoraAKey(module) : LoraBKey(module);
                problems.Add(new(CheckpointMismatchKind.Missing, missing, "its partner is present."));
                continue;
            }
            var rank = RankOf(config, module);
            if (a.Length != 2 || b.Length != 2 || a[0] != rank || b[1] != rank)
                problems.Add(new(CheckpointMismatchKind.WrongShape, LoraAKey(module), $"module '{module}' has lora_A [{string.Join(", ", a)}] and lora_B [{string.Join(", ", b)}] but the config says rank {rank}."));
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
