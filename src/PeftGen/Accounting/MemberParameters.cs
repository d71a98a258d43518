namespace PeftGen;

/// <summary>
/// One row of a model's compile-time parameter breakdown (the generated <c>Accounting.Members</c>): a layer member,
/// counted over every instance of it in the model.
/// </summary>
/// <param name="Path">Checkpoint path with <c>*</c> standing for stack indices, e.g. <c>h.*.attn.c_attn</c>.</param>
/// <param name="Kind">The layer kind.</param>
/// <param name="Instances">How many times the member occurs (12 for a member of a block in a 12-block stack).</param>
/// <param name="BaseParameters">Parameters of the layer's own weights, over all instances (logical count for 4-bit weights).</param>
/// <param name="AdapterParameters">LoRA parameters of every adapter on the member, over all instances.</param>
/// <param name="TrainableParameters">Parameters that train: the active adapter, plus the base if the member is trainable.</param>
/// <param name="WeightBytes">Bytes the member's weights and adapters take in memory (packed codes and state for 4-bit weights).</param>
public sealed record MemberParameters(
    string Path,
    PeftLayerKind Kind,
    long Instances,
    long BaseParameters,
    long AdapterParameters,
    long TrainableParameters,
    long WeightBytes);
