using System;

namespace PeftGen;

/// <summary>
/// Marks a partial TorchSharp module as the root of a PEFT model. The generator implements its layer members,
/// constructs and registers them, and emits compile-time parameter accounting and the training glue
/// (trainable parameters, adapter activation, merge, save and load).
/// </summary>
/// <remarks>
/// Dimension arguments of member attributes (<c>[Linear("Width", "3 * Width")]</c>) are resolved against the
/// <c>const</c> integer fields of <see cref="Config"/>, so blocks shared by several model sizes are declared once.
/// </remarks>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class PeftModelAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    /// <param name="config">A type whose <c>const int</c>/<c>const long</c> fields name the model's dimensions.</param>
    public PeftModelAttribute(Type config) => Config = config;

    /// <summary>The type whose integer constants name the model's dimensions.</summary>
    public Type Config { get; }

    /// <summary>
    /// The dimension (a name or expression over <see cref="Config"/>) that bounds a sequence's length, used to check
    /// soft prompts at compile time. Empty when the model has no fixed context.
    /// </summary>
    public string ContextLength { get; set; } = "";

    /// <summary>The tokenizer the model uses; needed for soft prompts initialised from text.</summary>
    public PeftTokenizer Tokenizer { get; set; } = PeftTokenizer.None;

    /// <summary>
    /// The dtype every frozen float projection base is built in: <see cref="PeftGen.BaseDType.BFloat16"/> or
    /// <see cref="PeftGen.BaseDType.Float16"/> halve its bytes (weight and bias), as PEFT users load a 7B base in
    /// bfloat16. Projections that train (<see cref="TrainableAttribute"/>) stay float32, 4-bit bases stay 4-bit, and
    /// embeddings, norms, adapters and soft prompts stay float32. The compile-time <c>Accounting.WeightBytes</c> counts
    /// two bytes per such value.
    /// </summary>
    public BaseDType BaseDType { get; set; } = BaseDType.Float32;

    /// <summary>
    /// The memory training may take, such as <c>"24 GiB"</c>, <c>"512 MiB"</c> or <c>"6 GB"</c> (a number, one space, a
    /// unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB). The build fails (PEFT404) when the compile-time estimate for
    /// <see cref="Batch"/> × <see cref="Sequence"/> (weights as stored, gradients, AdamW state, activations) exceeds it.
    /// Empty: no budget.
    /// </summary>
    public string MemoryBudget { get; set; } = "";

    /// <summary>Sequences per training step for the memory estimate (<see cref="MemoryBudget"/>).</summary>
    public int Batch { get; set; } = 1;

    /// <summary>
    /// Tokens per sequence for the memory estimate; when set, <c>Accounting.Estimate</c> holds the estimate's parts for
    /// <see cref="Batch"/> × <see cref="Sequence"/>. 0: no estimate.
    /// </summary>
    public int Sequence { get; set; }
}

/// <summary>Marks a partial TorchSharp module as a building block of a <see cref="PeftModelAttribute"/> model.</summary>
/// <remarks>The generator gives it a constructor taking the model's <see cref="ModelDims"/>.</remarks>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class PeftModuleAttribute : Attribute
{
}

/// <summary>Tokenizers that PeftGen knows how to build without network access.</summary>
public enum PeftTokenizer
{
    /// <summary>No tokenizer configured.</summary>
    None = 0,

    /// <summary>GPT-2's byte-level BPE (Microsoft.ML.Tokenizers with its GPT-2 data package).</summary>
    Gpt2 = 1,
}
