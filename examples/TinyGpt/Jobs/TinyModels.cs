using System;
using System.IO;
using PeftGen;
using PeftGen.Checkpoints;
using TinyGpt.Models;

namespace TinyGpt.Jobs;

/// <summary>Builds the tiny model of each method and loads the pretrained base into it.</summary>
public static class TinyModels
{
    /// <summary>A new model of the method's variant (weights random until <see cref="LoadBase"/>).</summary>
    public static GptLanguageModel Create(Method method) => method switch
    {
        Method.Full => new TinyGptFull(),
        Method.Lora => new TinyGptLora(),
        Method.QLora => new TinyGptQLora(),
        Method.Prompt => new TinyGptPrompt(),
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    /// <summary>The compile-time accounting line of the method's variant.</summary>
    public static string Summary(Method method) => method switch
    {
        Method.Full => TinyGptFull.Accounting.Summary,
        Method.Lora => TinyGptLora.Accounting.Summary,
        Method.QLora => TinyGptQLora.Accounting.Summary,
        Method.Prompt => TinyGptPrompt.Accounting.Summary,
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    /// <summary>Compile-time trainable and total parameter counts of the method's variant.</summary>
    public static (long Trainable, long All) Counts(Method method) => method switch
    {
        Method.Full => (TinyGptFull.Accounting.TrainableParameters, TinyGptFull.Accounting.AllParameters),
        Method.Lora => (TinyGptLora.Accounting.TrainableParameters, TinyGptLora.Accounting.AllParameters),
        Method.QLora => (TinyGptQLora.Accounting.TrainableParameters, TinyGptQLora.Accounting.AllParameters),
        Method.Prompt => (TinyGptPrompt.Accounting.TrainableParameters, TinyGptPrompt.Accounting.AllParameters),
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    /// <summary>Loads the pretrained base weights (Hugging Face layout) into any variant; adapters keep their init.</summary>
    public static void LoadBase(GptLanguageModel model, string baseFolder)
    {
        if (!File.Exists(Path.Combine(baseFolder, "model.safetensors")))
            throw new FileNotFoundException($"No pretrained base in '{baseFolder}': run the 'pretrain' command first (compare does it for you).");
        PretrainedLoader.Load((IPeftModel)model, baseFolder, PretrainedLoadOptions.Gpt2);
    }
}
