namespace PeftGen.Benchmarks;

/// <summary>Shapes of a GPT-2-style model and one training batch.</summary>
public sealed record GptShape(long Vocab, long Width, long Layers, long Batch, long Sequence)
{
    public long Tokens => Batch * Sequence;
}

/// <summary>
/// Analytic matrix-product FLOPs of one training step (multiply-add = 2 FLOPs). A forward matmul costs F; its
/// backward costs F for the input gradient and F for the weight gradient, so a trained weight costs 3F and a frozen
/// one 2F (weight gradient skipped). Attention scores (QKᵀ and PV, no weights) always cost 3F. Norms, GELU, softmax,
/// embeddings and the optimizer are not counted: they are the overhead the measured ratios expose.
/// </summary>
public static class ModelFlops
{
    /// <summary>Projection FLOPs per token per layer, forward: c_attn (d→3d), c_proj (d→d), c_fc (d→4d), c_proj (4d→d).</summary>
    private static double Projections(GptShape s) => 2.0 * 12 * s.Width * s.Width;

    /// <summary>QKᵀ and PV per token per layer, forward, over the whole (unmasked) sequence as SDPA computes it on CPU.</summary>
    private static double Attention(GptShape s, long sequence) => 2.0 * 2 * sequence * s.Width;

    private static double Head(GptShape s) => 2.0 * s.Width * s.Vocab;

    /// <summary>LoRA A and B per token per layer, forward: rank × (in + out) summed over the four projections = 16·d·r.</summary>
    private static double Adapters(GptShape s, long rank) => 2.0 * rank * 16 * s.Width;

    /// <summary>Full fine-tuning: every weight (projections and the tied head) trains.</summary>
    public static double Full(GptShape s) =>
        s.Tokens * (3 * s.Layers * (Projections(s) + Attention(s, s.Sequence)) + 3 * Head(s));

    /// <summary>LoRA (and QLoRA, whose dequantization is not a matmul): frozen base and head, trained adapters.</summary>
    public static double Lora(GptShape s, long rank) =>
        s.Tokens * (s.Layers * (2 * Projections(s) + 3 * Attention(s, s.Sequence) + 3 * Adapters(s, rank)) + 2 * Head(s));

    /// <summary>
    /// Prompt tuning: everything frozen, but gradients flow back to the first position, over
    /// <paramref name="virtualTokens"/> extra positions per sequence; the head sees real tokens only.
    /// </summary>
    public static double Prompt(GptShape s, long virtualTokens)
    {
        long positions = s.Sequence + virtualTokens;
        double trunk = s.Batch * positions * s.Layers * (2 * Projections(s) + 3 * Attention(s, positions));
        return trunk + s.Tokens * 2 * Head(s);
    }
}
