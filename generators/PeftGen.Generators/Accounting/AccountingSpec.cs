using PeftGen.Generators.Model;

namespace PeftGen.Generators.Accounting;

/// <summary>One soft prompt: <c>N × dim</c> parameters.</summary>
internal sealed record AccountedPrompt(string Name, long Parameters);

/// <summary>Everything the accounting needs, as data: the input of <see cref="ParameterAccounting.Compute"/>.</summary>
/// <param name="Layers">The model's resolved layers (the same list its constructor is emitted from).</param>
/// <param name="ActiveAdapter">The adapter that trains (PEFT trains the active adapter), or null.</param>
/// <param name="ActivePrompt">The soft prompt that trains, or null.</param>
/// <param name="SixteenBitBases">The model's frozen projections store their float values in 16 bits (<c>BaseDType</c>).</param>
internal sealed record AccountingSpec(
    EquatableArray<ResolvedLayer> Layers,
    EquatableArray<AccountedPrompt> Prompts,
    string? ActiveAdapter,
    string? ActivePrompt,
    bool SixteenBitBases = false);

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
