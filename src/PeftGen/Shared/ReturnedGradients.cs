using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// The wrappers of gradients that PeftGen's custom autograd functions (<see cref="QuantizedLinearFunction"/>,
/// <see cref="Precision.CastLinearFunction"/>, <see cref="DropoutFunction"/>, <see cref="TokenRowsFunction"/>, the chunked
/// loss's) return to native code.
/// </summary>
/// <remarks>
/// From TorchSharp 0.107's <c>AutogradFunction.cs</c> and the native <c>CSharpNode::apply</c>: a returned gradient is a
/// managed wrapper of a native tensor that native code copies after <c>backward</c> returns, so it cannot be disposed in
/// <c>backward</c>; left to the garbage collector, a training loop would keep every step's gradients alive until a
/// collection runs. Each wrapper is therefore kept per thread and disposed at that thread's next call of any of these
/// functions (forward or backward), by which time the autograd engine has taken the tensor, or when
/// <see cref="Training.PeftTrainer"/>'s backward pass returns: at most one call's returned wrappers per thread outlive
/// their use.
/// </remarks>
internal static class ReturnedGradients
{
    [ThreadStatic] private static List<Tensor>? pending;

    /// <summary>Takes <paramref name="gradient"/> out of every dispose scope and keeps its wrapper until this thread's next <see cref="Release"/>.</summary>
    public static Tensor Keep(Tensor gradient)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        gradient.DetachFromDisposeScope();
        (pending ??= new List<Tensor>()).Add(gradient);
        return gradient;
    }

    /// <summary>Wrappers this thread keeps now (for tests: none should outlive a trainer's step).</summary>
    internal static int Pending => pending?.Count ?? 0;

    /// <summary>Disposes the wrappers this thread's earlier calls returned to native code.</summary>
    public static void Release()
    {
        var kept = pending;
        if (kept is null || kept.Count == 0) return;
        foreach (var tensor in kept) tensor.Dispose();
        kept.Clear();
    }
}
