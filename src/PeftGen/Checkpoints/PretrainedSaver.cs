using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
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

    /// <summary>Largest shard in bytes; null writes one <see cref="HfLayout.SingleFile"/>.</summary>
    public long? MaxShardBytes { get; init; }

    /// <summary>The dtype to store (float32, float16 or bfloat16); null keeps each tensor's own.</summary>
    public ScalarType? DType { get; init; }

    /// <summary>The text of <c>config.json</c> to write; null leaves the folder's configuration as it is (see <see cref="ConfigFrom"/>).</summary>
    public string? ConfigJson { get; init; }

    /// <summary>A <c>config.json</c> to copy, for example the loaded checkpoint's; ignored when <see cref="ConfigJson"/> is set.</summary>
    public string? ConfigFrom { get; init; }
}

/// <summary>
/// Writes a PEFT model's base weights in Hugging Face's pretrained layout (<c>model.safetensors</c>, or shards and
/// <c>model.safetensors.index.json</c>, plus <c>config.json</c>), so the result loads wherever the original did.
/// Conv1D weights are transposed back to <c>In × Out</c>; LoRA adapters are not written (merge them in with
/// <see cref="PretrainedSaveOptions.MergeAdapters"/>).
/// </summary>
public static class PretrainedSaver
{
    private static readonly Dictionary<string, string> FileMetadata = new(StringComparer.Ordinal) { ["format"] = "pt" };

    /// <summary>Writes the model's base weights to <paramref name="folder"/>; returns the files written.</summary>
    /// <remarks>
    /// Weights files of the layout already in the folder that this save does not write (a single file replaced by
    /// shards, or shards of another count) are deleted once the new files are written, so the folder does not mix
    /// two saves. Each file is replaced atomically, the folder as a whole is not: save to a new folder to keep the
    /// old weights usable if the save fails. Tensors are materialised one shard at a time.
    /// </remarks>
    /// <exception cref="NotSupportedException">A projection's base is stored in 4 bits.</exception>
    /// <exception cref="InvalidOperationException">A tied tensor differs from the tensor it is tied to.</exception>
    public static IReadOnlyList<string> Save(IPeftModel model, string folder, PretrainedSaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        options ??= new PretrainedSaveOptions();
        if (options.MaxShardBytes is <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxShardBytes, "MaxShardBytes must be positive.");
        if (options.DType is { } dtype) CheckpointDTypes.Of(dtype);

        var tensors = ModelTensors.Of(model);
        var modelKeys = tensors.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        var dropped = options.TiedWeights.Where(t => modelKeys.Contains(t.Key) && modelKeys.Contains(t.SourceKey)).ToList();
        CheckTiesEqual(tensors, dropped);
        var written = tensors.Where(t => dropped.All(d => d.Key != t.Key)).ToList();

        var shards = Shard(written, options);
        Directory.CreateDirectory(folder);
        var files = new List<string>();
        for (var i = 0; i < shards.Count; i++)
        {
            var fileName = shards.Count == 1 ? HfLayout.SingleFile : HfLayout.ShardFile(i + 1, shards.Count);
            using var scope = NewDisposeScope();
            var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var tensor in shards[i]) state[CheckpointKey(tensor, options)] = Materialise(tensor, options);
            SafeTensors.Save(Path.Combine(folder, fileName), state, FileMetadata);
            files.Add(fileName);
        }

        if (shards.Count > 1)
        {
            AtomicFile.WriteAllText(Path.Combine(folder, HfLayout.IndexFile), Index(shards, options));
            files.Add(HfLayout.IndexFile);
        }
        if (options.ConfigJson is { } config)
        {
            AtomicFile.WriteAllText(Path.Combine(folder, HfLayout.ConfigFile), config);
            files.Add(HfLayout.ConfigFile);
        }
        else if (options.ConfigFrom is { } configFrom)
        {
            AtomicFile.WriteAllText(Path.Combine(folder, HfLayout.ConfigFile), File.ReadAllText(configFrom));
            files.Add(HfLayout.ConfigFile);
        }

        foreach (var stale in Directory.EnumerateFiles(folder).Where(f => HfLayout.IsWeightsFile(Path.GetFileName(f)) && !files.Contains(Path.GetFileName(f))))
            File.Delete(stale);
        return files.Select(f => Path.Combine(folder, f)).ToList();
    }

    private static string CheckpointKey(ModelTensor tensor, PretrainedSaveOptions options)
        => options.CheckpointKeys is { } keys && keys.TryGetValue(tensor.Key, out var key) ? key : options.KeyPrefix.ToCheckpoint(tensor.Key);

    /// <summary>Groups tensors into shards in model order, starting a new shard when the next tensor would overflow it.</summary>
    private static List<List<ModelTensor>> Shard(IReadOnlyList<ModelTensor> tensors, PretrainedSaveOptions options)
    {
        var shards = new List<List<ModelTensor>> { new() };
        long size = 0;
        foreach (var tensor in tensors)
        {
            var bytes = StoredBytes(tensor, options);
            if (options.MaxShardBytes is { } max && size > 0 && size + bytes > max)
            {
                shards.Add(new List<ModelTensor>());
                size = 0;
            }
            shards[^1].Add(tensor);
            size += bytes;
        }
        return shards;
    }

    private static string Index(List<List<ModelTensor>> shards, PretrainedSaveOptions options)
    {
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long total = 0;
        for (var i = 0; i < shards.Count; i++)
        {
            foreach (var tensor in shards[i])
            {
                weightMap[CheckpointKey(tensor, options)] = HfLayout.ShardFile(i + 1, shards.Count);
                total += StoredBytes(tensor, options);
            }
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = new JsonObject(weightMap.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)JsonValue.Create(e.Value)))),
        };
        return index.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static long StoredBytes(ModelTensor tensor, PretrainedSaveOptions options)
    {
        var source = BaseTensor(tensor);
        var elementSize = options.DType is { } dtype ? ElementSize(dtype) : source.ElementSize;
        return tensor.StoredShape.Aggregate(1L, (a, b) => a * b) * elementSize;
    }

    private static long ElementSize(ScalarType dtype) => dtype == ScalarType.Float32 ? 4 : 2;

    /// <summary>The tensor as stored: merged if asked, transposed back for Conv1D, converted, contiguous on the CPU.</summary>
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
        return value.cpu().contiguous();
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
