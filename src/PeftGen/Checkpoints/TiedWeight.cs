namespace PeftGen.Checkpoints;

/// <summary>
/// A tensor that the model ties to another, so checkpoints may omit it: <see cref="Key"/> is a copy of
/// <see cref="SourceKey"/> (both model keys, before any <see cref="KeyPrefixMapping"/>).
/// </summary>
/// <remarks>
/// When loading, an absent <see cref="Key"/> is filled from <see cref="SourceKey"/>, and a present one must equal it.
/// When saving, <see cref="Key"/> is left out, as Hugging Face does for shared tensors.
/// </remarks>
/// <param name="Key">The tied tensor, for example <c>lm_head.weight</c>.</param>
/// <param name="SourceKey">The tensor it copies, for example <c>transformer.wte.weight</c>.</param>
public sealed record TiedWeight(string Key, string SourceKey)
{
    /// <summary>GPT-2's output head, tied to its token embedding (<c>GPT2LMHeadModel</c> key names).</summary>
    public static TiedWeight Gpt2Head { get; } = new("lm_head.weight", "transformer.wte.weight");

    /// <summary>GPT-2's output head tied to its token embedding, for a model whose paths start at the transformer (<c>wte</c>, <c>h.0</c>).</summary>
    public static TiedWeight Gpt2HeadUnprefixed { get; } = new("lm_head.weight", "wte.weight");

    /// <summary>A Llama-style output head tied to its token embedding (<c>tie_word_embeddings = true</c>).</summary>
    public static TiedWeight LlamaHead { get; } = new("lm_head.weight", "model.embed_tokens.weight");
}
