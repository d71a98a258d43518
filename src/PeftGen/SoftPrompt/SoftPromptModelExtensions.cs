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
}
