using System.Collections.Generic;
using static TorchSharp.torch;

namespace PeftGen.Checkpoints;

/// <summary>Writes one safetensors file (atomically: a reader sees the previous file or the whole new one).</summary>
public interface ISafeTensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> (CPU, contiguous) with optional string metadata to <paramref name="path"/>.</summary>
    void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata);
}
