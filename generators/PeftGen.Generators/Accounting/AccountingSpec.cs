using PeftGen.Generators.Model;

namespace PeftGen.Generators.Accounting;

/// <summary>One adapter on one layer: its name and its parameters per instance (<c>rank × (In + Out)</c>).</summary>
internal sealed record AccountedAdapter(string Name, long Parameters);

/// <summary>
/// One layer member of a model, counted once per instance (a member of a block in a 12-block stack has 12).
/// </summary>
/// <param name="Path">Checkpoint path with <c>*</c> for stack indices: <c>h.*.attn.c_attn</c>.</param>
/// <param name="Kind">Layer kind as shown to users (<c>Projection</c>, <c>LayerNorm</c>…).</param>
/// <param name="Instances">How many times the member exists in the model.</param>
/// <param name="BaseParameters">Parameters of the layer's own weights, per instance.</param>
/// <param name="QuantizedValues">Values of the weight stored in 4 bits, per instance (0 when not quantized).</param>
/// <param name="QuantBlockSize">The 4-bit block size.</param>
/// <param name="DoubleQuant">Whether the 4-bit absmax values are quantized again.</param>
/// <param name="Trainable">Whether the layer's own weights train ([Trainable]).</param>
internal sealed record AccountedLayer(
    string Path,
    string Kind,
    long Instances,
    long BaseParameters,
    long QuantizedValues,
    int QuantBlockSize,
    bool DoubleQuant,
    bool Trainable,
    EquatableArray<AccountedAdapter> Adapters);

/// <summary>One soft prompt: <c>N × dim</c> parameters.</summary>
internal sealed record AccountedPrompt(string Name, long Parameters);

/// <summary>Everything the accounting needs, as data: the input of <see cref="ParameterAccounting.Compute"/>.</summary>
/// <param name="ActiveAdapter">The adapter that trains (PEFT trains the active adapter), or null.</param>
/// <param name="ActivePrompt">The soft prompt that trains, or null.</param>
internal sealed record AccountingSpec(
    EquatableArray<AccountedLayer> Layers,
    EquatableArray<AccountedPrompt> Prompts,
    string? ActiveAdapter,
    string? ActivePrompt);

/// <summary>A named count (per adapter or soft prompt).</summary>
internal sealed record NamedCount(string Name, long Parameters);

/// <summary>One row of the per-member breakdown (totals over every instance).</summary>
internal sealed record MemberCount(string Path, string Kind, long Instances, long Parameters, long AdapterParameters, long TrainableParameters, long WeightBytes);

/// <summary>The compile-time accounting of a model.</summary>
/// <param name="FullFineTuningBytes">Training memory of full fine-tuning in float32: weights, gradients, AdamW's two moments.</param>
/// <param name="TrainingBytes">Training memory of this configuration: weight bytes + gradients and AdamW moments of trainable parameters.</param>
internal sealed record AccountingResult(
    long AllParameters,
    long TrainableParameters,
    long BaseParameters,
    EquatableArray<NamedCount> Adapters,
    EquatableArray<NamedCount> Prompts,
    EquatableArray<MemberCount> Members,
    long FullFineTuningWeightBytes,
    long FullFineTuningBytes,
    long WeightBytes,
    long GradientBytes,
    long OptimizerBytes,
    long TrainingBytes,
    string Summary)
{
    public long FrozenParameters => AllParameters - TrainableParameters;
}
