using System;

namespace PeftGen.Checkpoints;

/// <summary>
/// How a model's tensor keys relate to a checkpoint's: a model key that starts with <see cref="ModelPrefix"/> is
/// stored under <see cref="CheckpointPrefix"/> followed by the rest of the key; other keys are stored unchanged.
/// </summary>
/// <remarks>
/// Hugging Face's GPT-2 <c>model.safetensors</c> stores <c>h.0.attn.c_attn.weight</c> where <c>GPT2LMHeadModel</c>'s
/// state dict (and a PeftGen model that follows it) says <c>transformer.h.0.attn.c_attn.weight</c>, while
/// <c>lm_head.weight</c> keeps its name: that is <c>new KeyPrefixMapping("transformer.", "")</c>.
/// </remarks>
/// <param name="ModelPrefix">The prefix of model keys that the checkpoint replaces ("" for every key).</param>
/// <param name="CheckpointPrefix">What the checkpoint has in its place.</param>
public sealed record KeyPrefixMapping(string ModelPrefix, string CheckpointPrefix)
{
    /// <summary>Checkpoint keys equal model keys.</summary>
    public static KeyPrefixMapping Identity { get; } = new("", "");

    /// <summary>Whether keys are unchanged.</summary>
    public bool IsIdentity => ModelPrefix == CheckpointPrefix;

    /// <summary>The checkpoint key of a model key.</summary>
    public string ToCheckpoint(string modelKey)
    {
        ArgumentNullException.ThrowIfNull(modelKey);
        return modelKey.StartsWith(ModelPrefix, StringComparison.Ordinal)
            ? CheckpointPrefix + modelKey[ModelPrefix.Length..]
            : modelKey;
    }

    /// <inheritdoc />
    public override string ToString() => IsIdentity ? "keys unchanged" : $"'{ModelPrefix}…' stored as '{CheckpointPrefix}…'";
}
