using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Formats.Peft;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// The training glue of every generated <see cref="IPeftModel"/>: which parameters train, which adapter is active,
/// merging. It works on the generated <see cref="IPeftModel.Layers"/> list, so nothing is discovered by reflection.
/// </summary>
public static class PeftModelExtensions
{
    /// <summary>The projections of the model, with their paths.</summary>
    public static IEnumerable<(string Path, LoraLinear Layer)> Projections(this IPeftModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var layer in model.Layers)
        {
            if (layer.Module is LoraLinear projection) yield return (layer.Path, projection);
        }
    }

    /// <summary>Every LoRA adapter name on the model, in first-seen order.</summary>
    public static IReadOnlyList<string> AdapterNames(this IPeftModel model)
        => model.Projections().SelectMany(p => p.Layer.Adapters).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>The parameters that currently take gradients, with their full names.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> NamedTrainableParameters(this IPeftModel model)
        => AsModule(model).named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();

    /// <summary>The parameters that currently take gradients (what an optimizer should update).</summary>
    public static IReadOnlyList<Parameter> TrainableParameters(this IPeftModel model)
        => model.NamedTrainableParameters().Select(p => p.Parameter).ToList();

    /// <summary>
    /// Freezes everything except the active adapter of every projection, the active soft prompt and the layers
    /// marked <see cref="TrainableAttribute"/>: PEFT training.
    /// </summary>
    public static void FreezeBase(this IPeftModel model)
    {
        foreach (var (_, p) in AsModule(model).named_parameters()) p.requires_grad = false;
        foreach (var layer in model.Layers.Where(l => l.Trainable)) SetLayerTrainable(layer, true);
        foreach (var (_, projection) in model.Projections())
        {
            if (projection.ActiveAdapter is { } active) projection.SetAdapterTrainable(active, true);
        }
        foreach (var embedding in model.Layers.Select(l => l.Module).OfType<TokenEmbedding>())
        {
            if (embedding.ActiveSoftPrompt is { } prompt) embedding.SetSoftPromptTrainable(prompt, true);
        }
    }

    /// <summary>Makes every base weight trainable and adapters and soft prompts frozen: full fine-tuning of the same model.</summary>
    /// <exception cref="InvalidOperationException">A projection stores its base in 4 or 16 bits, which cannot train.</exception>
    public static void UseFullFineTuning(this IPeftModel model)
    {
        var frozen = model.Projections().Where(p => !p.Layer.Base.CanTrain).Select(p => $"{p.Path} ({(p.Layer.IsQuantized ? "4-bit" : p.Layer.Base.DType.ToString())})").ToList();
        if (frozen.Count > 0)
            throw new InvalidOperationException($"Full fine-tuning needs float32 weights, but these projections are stored in 4 or 16 bits: {string.Join(", ", frozen.Take(5))}{(frozen.Count > 5 ? ", …" : "")}.");
        foreach (var (_, p) in AsModule(model).named_parameters()) p.requires_grad = true;
        foreach (var (_, projection) in model.Projections())
        {
            foreach (var adapter in projection.Adapters) projection.SetAdapterTrainable(adapter, false);
        }
        foreach (var embedding in model.Layers.Select(l => l.Module).OfType<TokenEmbedding>())
        {
            foreach (var prompt in embedding.SoftPrompts) embedding.SetSoftPromptTrainable(prompt, false);
        }
    }

    /// <summary>Makes <paramref name="adapter"/> the active adapter of every projection that has it, and the only trainable one.</summary>
    /// <exception cref="KeyNotFoundException">No projection has an adapter of that name.</exception>
    public static void SetActiveAdapter(this IPeftModel model, string adapter)
    {
        ArgumentException.ThrowIfNullOrEmpty(adapter);
        var names = model.AdapterNames();
        if (!names.Contains(adapter, StringComparer.Ordinal))
            throw new KeyNotFoundException($"The model has no LoRA adapter named '{adapter}'. Adapters: {Describe(names)}.");
        foreach (var (_, projection) in model.Projections())
        {
            var has = projection.Adapters.Contains(adapter, StringComparer.Ordinal);
            projection.SetActiveAdapter(has ? adapter : null);
            foreach (var other in projection.Adapters) projection.SetAdapterTrainable(other, other == adapter);
        }
    }

    /// <summary>Runs the base model only until <see cref="EnableAdapters"/>.</summary>
    public static void DisableAdapters(this IPeftModel model)
    {
        foreach (var (_, projection) in model.Projections()) projection.AdaptersDisabled = true;
    }

    /// <summary>Turns the active adapters back on.</summary>
    public static void EnableAdapters(this IPeftModel model)
    {
        foreach (var (_, projection) in model.Projections()) projection.AdaptersDisabled = false;
    }

    /// <summary>
    /// Folds every projection's active adapter into its base weight (no added latency at inference).
    /// All-or-nothing: if one projection refuses, those already merged are unmerged again.
    /// </summary>
    public static void MergeAdapters(this IPeftModel model)
    {
        var merged = new List<LoraLinear>();
        try
        {
            foreach (var (path, projection) in model.Projections())
            {
                if (projection.ActiveAdapter is null) continue;
                try
                {
                    projection.Merge();
                }
                catch (InvalidOperationException e)
                {
                    throw new InvalidOperationException($"Cannot merge '{path}': {e.Message}", e);
                }
                merged.Add(projection);
            }
        }
        catch
        {
            foreach (var projection in merged) projection.Unmerge();
            throw;
        }
    }

    /// <summary>Undoes <see cref="MergeAdapters"/>.</summary>
    /// <exception cref="InvalidOperationException">Nothing is merged.</exception>
    public static void UnmergeAdapters(this IPeftModel model)
    {
        var merged = model.Projections().Where(p => p.Layer.MergedAdapter is not null).ToList();
        if (merged.Count == 0) throw new InvalidOperationException("No adapter is merged, so there is nothing to unmerge.");
        foreach (var (_, projection) in merged) projection.Unmerge();
    }

    /// <summary>
    /// The adapter's tensors under PEFT's saved key names:
    /// <c>base_model.model.{path}.lora_A.weight</c> and <c>…lora_B.weight</c> (the adapter name is not part of saved keys).
    /// </summary>
    public static Dictionary<string, Tensor> AdapterStateDict(this IPeftModel model, string adapter = SettingRules.DefaultName)
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, projection) in model.Projections())
        {
            if (!projection.Adapters.Contains(adapter, StringComparer.Ordinal)) continue;
            state[PeftAdapterFolder.LoraAKey(path)] = projection.LoraA(adapter);
            state[PeftAdapterFolder.LoraBKey(path)] = projection.LoraB(adapter);
        }
        if (state.Count == 0)
            throw new KeyNotFoundException($"The model has no LoRA adapter named '{adapter}'. Adapters: {Describe(model.AdapterNames())}.");
        return state;
    }

    /// <summary>
    /// Bytes the base weights occupy now: float weights by their dtype, 4-bit projections by their packed codes and
    /// quantization state. Adapters and soft prompts are not counted.
    /// </summary>
    public static long BaseWeightBytes(this IPeftModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long bytes = 0;
        foreach (var layer in model.Layers)
        {
            if (layer.Module is LoraLinear projection)
            {
                bytes += projection.Base.StorageBytes;
                if (projection.Bias is { } bias) bytes += Bytes(bias);
                continue;
            }
            foreach (var (_, p) in layer.Module.named_parameters(recurse: false)) bytes += Bytes(p);
        }
        return bytes;
    }

    /// <summary>
    /// Stores the base of every float projection that does not train in <paramref name="dtype"/>, one projection at a
    /// time: with bfloat16 or float16 the frozen bases take half the bytes, and a checkpoint of that dtype then loads
    /// into them as stored (PEFT users load a 7B base in bfloat16 this way). 4-bit bases and bases that train
    /// (full fine-tuning, <see cref="TrainableAttribute"/> members) are left as they are. Embeddings and norms stay as built.
    /// </summary>
    /// <returns>The paths of the projections converted.</returns>
    public static IReadOnlyList<string> ConvertFrozenBases(this IPeftModel model, BaseDType dtype)
    {
        ArgumentNullException.ThrowIfNull(model);
        var converted = new List<string>();
        foreach (var (path, projection) in model.Projections())
        {
            if (projection.Base is not FloatBaseWeight weight || weight.Parameter.requires_grad || weight.DType == dtype.ToScalarType()) continue;
            projection.ConvertBase(dtype);
            converted.Add(path);
        }
        return converted;
    }

    private static long Bytes(Tensor t) => t.numel() * t.element_size();

    internal static nn.Module AsModule(IPeftModel model) => model as nn.Module
        ?? throw new ArgumentException("A PEFT model must be a TorchSharp module.", nameof(model));

    private static void SetLayerTrainable(PeftLayer layer, bool trainable)
    {
        if (layer.Module is LoraLinear projection)
        {
            projection.SetBaseTrainable(trainable);
            return;
        }
        // Direct parameters only: soft prompts are submodules of the token embedding and train on their own.
        foreach (var (_, p) in layer.Module.named_parameters(recurse: false)) p.requires_grad = trainable;
    }

    private static string Describe(IReadOnlyList<string> names) => names.Count == 0 ? "none" : string.Join(", ", names);
}
