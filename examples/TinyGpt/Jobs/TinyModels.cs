using System;
using System.IO;
using System.Linq;
using PeftGen;
using PeftGen.Architectures;
using PeftGen.Checkpoints;
using PeftGen.Training;
using TinyGpt.Models;
using static TorchSharp.torch;

namespace TinyGpt.Jobs;

/// <summary>Builds the tiny model of each method and loads the pretrained base into it.</summary>
public static class TinyModels
{
    /// <summary>The model class of each kind of trained folder (what <see cref="TrainedFolder"/> builds for it).</summary>
    public static TrainedModels Trained { get; } = new()
    {
        Lora = () => new TinyGptLora(),
        QuantizedLora = () => new TinyGptQLora(),
        PromptTuning = () => new TinyGptPrompt(),
        FullWeights = () => new TinyGptFull(),
    };

    /// <summary>What a method trains and saves, and whether its base is 4-bit.</summary>
    public static (TrainedKind Kind, bool Quantized) Saves(this Method method) => method switch
    {
        Method.Full => (TrainedKind.FullWeights, false),
        Method.Lora => (TrainedKind.Lora, false),
        Method.QLora => (TrainedKind.Lora, true),
        Method.Prompt => (TrainedKind.PromptTuning, false),
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    /// <summary>The method whose runs save <paramref name="kind"/> (on a 4-bit base when <paramref name="quantized"/>).</summary>
    public static Method MethodOf(TrainedKind kind, bool quantized)
        => Enum.GetValues<Method>().First(m => m.Saves() == (kind, kind == TrainedKind.Lora && quantized));

    /// <summary>A new model of the method's variant (weights random until <see cref="LoadBase"/>).</summary>
    public static Gpt2LMHeadModel Create(Method method)
    {
        var (kind, quantized) = method.Saves();
        return (Gpt2LMHeadModel)Trained.For(kind, quantized)!();
    }

    /// <summary>
    /// A new model of the method's variant whose fresh weights (LoRA's A, a soft prompt's random start) come from
    /// <paramref name="seed"/>. They are drawn from torch's default generator when the model is built, as in PEFT, and
    /// libtorch seeds that generator at random in each process: unseeded, a method's starting adapters, and so its
    /// results, would depend on the process and on what drew from the generator before it.
    /// </summary>
    public static Gpt2LMHeadModel Create(Method method, long seed)
    {
        manual_seed(seed);
        return Create(method);
    }

    /// <summary>Loads the pretrained base weights (Hugging Face layout) into any variant; adapters keep their init.</summary>
    public static void LoadBase(Gpt2LMHeadModel model, string baseFolder)
    {
        if (!File.Exists(Path.Combine(baseFolder, "model.safetensors")))
            throw new FileNotFoundException($"No pretrained base in '{baseFolder}': run the 'pretrain' command first (compare does it for you).");
        PretrainedLoader.Load((IPeftModel)model, baseFolder, PretrainedLoadOptions.Gpt2);
    }
}
