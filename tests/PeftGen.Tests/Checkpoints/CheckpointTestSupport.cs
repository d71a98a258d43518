using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Tests.Support;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

public sealed class TempFolder : IDisposable
{
    public TempFolder() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "peftgen-ckpt-" + Guid.NewGuid().ToString("N"));

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}

public static class ModelHash
{
    /// <summary>A hash of every tensor of every layer, adapters included, by name.</summary>
    public static IReadOnlyDictionary<string, string> Of(IPeftModel model)
        => model.Layers
            .SelectMany(l => l.Module.named_parameters().Select(p => ($"{l.Path}.{p.name}", TensorHash.Of(p.parameter))))
            .ToDictionary(p => p.Item1, p => p.Item2, StringComparer.Ordinal);
}

public static class Ids
{
    public static Tensor Random(long vocab, long batch, long length, long seed)
    {
        using var g = new Generator((ulong)seed);
        return randint(vocab, new[] { batch, length }, dtype: ScalarType.Int64, generator: g);
    }
}
