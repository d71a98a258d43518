using System;
using System.Collections.Generic;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PeftGen.Formats;

/// <summary>
/// A checkpoint that can be read one tensor at a time: its tensor names, each tensor's stored dtype and shape (known
/// without reading the data), and the data itself. <see cref="Checkpoints.PretrainedLoader"/> checks a whole model against
/// <see cref="Names"/> and <see cref="Info"/> before it reads anything.
/// </summary>
public interface ICheckpointSource : IDisposable
{
    /// <summary>A description of where the tensors come from (a folder or file path), used in messages.</summary>
    string Description { get; }

    /// <summary>The names of every tensor that can be read.</summary>
    IReadOnlyCollection<string> Names { get; }

    /// <summary>
    /// What is wrong with the checkpoint's files, found while opening it (<see cref="ReadMode.Collecting"/>): for
    /// example a shard that the index lists but that is absent (<see cref="CheckpointMismatchKind.File"/>, keyed by the
    /// tensor when one tensor is concerned). The tensors of such a shard are not in <see cref="Names"/>.
    /// </summary>
    IReadOnlyList<CheckpointMismatch> Problems { get; }

    /// <summary>
    /// The checkpoint's parsed <c>config.json</c>, or null when it has none (the default for sources without one).
    /// <see cref="Checkpoints.PretrainedLoader"/> checks its <c>quantization_config</c> against 4-bit weights.
    /// </summary>
    JsonObject? Config => null;

    /// <summary>The stored dtype and shape of a tensor in <see cref="Names"/>.</summary>
    CheckpointTensorInfo Info(string name);

    /// <summary>Reads a tensor of <see cref="Names"/> on the CPU in its stored dtype; the caller disposes it.</summary>
    Tensor Read(string name);

    /// <summary>
    /// Reads a tensor of <see cref="Names"/> into <paramref name="target"/> (same shape, any dtype and device); a source
    /// that can fills it without a full-size temporary (see <see cref="SafeTensors.SafeTensorsFile.ReadInto"/>).
    /// </summary>
    /// <remarks>
    /// Deliberately without a default: <see cref="Checkpoints.PretrainedLoader"/> reads embeddings, norms, heads and
    /// float bases through it, and a default of <see cref="Read"/> then a copy would make any source that wraps another
    /// (to count or time reads) silently hold each of them whole while it loads, half a gigabyte for an embedding of
    /// Llama-3.2-1B. A wrapper forwards it; a source that cannot read in place may read the tensor and copy it.
    /// </remarks>
    void ReadInto(string name, Tensor target);
}

/// <summary>A stored tensor's dtype (as safetensors spells it: <c>F32</c>, <c>F16</c>, <c>BF16</c>, …) and shape.</summary>
/// <param name="DType">The safetensors dtype name.</param>
/// <param name="Shape">The shape.</param>
public sealed record CheckpointTensorInfo(string DType, IReadOnlyList<long> Shape);

/// <summary>The safetensors dtype names that pretrained weights may be stored in.</summary>
public static class CheckpointDTypes
{
    /// <summary>float32.</summary>
    public const string F32 = "F32";

    /// <summary>float16.</summary>
    public const string F16 = "F16";

    /// <summary>bfloat16.</summary>
    public const string BF16 = "BF16";

    /// <summary>Whether weights stored in <paramref name="dtype"/> can be loaded (converted to the model's dtype).</summary>
    public static bool IsLoadable(string dtype) => dtype is F32 or F16 or BF16;

    /// <summary>The safetensors name of a floating-point torch dtype that checkpoints can hold.</summary>
    /// <exception cref="ArgumentException">The dtype is not float32, float16 or bfloat16.</exception>
    public static string Of(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => F32,
        ScalarType.Float16 => F16,
        ScalarType.BFloat16 => BF16,
        _ => throw new ArgumentException($"Pretrained weights are saved as float32, float16 or bfloat16, not {dtype}.", nameof(dtype)),
    };
}
