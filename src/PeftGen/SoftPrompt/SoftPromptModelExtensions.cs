using System;
using System.Collections.Generic;
using System.Linq;

namespace PeftGen;

/// <summary>
/// Soft prompt glue for every generated <see cref="IPeftModel"/>: the prompts live on the model's one
/// <see cref="PeftGen.TokenEmbedding"/>, found through <see cref="IPeftModel.Layers"/> (no reflection).
/// </summary>
public static class SoftPromptModelExtensions
{
    /// <summary>The model's token embedding, with its path.</summary>
    /// <exception cref="InvalidOperationException">The model has no token embedding, or more than one.</exception>
    public static (string Path, TokenEmbedding Embedding) TokenEmbedding(this IPeftModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var embeddings = model.Layers.Where(l => l.Module is TokenEmbedding).ToList();
        return embeddings.Count switch
        {
            1 => (embeddings[0].Path, (TokenEmbedding)embeddings[0].Module),
            0 => throw new InvalidOperationException("The model has no TokenEmbedding member, so it cannot hold soft prompts."),
            _ => throw new InvalidOperationException(
                $"The model has {embeddings.Count} token embeddings ({string.Join(", ", embeddings.Select(e => e.Path))}); soft prompts need exactly one."),
        };
    }

    /// <summary>The soft prompt names on the model, in the order they were added (empty without a token embedding).</summary>
    public static IReadOnlyList<string> SoftPromptNames(this IPeftModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Layers.Select(l => l.Module).OfType<TokenEmbedding>().SelectMany(e => e.SoftPrompts).ToList();
    }

    /// <summary>Makes a soft prompt the one calls use when no <see cref="AdapterContext"/> scope chooses (null: none).</summary>
    /// <exception cref="KeyNotFoundException">There is no prompt of that name.</exception>
    public static void SetActiveSoftPrompt(this IPeftModel model, string? name) => model.TokenEmbedding().Embedding.SetActiveSoftPrompt(name);

    /// <summary>
    /// Prompt tuning: activates <paramref name="name"/> and makes it the only trainable tensor of the model (every
    /// base weight, adapter and other prompt frozen).
    /// </summary>
    /// <exception cref="KeyNotFoundException">There is no prompt of that name.</exception>
    public static void TrainSoftPromptOnly(this IPeftModel model, string name)
    {
        var embedding = model.TokenEmbedding().Embedding;
        embedding.SetActiveSoftPrompt(name);
        foreach (var (_, parameter) in PeftModelExtensions.AsModule(model).named_parameters()) parameter.requires_grad = false;
        embedding.SetSoftPromptTrainable(name, true);
    }

    /// <summary>Writes soft prompt <paramref name="name"/> as a Hugging Face PEFT prompt-tuning adapter folder.</summary>
    /// <param name="model">The model.</param>
    /// <param name="folder">The adapter folder (created if needed).</param>
    /// <param name="name">The prompt to save.</param>
    /// <param name="baseModelNameOrPath">Written as <c>base_model_name_or_path</c>.</param>
    public static void SaveSoftPrompt(this IPeftModel model, string folder, string name = SettingRules.DefaultName, string? baseModelNameOrPath = null)
        => model.TokenEmbedding().Embedding.SaveSoftPrompt(folder, name, baseModelNameOrPath);

    /// <summary>Reads a PEFT prompt-tuning adapter folder into the model as <paramref name="name"/>; nothing changes on error.</summary>
    /// <param name="model">The model.</param>
    /// <param name="folder">A PEFT prompt-tuning adapter folder.</param>
    /// <param name="name">The prompt's name on the model.</param>
    /// <param name="trainable">Whether a newly added prompt takes gradients.</param>
    /// <exception cref="IO.PeftFormatException">A file is missing, malformed or does not fit.</exception>
    public static SoftPrompt LoadSoftPrompt(this IPeftModel model, string folder, string name = SettingRules.DefaultName, bool trainable = false)
        => model.TokenEmbedding().Embedding.LoadSoftPrompt(folder, name, trainable);
}
