using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.IO;
using static TorchSharp.torch;

namespace PeftGen.Checkpoints;

/// <summary>How <see cref="PretrainedSaver.Save"/> writes a model's base weights.</summary>
public sealed record PretrainedSaveOptions
{
    /// <summary>How model keys are named in the files; pass <see cref="PretrainedLoadResult.KeyPrefix"/> to write the layout that was loaded.</summary>
    public KeyPrefixMapping KeyPrefix { get; init; } = KeyPrefixMapping.Identity;

    /// <summary>
    /// Exact checkpoint keys by model key, which win over <see cref="KeyPrefix"/>: pass
    /// <see cref="PretrainedLoadResult.CheckpointKeys"/> to write exactly the keys that were loaded.
    /// </summary>
    public IReadOnlyDictionary<string, string>? CheckpointKeys { get; init; }

    /// <summary>Tied tensors, left out of the files (they must equal the tensor they are tied to).</summary>
    public IReadOnlyList<TiedWeight> TiedWeights { get; init; } = [];

    /// <summary>
    /// Fold each projection's active adapter into the written weights (the model itself is not changed). A projection
    /// whose adapter is already merged into its weight is written as it is, with or without this option.
    /// </summary>
    public bool MergeAdapters { get; init; }

    /// <summary>Largest shard in bytes (transformers' default, 5 GB, unless set); weights that fit are one <c>model.safetensors</c>.</summary>
    public long MaxShardBytes { get; init; } = HfCheckpointWriter.DefaultMaxShardBytes;

    /// <summary>The dtype to store (float32, float16 or bfloat16); null keeps each tensor's own.</summary>
    public ScalarType? DType { get; init; }

    /// <summary>The model configuration to write as <c>config.json</c> (for example the loaded checkpoint's); null leaves the folder's as it is.</summary>
    public JsonObject? Config { get; init; }
}

/// <summary>
/// Writes a PEFT model's base weights in Hugging Face's pretrained layout (<c>model.safetensors</c>, or shards and
/// <c>model.safetensors.index.json</c>, plus <c>config.json</c>), so the result loads wherever the original did.
/// Conv1D weights are transposed back to <c>In × Out</c>; LoRA adapters are not written (merge them in with
/// <see cref="PretrainedSaveOptions.MergeAdapters"/>).
/// </summary>
public static class PretrainedSaver
{
    /// <summary>Writes the model's base weights to <paramref name="folder"/>; returns the files written.</summary>
    /// <remarks>
    /// Files are written by <see cref="HfCheckpointWriter"/>: each atomically, leftovers of an earlier save with
    /// another shard count removed, the folder as a whole not replaced as one unit. Parameters and transposed views of
    /// them are handed over as they are (the writer copies one tensor at a time to the CPU); only merged or converted
    /// weights are computed up front.
    /// </remarks>
    /// <exception cref="NotSupportedException">A projection's base is stored in 4 bits.</exception>
    /// <exception cref="InvalidOperationException">A tied tensor differs from the tensor it is tied to.</exception>
    public static IReadOnlyList<string> Save(IPeftModel model, string folder, PretrainedSaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        options ??= new PretrainedSaveOptions();
        if (options.DType is { } dtype) CheckpointDTypes.Of(dtype);

        var tensors = ModelTensors.Of(model);
        var modelKeys = tensors.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        var dropped = options.TiedWeights.Where(t => modelKeys.Contains(t.Key) && modelKeys.Contains(t.SourceKey)).ToList();
        CheckTiesEqual(tensors, dropped);
        foreach (var tensor in tensors) BaseTensor(tensor);

        using var scope = NewDisposeScope();
        // Insertion order is module order, which is how transformers fills shards.
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var tensor in tensors.Where(t => dropped.All(d => d.Key != t.Key)))
            state.Add(CheckpointKey(tensor, options), Materialise(tensor, options));
        var files = HfCheckpointWriter.Save(folder, state, options.Config, options.MaxShardBytes).ToList();
        if (files.Count > 1) files.Add(HfCheckpoint.IndexFileName);
        if (options.Config is not null) files.Add(HfCheckpoint.ConfigFileName);
        return files.Select(f => Path.Combine(folder, f)).ToList();
    }

    private static string CheckpointKey(ModelTensor tensor, PretrainedSaveOptions options)
        => options.CheckpointKeys is { } keys && keys.TryGetValue(tensor.Key, out var key) ? key : options.KeyPrefix.ToCheckpoint(tensor.Key);

    /// <summary>The tensor as stored: merged if asked, transposed back for Conv1D (a view), converted.</summary>
    private static Tensor Materialise(ModelTensor tensor, PretrainedSaveOptions options)
    {
        using var _ = no_grad();
        var value = BaseTensor(tensor).detach();
        if (tensor.Role == ModelTensorRole.ProjectionWeight && options.MergeAdapters)
        {
            var projection = (LoraLinear)tensor.Layer.Module;
            if (projection.ActiveAdapter is { } active && projection.MergedAdapter is null)
                value = value.add(projection.DeltaWeight(active));
        }
        if (tensor.Transposed) value = value.t();
        if (options.DType is { } dtype) value = value.to(dtype);
        return value;
    }

    private static Tensor BaseTensor(ModelTensor tensor)
    {
        if (tensor.Role == ModelTensorRole.Parameter) return tensor.Parameter!;
        var projection = (LoraLinear)tensor.Layer.Module;
        if (tensor.Role == ModelTensorRole.ProjectionBias) return projection.Bias!;
        if (projection.IsQuantized)
            throw new NotSupportedException(
                $"Projection '{tensor.Layer.Path}' stores its base in 4 bits; pretrained weights are saved from a float model "
                + "(load the float checkpoint, load the adapter, then save with MergeAdapters).");
        return projection.Weight;
    }

    private static void CheckTiesEqual(IReadOnlyList<ModelTensor> tensors, List<TiedWeight> ties)
    {
        foreach (var tie in ties)
        {
            var tied = BaseTensor(tensors.Single(t => t.Key == tie.Key));
            var original = BaseTensor(tensors.Single(t => t.Key == tie.SourceKey));
            using var scope = NewDisposeScope();
            if (!tied.shape.SequenceEqual(original.shape) || !tied.to(original.dtype).eq(original).all().item<bool>())
                throw new InvalidOperationException(
                    $"'{tie.Key}' is to be saved as a copy of '{tie.SourceKey}', but their values differ; remove the tie to save both.");
        }
    }
}
