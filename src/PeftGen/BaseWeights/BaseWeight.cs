using System;
using System.Linq;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// The base weight of a <see cref="LoraLinear"/> (<c>Out × In</c>) and how it is stored: a float tensor
/// (<see cref="FloatBaseWeight"/>, float32 or 16-bit) or 4-bit codes (<see cref="Nf4BaseWeight"/>). It owns the storage,
/// the product <c>x·Wᵀ + b</c> in the compute dtype, the float copy of the weight (dequantized when 4-bit), loading
/// a checkpoint's weight into its storage, adding a merged adapter's update, and device moves. <see cref="LoraLinear"/>
/// keeps the adapters, the forward and merging; as torchtune's <c>LoRALinear</c> leaves a 4-bit base to its
/// <c>NF4Tensor</c>.
/// </summary>
public abstract class BaseWeight : IDisposable
{
    /// <summary>The key of the base weight in a projection's state dict and in checkpoints (<c>{path}.weight</c>).</summary>
    public const string Key = "weight";

    private protected BaseWeight(long outFeatures, long inFeatures)
    {
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
    }

    /// <summary>Output features (rows).</summary>
    public long OutFeatures { get; }

    /// <summary>Input features (columns).</summary>
    public long InFeatures { get; }

    /// <summary>Where the storage lives.</summary>
    public abstract Device Device { get; }

    /// <summary>
    /// The dtype of the weight's values: the stored float dtype, or for a 4-bit weight the dtype it was quantized from
    /// (and saves back as, as bitsandbytes records it).
    /// </summary>
    public abstract ScalarType DType { get; }

    /// <summary>Bytes the storage occupies (a 4-bit weight: packed codes and quantization state).</summary>
    public abstract long StorageBytes { get; }

    /// <summary>Whether the weight can take gradients: only a float base of at least 32 bits can (16-bit and 4-bit bases stay frozen).</summary>
    public abstract bool CanTrain { get; }

    /// <summary>The weight as a new float tensor (dequantized when 4-bit), by default in <see cref="DType"/>; the caller disposes it.</summary>
    public abstract Tensor Dequantize(ScalarType? dtype = null);

    /// <summary>
    /// <c>x·Wᵀ + b</c> with the product in the compute dtype of the storage and the call; the result has
    /// <paramref name="input"/>'s dtype. Differentiable with respect to the input (and to a trainable float weight).
    /// </summary>
    internal abstract Tensor Linear(Tensor input, Tensor? bias);

    /// <summary>
    /// Replaces the values with <paramref name="weight"/> (<c>Out × In</c>, any float dtype, any device): a float base
    /// copies and converts, a 4-bit base quantizes it with its own settings.
    /// </summary>
    internal abstract void Load(Tensor weight);

    /// <summary>Adds <c>sign × delta</c> (a merged adapter's update) to the values; a 4-bit base re-quantizes and reports the rounding.</summary>
    internal abstract RequantizationReport? Add(Tensor delta, int sign);

    /// <summary>Moves the storage to <paramref name="device"/> (a float base follows its module's parameter instead).</summary>
    internal abstract void MoveTo(Device device);

    /// <summary>Checks that a weight of <paramref name="shape"/> is <c>Out × In</c>.</summary>
    /// <exception cref="ArgumentException">It is not.</exception>
    internal void CheckShape(long[] shape, string parameterName)
    {
        if (!shape.SequenceEqual(new[] { OutFeatures, InFeatures }))
            throw new ArgumentException($"Weight shape [{string.Join(", ", shape)}] does not match [{OutFeatures}, {InFeatures}].", parameterName);
    }

    /// <summary>Frees the storage.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the storage when <paramref name="disposing"/>.</summary>
    protected abstract void Dispose(bool disposing);
}
