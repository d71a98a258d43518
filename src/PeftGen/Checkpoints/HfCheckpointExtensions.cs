using System;
using System.Collections.Generic;
using PeftGen.IO;
using static TorchSharp.torch;

namespace PeftGen.Checkpoints;

/// <summary>Loads pretrained weights from an already open, strictly validated <see cref="HfCheckpoint"/>.</summary>
public static class HfCheckpointExtensions
{
    /// <summary>
    /// Views <paramref name="checkpoint"/> as an <see cref="ICheckpointSource"/>. The caller keeps ownership: disposing
    /// the view does not close the checkpoint.
    /// </summary>
    public static ICheckpointSource AsCheckpointSource(this HfCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return new View(checkpoint);
    }

    private sealed class View(HfCheckpoint checkpoint) : ICheckpointSource
    {
        public string Description => checkpoint.Folder;

        public IReadOnlyCollection<string> Names => checkpoint.Names;

        // HfCheckpoint.Open refuses inconsistent folders outright, so an open one has no file problems left.
        public IReadOnlyList<string> Problems => [];

        public CheckpointTensorInfo Info(string name)
        {
            var info = checkpoint.TensorInfo(name);
            return new CheckpointTensorInfo(info.DType, info.Shape);
        }

        public Tensor Read(string name) => checkpoint.Read(name);

        public void Dispose()
        {
        }
    }
}
