using System;
using System.Collections.Generic;
using PeftGen.Checkpoints;
using PeftGen.Formats;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

/// <summary>Passes a checkpoint source through, counting reads and how many read tensors are alive at once.</summary>
public sealed class CountingSource(ICheckpointSource inner) : ICheckpointSource
{
    private readonly List<Tensor> handedOut = new();

    public int Reads { get; private set; }

    public int ReadsInto { get; private set; }

    /// <summary>The most tensors read from here and not yet disposed at any one time: how well a reader streams.</summary>
    public int MostAlive { get; private set; }

    public string Description => inner.Description;

    public IReadOnlyCollection<string> Names => inner.Names;

    public IReadOnlyList<CheckpointMismatch> Problems => inner.Problems;

    public System.Text.Json.Nodes.JsonObject? Config => inner.Config;

    public CheckpointTensorInfo Info(string name) => inner.Info(name);

    public Tensor Read(string name)
    {
        Reads++;
        var tensor = inner.Read(name);
        handedOut.RemoveAll(t => t.IsInvalid);
        handedOut.Add(tensor);
        MostAlive = Math.Max(MostAlive, handedOut.Count);
        return tensor;
    }

    /// <summary>Reads in place, forwarded: counted apart from <see cref="Reads"/>, since it hands out no tensor.</summary>
    public void ReadInto(string name, Tensor target)
    {
        ReadsInto++;
        inner.ReadInto(name, target);
    }

    public void Dispose() => inner.Dispose();
}
