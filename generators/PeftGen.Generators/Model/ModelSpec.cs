using PeftGen.Generators.Accounting;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Lora;
using PeftGen.Generators.Quantization;

namespace PeftGen.Generators.Model;

/// <summary>One adapter on one resolved projection.</summary>
/// <param name="Parameters">Its parameters per instance: <c>rank × (In + Out)</c>.</param>
/// <param name="FromModel">A model-class adapter on a block's projection: the model's constructor adds it, by path
/// (the block's own constructor adds the others).</param>
internal sealed record ResolvedAdapter(AdapterSpec Adapter, long Parameters, bool FromModel)
{
    public string Name => Adapter.Name;
}

/// <summary>
/// One layer member of a model, resolved once against the model: what it is, how many instances exist, which
/// adapters and which 4-bit setting apply, whether its own weights train. The accounting and the model's emitter both
/// read this list; nothing decides "what applies here" again.
/// </summary>
/// <param name="Path">Checkpoint path with <c>*</c> for stack indices: <c>h.*.attn.c_attn</c>.</param>
/// <param name="Instances">How many times the member exists in the model (a member of a 12-block stack has 12).</param>
/// <param name="BaseParameters">Parameters of the layer's own weights, per instance.</param>
/// <param name="QuantizedValues">Values of the weight stored in 4 bits, per instance (0 when not quantized).</param>
/// <param name="Trainable">Whether the layer's own weights train ([Trainable], or [Trainable] on the model class).</param>
/// <param name="Dimensions">The member's dimensions resolved for this model: In, Out; Count, Dim; or Dim.</param>
internal sealed record ResolvedLayer(
    string Path,
    LayerKind Kind,
    long Instances,
    long BaseParameters,
    long QuantizedValues,
    QuantSpec? Quantization,
    bool Trainable,
    EquatableArray<ResolvedAdapter> Adapters,
    EquatableArray<long> Dimensions = default);

/// <summary>
/// A <c>[PeftModel]</c> root with everything resolved against its configuration: every layer, the accounting, the
/// adapter that trains, and the diagnostics of every block it reaches.
/// </summary>
/// <remarks>Plain data (no symbols, syntax or locations), like <see cref="ClassSpec"/>.</remarks>
/// <param name="TokenEmbeddingPath">Checkpoint path of the token embedding soft prompts attach to; empty if none.</param>
/// <param name="IsValid">False when the root or a block it reaches has an error: nothing is emitted for the root.</param>
/// <param name="ActivePrompt">The soft prompt that trains (the first declared), or null.</param>
/// <param name="Blocks">Metadata names of every block class the model reaches, for their typed dimensions.</param>
/// <param name="Estimate">The training memory estimate for the declared batch and sequence; null when none is declared.</param>
internal sealed record ModelSpec(
    ClassSpec Root,
    EquatableArray<ResolvedLayer> Layers,
    AccountingResult Accounting,
    string? ActiveAdapter,
    string? ActivePrompt,
    EquatableArray<string> Blocks,
    string TokenEmbeddingPath,
    EquatableArray<DiagnosticInfo> Diagnostics,
    bool IsValid,
    Budget.EstimateSpec? Estimate = null);
