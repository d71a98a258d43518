using System.Collections.Generic;

namespace PeftGen;

/// <summary>
/// A model's compile-time accounting as a value (the generated <c>Accounting</c> class's constants), so code that
/// handles any model reads it from the instance (<see cref="Training.IPeftTrainableModel.Accounting"/>) instead of
/// switching over model classes.
/// </summary>
/// <param name="AllParameters">Every parameter: base weights, all adapters, all soft prompts (4-bit weights counted by value).</param>
/// <param name="TrainableParameters">Parameters that train: the active adapter, the first soft prompt and [Trainable] members.</param>
/// <param name="FrozenParameters">Parameters that stay frozen.</param>
/// <param name="BaseParameters">Parameters of the base model (without adapters and soft prompts).</param>
/// <param name="WeightBytes">Bytes of the weights: float32, or packed codes and quantization state for 4-bit weights.</param>
/// <param name="TrainingBytes">Training memory: weights, gradients and optimizer state (activations not included).</param>
/// <param name="Summary">PEFT's <c>print_trainable_parameters</c> line.</param>
/// <param name="Members">Parameters per layer member, over every instance of it.</param>
public sealed record ModelAccounting(
    long AllParameters,
    long TrainableParameters,
    long FrozenParameters,
    long BaseParameters,
    long WeightBytes,
    long TrainingBytes,
    string Summary,
    IReadOnlyList<MemberParameters> Members)
{
    /// <summary>Trainable parameters as a percentage of all parameters.</summary>
    public double TrainablePercent => AllParameters == 0 ? 0 : 100.0 * TrainableParameters / AllParameters;
}
