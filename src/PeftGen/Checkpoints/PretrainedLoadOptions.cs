using System.Collections.Generic;

namespace PeftGen.Checkpoints;

/// <summary>How <see cref="PretrainedLoader"/> matches a checkpoint to a model.</summary>
public sealed record PretrainedLoadOptions
{
    /// <summary>
    /// Checkpoint tensors that are not weights and are skipped when the model has no tensor of that name:
    /// GPT-2's causal-mask buffers (<c>attn.bias</c>, <c>attn.masked_bias</c>) and Llama's rotary
    /// <c>inv_freq</c>, which older Hugging Face checkpoints store. Regular expressions over checkpoint keys.
    /// </summary>
    public static IReadOnlyList<string> NonWeightBuffers { get; } =
    [
        @"(^|\.)attn\.(bias|masked_bias)$",
        @"(^|\.)rotary_emb\.inv_freq$",
    ];

    /// <summary>The defaults: prefix detected, no tied weights, <see cref="NonWeightBuffers"/> skipped.</summary>
    public static PretrainedLoadOptions Default { get; } = new();

    /// <summary>For GPT-2-layout checkpoints: the output head is tied to the token embedding.</summary>
    /// <remarks>Ties the head both to <c>transformer.wte.weight</c> and to <c>wte.weight</c>, for models named either way.</remarks>
    public static PretrainedLoadOptions Gpt2 { get; } = new() { TiedWeights = [TiedWeight.Gpt2Head, TiedWeight.Gpt2HeadUnprefixed] };

    /// <summary>
    /// How model keys map to checkpoint keys; null (the default) detects it: of the mappings that strip one
    /// leading segment of the model's keys and/or add one leading segment of the checkpoint's, the one that finds
    /// the most model tensors wins, keys unchanged on a tie.
    /// </summary>
    public KeyPrefixMapping? KeyPrefix { get; init; }

    /// <summary>Tensors the model ties to others, which the checkpoint may omit. Ties whose source the model does not have are ignored.</summary>
    public IReadOnlyList<TiedWeight> TiedWeights { get; init; } = [];

    /// <summary>Regular expressions of checkpoint keys to skip when the model has no such tensor (not reported as unexpected).</summary>
    public IReadOnlyList<string> IgnoredKeys { get; init; } = NonWeightBuffers;
}
