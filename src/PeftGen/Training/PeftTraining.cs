using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Checkpoints;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// Training and saving for generated models, driven by the <see cref="TrainingPlan"/> the generator resolved: exactly
/// the compile-time trainable set trains, in weight-decay groups by layer kind, and what trained is saved in the
/// format its peers read.
/// </summary>
public static class PeftTraining
{
    /// <summary>
    /// Makes exactly the plan's parameters trainable: every parameter frozen, then the [Trainable] layers' own weights
    /// (every base weight under full fine-tuning), the plan's adapter on every projection that has it (activated), and
    /// the plan's soft prompt (activated).
    /// </summary>
    public static void ApplyTrainingPlan(this IPeftTrainableModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var plan = model.TrainingPlan;
        foreach (var (_, parameter) in PeftModelExtensions.AsModule(model).named_parameters()) parameter.requires_grad = false;
        foreach (var layer in model.Layers.Where(l => l.Trainable))
        {
            if (layer.Module is LoraLinear projection) projection.SetBaseTrainable(true);
            // Direct parameters only: soft prompts are submodules of the token embedding and follow the plan's prompt.
            else foreach (var (_, parameter) in layer.Module.named_parameters(recurse: false)) parameter.requires_grad = true;
        }
        if (plan.Adapter is { } adapter) model.SetActiveAdapter(adapter);
        if (plan.SoftPrompt is { } prompt)
        {
            var embedding = model.TokenEmbedding().Embedding;
            embedding.SetActiveSoftPrompt(prompt);
            embedding.SetSoftPromptTrainable(prompt, true);
        }
    }

    /// <summary>
    /// Applies the plan (<see cref="ApplyTrainingPlan"/>) and returns what trains in two groups: <c>decay</c>
    /// (projection and embedding matrices, LoRA's A and B) and <c>no_decay</c> (norms, biases and soft prompts), as
    /// Hugging Face's trainer groups them and PEFT trains prompts.
    /// </summary>
    /// <exception cref="InvalidOperationException">What takes gradients differs in size from the plan's compile-time
    /// count (a module the generator does not know of was made trainable, or the model was changed after it was built).</exception>
    public static IReadOnlyList<ParameterGroup> ParameterGroups(this IPeftTrainableModel model)
    {
        model.ApplyTrainingPlan();
        // Each layer parameter's group by the layer's kind. The plan unfreezes layer parameters only; should a name
        // still be missing here, the parameter decays by its shape, as PeftTrainer's default groups do.
        var decays = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var layer in model.Layers)
        {
            var norm = layer.Kind is PeftLayerKind.LayerNorm or PeftLayerKind.RmsNorm;
            foreach (var (name, _) in layer.Module.named_parameters())
                decays[layer.Path + "." + name] = !norm && name != "bias" && !name.StartsWith(SoftPromptPrefix, StringComparison.Ordinal);
        }
        var trainable = model.NamedTrainableParameters();
        var count = trainable.Sum(p => p.Parameter.numel());
        if (count != model.TrainingPlan.TrainableParameters)
            throw new InvalidOperationException(
                $"{count:N0} parameters take gradients, but the model's compile-time plan trains {model.TrainingPlan.TrainableParameters:N0}: a module the generator does not list was made trainable, or the model changed after it was built.");
        bool Decays((string Name, Parameter Parameter) p) => decays.TryGetValue(p.Name, out var byKind) ? byKind : AdamWOptimizer.Decays(p.Parameter);
        return
        [
            new(ParameterGroup.DecayName, trainable.Where(Decays).ToList(), true),
            new(ParameterGroup.NoDecayName, trainable.Where(p => !Decays(p)).ToList(), false),
        ];
    }

    /// <summary>
    /// A trainer for exactly what the model trains, as resolved at compile time (<see cref="ParameterGroups"/>): no
    /// weight decay on norms, biases and soft prompts.
    /// </summary>
    /// <param name="model">A generated model that is also an <see cref="ICausalLanguageModel"/>.</param>
    /// <param name="options">Run settings.</param>
    public static PeftTrainer CreateTrainer(this IPeftTrainableModel model, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var groups = model.ParameterGroups();
        // The model's own parameter order, as NamedTrainableParameters gives it: the gradient norm sums in that order.
        return new PeftTrainer(PeftModelExtensions.AsModule(model), model.NamedTrainableParameters(), groups, options);
    }

    /// <summary>
    /// Saves what the plan trains: the LoRA adapter in PEFT's layout (<c>adapter_config.json</c> and
    /// <c>adapter_model.safetensors</c>); the soft prompt as a PEFT prompt-tuning adapter (in the subfolder named after
    /// it when an adapter is saved as well, since both use <c>adapter_config.json</c>); and, under full fine-tuning or
    /// with [Trainable] layers, the model's weights in Hugging Face's pretrained layout.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="folder">The folder to write (created if needed).</param>
    /// <param name="options">What the files record beyond the tensors; null for the defaults.</param>
    /// <returns>The files written, relative to <paramref name="folder"/>.</returns>
    public static IReadOnlyList<string> SaveTrained(this IPeftTrainableModel model, string folder, TrainedSaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        options ??= new TrainedSaveOptions();
        var plan = model.TrainingPlan;
        var files = new List<string>();
        if (plan.FullFineTuning || model.Layers.Any(l => l.Trainable))
            files.AddRange(PretrainedSaver.Save(model, folder, options.Weights).Select(f => Path.IsPathRooted(f) ? Path.GetRelativePath(folder, f) : f));
        if (plan.Adapter is { } adapter)
        {
            model.SaveAdapter(folder, adapter, options.BaseModelNameOrPath);
            files.AddRange(AdapterFiles);
        }
        if (plan.SoftPrompt is { } prompt)
        {
            var promptFolder = plan.Adapter is null ? folder : Path.Combine(folder, prompt);
            model.SaveSoftPrompt(promptFolder, prompt, options.BaseModelNameOrPath, options.NumLayers, options.NumAttentionHeads);
            files.AddRange(AdapterFiles.Select(f => Path.GetRelativePath(folder, Path.Combine(promptFolder, f))));
        }
        return files;
    }

    private const string SoftPromptPrefix = "soft_prompts.";

    private static readonly string[] AdapterFiles = [Formats.Peft.PeftAdapterConfig.FileName, Formats.Peft.PeftAdapterFolder.WeightsFileName];
}
