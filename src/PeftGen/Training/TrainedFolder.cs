using System;
using System.IO;
using PeftGen.Checkpoints;
using PeftGen.Formats.Peft;
using PeftGen.Tokenizers;

namespace PeftGen.Training;

/// <summary>What a folder written by <see cref="PeftTraining.SaveTrained"/> (or by PEFT and transformers) holds.</summary>
public enum TrainedKind
{
    /// <summary>A LoRA adapter (<c>adapter_config.json</c> with <c>peft_type</c> LORA); it loads onto a float or a 4-bit base.</summary>
    Lora,

    /// <summary>A soft prompt (<c>adapter_config.json</c> with <c>peft_type</c> PROMPT_TUNING).</summary>
    PromptTuning,

    /// <summary>Every weight of the model in Hugging Face's layout (<c>model.safetensors</c> and no adapter config).</summary>
    FullWeights,
}

/// <summary>
/// The model classes a trained folder may be loaded into, one per kind: <see cref="TrainedFolder.Open"/> builds the
/// one that fits what the folder holds (PEFT's AutoPeftModel reads the same files to decide).
/// </summary>
public sealed record TrainedModels
{
    /// <summary>Builds the model that a LoRA adapter loads into, on a float base.</summary>
    public Func<IPeftTrainableModel>? Lora { get; init; }

    /// <summary>Builds the model that a LoRA adapter loads into on a 4-bit base (QLoRA); used when the caller asks for 4 bits.</summary>
    public Func<IPeftTrainableModel>? QuantizedLora { get; init; }

    /// <summary>Builds the model that a soft prompt loads into.</summary>
    public Func<IPeftTrainableModel>? PromptTuning { get; init; }

    /// <summary>Builds the model that full weights load into.</summary>
    public Func<IPeftTrainableModel>? FullWeights { get; init; }

    /// <summary>The factory for <paramref name="kind"/> (a LoRA adapter on a 4-bit base when <paramref name="quantized"/>), or null.</summary>
    public Func<IPeftTrainableModel>? For(TrainedKind kind, bool quantized) => kind switch
    {
        TrainedKind.Lora => quantized ? QuantizedLora : Lora,
        TrainedKind.PromptTuning => PromptTuning,
        _ => FullWeights,
    };
}

/// <summary>Opens a folder of trained results and returns the model that fits it, base and trained tensors loaded.</summary>
public static class TrainedFolder
{
    /// <summary>What <paramref name="folder"/> holds, from its files.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">It holds neither an adapter config nor <c>model.safetensors</c>.</exception>
    /// <exception cref="Formats.PeftFormatException">Its <c>adapter_config.json</c> is malformed or of another PEFT type.</exception>
    public static TrainedKind Detect(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The folder '{folder}' does not exist.");
        var configPath = Path.Combine(folder, PeftAdapterConfig.FileName);
        if (File.Exists(configPath))
        {
            return PeftAdapterConfig.Read(configPath).PeftType switch
            {
                PeftType.PromptTuning => TrainedKind.PromptTuning,
                _ => TrainedKind.Lora,
            };
        }
        if (File.Exists(Path.Combine(folder, WeightsFileName))) return TrainedKind.FullWeights;
        throw new FileNotFoundException($"'{folder}' holds neither {PeftAdapterConfig.FileName} (an adapter) nor {WeightsFileName} (a fully fine-tuned model).", Path.Combine(folder, WeightsFileName));
    }

    /// <summary>
    /// Builds the model of <paramref name="models"/> that fits what <paramref name="folder"/> holds and loads it: full
    /// weights from the folder; otherwise the base from <paramref name="baseFolder"/>, then the adapter or soft prompt
    /// into the one the model's compile-time plan trains. On any error the model is disposed and the error rethrown.
    /// </summary>
    /// <param name="folder">What training saved.</param>
    /// <param name="models">The model class for each kind.</param>
    /// <param name="baseFolder">The pretrained base (Hugging Face layout) adapters and prompts were trained on; unused for full weights.</param>
    /// <param name="quantized">Load a LoRA adapter onto the 4-bit model (<see cref="TrainedModels.QuantizedLora"/>).</param>
    /// <param name="loadOptions">How checkpoints map onto the model (<see cref="PretrainedLoadOptions.Gpt2"/> for GPT-2's tied head); null for the defaults.</param>
    /// <returns>The model and what the folder held.</returns>
    /// <exception cref="NotSupportedException"><paramref name="models"/> has no model for what the folder holds.</exception>
    public static (IPeftTrainableModel Model, TrainedKind Kind) Open(string folder, TrainedModels models, string? baseFolder, bool quantized = false, PretrainedLoadOptions? loadOptions = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        var kind = Detect(folder);
        var create = models.For(kind, quantized) ?? throw new NotSupportedException($"'{folder}' holds {Describe(kind, quantized)}, and no model class was given for it.");
        var model = create();
        try
        {
            Load(model, folder, kind, baseFolder, loadOptions);
            return (model, kind);
        }
        catch
        {
            (model as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads what <paramref name="folder"/> holds into <paramref name="model"/> (see <see cref="Open"/>): the base from
    /// <paramref name="baseFolder"/> unless the folder holds full weights, then <see cref="LoadTrained"/>.
    /// </summary>
    public static void Load(IPeftTrainableModel model, string folder, TrainedKind kind, string? baseFolder, PretrainedLoadOptions? loadOptions = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (kind != TrainedKind.FullWeights)
        {
            ArgumentException.ThrowIfNullOrEmpty(baseFolder);
            PretrainedLoader.Load(model, baseFolder, loadOptions);
        }
        LoadTrained(model, folder, kind, loadOptions);
    }

    /// <summary>
    /// Loads the trained part of <paramref name="folder"/> into a model whose base is already loaded: full weights, or
    /// the adapter or soft prompt into the one the model's compile-time plan trains.
    /// </summary>
    /// <exception cref="Formats.CheckpointMismatchException">A file is missing or does not fit the model; nothing changed.</exception>
    /// <exception cref="Formats.PeftFormatException">A file is malformed.</exception>
    public static void LoadTrained(IPeftTrainableModel model, string folder, TrainedKind kind, PretrainedLoadOptions? loadOptions = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var plan = model.TrainingPlan;
        switch (kind)
        {
            case TrainedKind.FullWeights:
                PretrainedLoader.Load(model, folder, loadOptions);
                break;
            case TrainedKind.PromptTuning:
                model.LoadSoftPrompt(folder, plan.SoftPrompt ?? throw new NotSupportedException("The model trains no soft prompt to load a prompt-tuning folder into."));
                break;
            default:
                model.LoadAdapter(folder, plan.Adapter ?? throw new NotSupportedException("The model trains no LoRA adapter to load an adapter folder into."));
                break;
        }
    }

    /// <summary>
    /// The tokenizer saved with the trained results (transformers' files, see <see cref="PretrainedTokenizer.FromFolder"/>),
    /// else the one of <paramref name="baseFolder"/>; null when neither folder holds tokenizer files.
    /// </summary>
    /// <exception cref="Formats.PeftFormatException">A tokenizer file is malformed.</exception>
    public static PretrainedTokenizer? OpenTokenizer(string folder, string? baseFolder = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (PretrainedTokenizer.HasTokenizerFiles(folder)) return PretrainedTokenizer.FromFolder(folder);
        return !string.IsNullOrEmpty(baseFolder) && PretrainedTokenizer.HasTokenizerFiles(baseFolder) ? PretrainedTokenizer.FromFolder(baseFolder) : null;
    }

    private const string WeightsFileName = "model.safetensors";

    private static string Describe(TrainedKind kind, bool quantized) => kind switch
    {
        TrainedKind.Lora => quantized ? "a LoRA adapter to load onto a 4-bit base" : "a LoRA adapter",
        TrainedKind.PromptTuning => "a soft prompt",
        _ => "full weights",
    };
}
