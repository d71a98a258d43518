using PeftGen.Generators.Emit;

namespace PeftGen.Generators.Budget;

/// <summary>
/// Emits <c>Accounting.Estimate</c>: the training memory estimate's parts for the declared batch and sequence as
/// constants, the sizes the activation formula reads, and the formula itself for any batch and sequence, so a
/// benchmark can set each part beside a measured peak.
/// </summary>
internal static class BudgetEmitter
{
    public static void Write(SourceWriter writer, EstimateSpec estimate)
    {
        var shape = estimate.Shape;
        writer.WriteLine();
        writer.WriteLine("/// <summary>Training memory estimate in bytes for the <c>Batch</c> × <c>Sequence</c> declared on <c>[PeftModel]</c>, and its activation formula (docs/dsl.md#memory-budget).</summary>");
        writer.OpenBlock("public static class Estimate");
        Constant(writer, "Sequences per step.", "Batch", estimate.Batch);
        Constant(writer, "Tokens per sequence.", "Sequence", estimate.Sequence);
        Constant(writer, "Layers: instances of the deepest stack of projections.", "Layers", shape.Layers);
        Constant(writer, "Hidden size: the token embedding's width.", "Hidden", shape.Hidden);
        Constant(writer, "Attention heads: the configuration's <c>Heads</c>.", "Heads", shape.Heads);
        Constant(writer, "MLP width: the widest projection out of the hidden state in every layer.", "MlpWidth", shape.MlpWidth);
        Constant(writer, "Projections of the MLP width out of the hidden state (2 for a gated MLP).", "MlpInputs", shape.MlpInputs);
        Constant(writer, "Vocabulary: the token embedding's rows.", "Vocab", shape.Vocab);
        Constant(writer, "Values the active LoRA adapter saves per token over the model: rank, plus the dropout output when dropout is on.", "LoraValuesPerToken", shape.LoraValuesPerToken);
        Constant(writer, "Rows of one chunk of float32 logits of the chunked loss.", "LogitChunkRows", shape.LogitChunkRows);
        Constant(writer, "Saved values per token that do not grow with the sequence: <c>Layers·(8·Hidden + 2·MlpInputs·MlpWidth) + 3·Hidden + LoraValuesPerToken</c>.", "ValuesPerToken", shape.ValuesPerToken);
        Constant(writer, "The weights as stored (<c>Accounting.WeightBytes</c>).", "WeightBytes", estimate.Weights);
        Constant(writer, "float32 gradients of the trainable parameters.", "GradientBytes", estimate.Gradients);
        Constant(writer, "AdamW's two float32 moments of the trainable parameters.", "OptimizerBytes", estimate.Optimizer);
        Constant(writer, "Activations saved for backward, in float32, for <c>Batch</c> × <c>Sequence</c>.", "ActivationBytes", estimate.Activations);
        Constant(writer, "The largest float32 copy of a 4-bit or 16-bit base that one product makes and drops.", "TransientBytes", estimate.Transient);
        Constant(writer, "The estimate: weights, gradients, AdamW state, activations and the transient copy.", "TotalBytes", estimate.Total);
        if (estimate.BudgetBytes > 0) Constant(writer, "The declared <c>MemoryBudget</c>.", "BudgetBytes", estimate.BudgetBytes);
        writer.WriteLine();
        writer.WriteLine("/// <summary>Activation bytes for <paramref name=\"batch\"/> sequences of <paramref name=\"sequence\"/> tokens: <c>4·(b·s·ValuesPerToken + Layers·b·Heads·s²) + 4·min(b·s, LogitChunkRows)·Vocab</c>.</summary>");
        writer.WriteLine("public static long ActivationBytesFor(long batch, long sequence) => checked((4L * ((batch * sequence * ValuesPerToken) + (Layers * batch * Heads * sequence * sequence))) + (global::System.Math.Min(batch * sequence, LogitChunkRows) * Vocab * 4L));");
        writer.WriteLine();
        writer.WriteLine("/// <summary>The whole estimate for <paramref name=\"batch\"/> sequences of <paramref name=\"sequence\"/> tokens.</summary>");
        writer.WriteLine("public static long TotalBytesFor(long batch, long sequence) => checked(WeightBytes + GradientBytes + OptimizerBytes + TransientBytes + ActivationBytesFor(batch, sequence));");
        writer.CloseBlock();
    }

    private static void Constant(SourceWriter writer, string summary, string name, long value)
    {
        writer.WriteLine($"/// <summary>{summary}</summary>");
        writer.WriteLine($"public const long {name} = {Literals.Long(value)};");
    }
}
