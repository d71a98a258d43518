using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;

namespace PeftGen.Training;

/// <summary>
/// Parameters that share an optimizer setting, as PyTorch's optimizer parameter groups: whether decoupled weight decay
/// (<see cref="TrainerOptions.WeightDecay"/>) applies to them.
/// </summary>
/// <param name="Name">What the group holds, for reports (<c>decay</c>, <c>no_decay</c>).</param>
/// <param name="Parameters">The parameters with their names (checkpoint keys).</param>
/// <param name="Decays">Whether weight decay applies to the group.</param>
public sealed record ParameterGroup(string Name, IReadOnlyList<(string Name, Parameter Parameter)> Parameters, bool Decays)
{
    /// <summary>The name of the group that decays.</summary>
    public const string DecayName = "decay";

    /// <summary>The name of the group that does not decay.</summary>
    public const string NoDecayName = "no_decay";

    /// <summary>
    /// The groups by shape alone, when nothing else is known: matrices decay, 1-D tensors (biases, norm weights) do
    /// not. Generated models know more (<see cref="PeftTraining.ParameterGroups"/>): their soft prompts are matrices
    /// that never decay.
    /// </summary>
    public static IReadOnlyList<ParameterGroup> ByShape(IReadOnlyList<(string Name, Parameter Parameter)> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return
        [
            new(DecayName, parameters.Where(p => AdamWOptimizer.Decays(p.Parameter)).ToList(), true),
            new(NoDecayName, parameters.Where(p => !AdamWOptimizer.Decays(p.Parameter)).ToList(), false),
        ];
    }
}
