using System;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>What every caller of an <see cref="ICausalLanguageModel"/> reads the same way.</summary>
public static class CausalLanguageModelExtensions
{
    /// <summary>
    /// The device of <paramref name="model"/>'s head (where its inputs go). The head is read inside a dispose scope: a
    /// wrapper made for this read is disposed here, not left for the garbage collector to finalize while a later native
    /// call might still use its handle.
    /// </summary>
    public static Device HeadDevice(this ICausalLanguageModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        return model.HeadWeight.device;
    }
}
