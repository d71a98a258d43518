using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Formats.BitsAndBytes;
using PeftGen.Formats.HuggingFace;
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

    /// <summary>
    /// The dtype to store float tensors in (float32, float16 or bfloat16); null keeps each tensor's own. 4-bit weights
    /// are written as they are (their quant state records the dtype they were quantized from).
    /// </summary>
    public ScalarType? DType { get; init; }

    /// <summary>
    /// The model configuration to write as <c>config.json</c> (for example the loaded checkpoint's); null leaves the
    /// folder's as it is. Its <c>quantization_config</c> is replaced by one that describes what is written (removed
    /// when nothing is 4-bit); the object passed in is not changed. Required when the model has 4-bit projections.
    /// </summary>
    public JsonObject? Config { get; init; }
}

/// <summary>
/// Writes a PEFT model's base weights in Hugging Face's pretrained layout (<c>model.safetensors</c>, or shards and
/// <c>model.safetensors.index.json</c>, plus <c>config.json</c>), so the result loads wherever the original did.
/// Conv1D weights are transposed back to <c>In × Out</c>; LoRA adapters are not written (merge them in with
/// <see cref="PretrainedSaveOptions.MergeAdapters"/>).
/// </summary>
/// <remarks>
/// A projection stored in 4 bits is written as transformers + bitsandbytes save a quantized model: <c>{key}</c>
/// (packed uint8, <c>[ceil(n/2), 1]</c>), <c>{key}.absmax</c>, <c>{key}.quant_map</c>, with double quantization
/// <c>{key}.nested_absmax</c> and <c>{key}.nested_quant_map</c>, and <c>{key}.quant_state.bitsandbytes__nf4|fp4</c>;
/// its bias stays a float tensor. The shape in the quant state is <c>Out × In</c> for Conv1D layers too (transformers
/// quantizes them transposed). <c>config.json</c> then carries transformers' <c>quantization_config</c>
/// (<c>quant_method</c> bitsandbytes, <c>load_in_4bit</c>, <c>bnb_4bit_quant_type</c>,
/// <c>bnb_4bit_use_double_quant</c>, <c>bnb_4bit_compute_dtype</c>, <c>bnb_4bit_quant_storage</c> uint8, and
/// <c>llm_int8_skip_modules</c> naming the projections kept in float, plus <c>lm_head</c> unless it is 4-bit).
/// </remarks>
public static class PretrainedSaver
{
    /// <summary>Writes the model's base weights to <paramref name="folder"/>; returns the files written.</summary>
    /// <remarks>
    /// Files are written by <see cref="HfCheckpointWriter"/>: each atomically, leftovers of an earlier save with
    /// another shard count removed, the folder as a whole not replaced as one unit. Parameters and transposed views of
    /// them are handed over as they are (the writer copies one tensor at a time to the CPU); only merged or converted
    /// weights are computed up front.
    /// </remarks>
    /// <exception cref="ArgumentException">The model has 4-bit projections and no <see cref="PretrainedSaveOptions.Config"/>,
    /// or they differ in code book, double quantization or compute dtype (one <c>quantization_config</c> describes them all).</exception>
    /// <exception cref="NotSupportedException"><see cref="PretrainedSaveOptions.MergeAdapters"/> is set and a 4-bit
    /// projection has an active adapter that is not merged (merge it with <c>requantize: true</c> first).</exception>
    /// <exception cref="InvalidOperationException">A tied tensor differs from the tensor it is tied to.</exception>
    public static IReadOnlyList<string> Save(IPeftModel model, string folder, PretrainedSaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        options ??= new PretrainedSaveOptions();
        if (options.DType is { } dtype) CheckpointDTypes.Of(dtype);

        var tensors = ModelTensors.Of(model);
        // A 4-bit weight is written as its quant state, never tied, merged or converted.
        var fourBit = tensors.Where(IsFourBit).ToList();
        var config = ConfigFor(tensors, fourBit, options);
        if (options.MergeAdapters
            && fourBit.Select(t => (t.Layer.Path, Projection: (LoraLinear)t.Layer.Module)).FirstOrDefault(p => p.Projection.ActiveAdapter is not null && p.Projection.MergedAdapter is null) is { Projection: not null } unmerged)
            throw new NotSupportedException(
                $"Projection '{unmerged.Path}' stores its base in 4 bits and its adapter '{unmerged.Projection.ActiveAdapter}' is not merged; merging into a 4-bit base "
                + "re-quantizes it, so do that first (LoraLinear.Merge(adapter, requantize: true)), or save without MergeAdapters.");
        var modelKeys = tensors.Except(fourBit).Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        var dropped = options.TiedWeights.Where(t => modelKeys.Contains(t.Key) && modelKeys.Contains(t.SourceKey)).ToList();
        CheckTiesEqual(tensors, dropped);

        using var scope = NewDisposeScope();
        // Insertion order is module order, which is how transformers fills shards.
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var tensor in tensors.Where(t => dropped.All(d => d.Key != t.Key)))
        {
            if (IsFourBit(tensor))
            {
                // CPU copies of the packed codes and state (an eighth of the float32 bytes), released with the scope.
                foreach (var (key, value) in BitsAndBytesState.Write(((LoraLinear)tensor.Layer.Module).QuantizedWeight!, CheckpointKey(tensor, options)))
                {
                    scope.Attach(value);
                    state.Add(key, value);
                }
            }
            else
            {
                state.Add(CheckpointKey(tensor, options), Materialise(tensor, options));
            }
        }
        var files = HfCheckpointWriter.Save(folder, state, config, options.MaxShardBytes).ToList();
        if (files.Count > 1) files.Add(HfCheckpoint.IndexFileName);
        if (config is not null) files.Add(HfCheckpoint.ConfigFileName);
        return files.Select(f => Path.Combine(folder, f)).ToList();
    }

    private static bool IsFourBit(ModelTensor tensor)
        => tensor.Role == ModelTensorRole.ProjectionWeight && ((LoraLinear)tensor.Layer.Module).IsQuantized;

    /// <summary>The <c>config.json</c> to write: the given one with a <c>quantization_config</c> that fits the weights written.</summary>
    private static JsonObject? ConfigFor(IReadOnlyList<ModelTensor> tensors, List<ModelTensor> fourBit, PretrainedSaveOptions options)
    {
        if (fourBit.Count == 0)
        {
            if (options.Config?.ContainsKey(BitsAndBytesQuantizationConfig.Key) != true) return options.Config;
            var plain = (JsonObject)options.Config.DeepClone();
            plain.Remove(BitsAndBytesQuantizationConfig.Key);
            return plain;
        }
        if (options.Config is null)
            throw new ArgumentException(
                $"The model stores {fourBit.Count} projections in 4 bits, which transformers reads only with a quantization_config in config.json; "
                + "pass the model's configuration as Config (for example the loaded checkpoint's HfCheckpoint.Config).", nameof(options));
        var settings = fourBit.Select(t => ((LoraLinear)t.Layer.Module).QuantizedWeight!.Options)
            .Select(o => (o.QuantType, o.DoubleQuant, o.ComputeDType)).Distinct().ToList();
        if (settings.Count > 1)
            throw new ArgumentException(
                $"The model's 4-bit projections use {settings.Count} different settings ({string.Join("; ", settings)}); transformers' quantization_config "
                + "describes one code book, double quantization and compute dtype for the whole model.", nameof(options));

        var floatModules = tensors.Where(t => t.Role == ModelTensorRole.ProjectionWeight && !IsFourBit(t))
            .Select(t => BitsAndBytesQuantizationConfig.ModuleOf(CheckpointKey(t, options)));
        var fourBitModules = fourBit.Select(t => BitsAndBytesQuantizationConfig.ModuleOf(CheckpointKey(t, options))).ToHashSet(StringComparer.Ordinal);
        var config = (JsonObject)options.Config.DeepClone();
        config[BitsAndBytesQuantizationConfig.Key] = BitsAndBytesQuantizationConfig.Describe(
            ((LoraLinear)fourBit[0].Layer.Module).QuantizedWeight!.Options, floatModules, fourBitModules);
        return config;
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
        return tensor.Role == ModelTensorRole.ProjectionBias ? projection.Bias! : projection.Weight;
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
