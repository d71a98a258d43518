using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using PeftGen.Formats;
using PeftGen.Formats.BitsAndBytes;
using PeftGen.Formats.HuggingFace;
using PeftGen.Formats.SafeTensors;
using static TorchSharp.torch;

namespace PeftGen.Checkpoints;

/// <summary>What a <see cref="PretrainedLoader"/> load did.</summary>
/// <param name="KeyPrefix">The key mapping used (given or detected).</param>
/// <param name="LoadedTensors">How many model tensors were written.</param>
/// <param name="FilledFromTies">Model keys that the checkpoint omits and that were filled from the tensor they are tied to.</param>
/// <param name="SkippedKeys">Checkpoint keys skipped as non-weight buffers (<see cref="PretrainedLoadOptions.IgnoredKeys"/>).</param>
/// <param name="StoredDTypes">The dtypes the loaded tensors were stored in.</param>
/// <param name="CheckpointKeys">
/// The checkpoint key each model key was read from (tied tensors filled from another key excluded); pass it to
/// <see cref="PretrainedSaveOptions.CheckpointKeys"/> to save in the layout that was loaded.
/// </param>
public sealed record PretrainedLoadResult(
    KeyPrefixMapping KeyPrefix,
    int LoadedTensors,
    IReadOnlyList<string> FilledFromTies,
    IReadOnlyList<string> SkippedKeys,
    IReadOnlyList<string> StoredDTypes,
    IReadOnlyDictionary<string, string> CheckpointKeys);

/// <summary>
/// Loads pretrained base weights (Hugging Face layout) into a PEFT model: every base tensor of
/// <see cref="IPeftModel.Layers"/> from <c>{path}.weight</c> / <c>{path}.bias</c>.
/// </summary>
/// <remarks>
/// <para>All or nothing: every key, dtype and shape is checked before the first tensor is written, and every
/// mismatch is reported together in one <see cref="CheckpointMismatchException"/>; the model is then unchanged.</para>
/// <para>Streaming: tensors are read and written one at a time (a projection's weight and bias together), shard after
/// shard. Float tensors (embeddings, norms, heads, float projection bases) are read straight into their parameters
/// (<see cref="ICheckpointSource.ReadInto"/>), converted from float16 or bfloat16 a block of rows at a time, so they
/// need no full-size temporary; a weight that becomes 4-bit is read whole and quantized as it arrives, so peak memory
/// is the model plus about one stored projection weight and its 4-bit form. Conv1D weights
/// (<see cref="WeightLayout.InOut"/>) are transposed on the way in, as a view.</para>
/// <para>Projections receive their weights through <see cref="LoraLinear.LoadBase"/>, so a 4-bit projection
/// quantizes each weight once, as it arrives, slice by slice from the stored dtype (which it records as the weight's
/// original dtype: a bfloat16 checkpoint saves back as bfloat16), and LoRA adapters are never touched.</para>
/// <para>A weight stored in 4 bits, as transformers + bitsandbytes save a quantized model (<c>{key}</c> packed uint8
/// beside <c>{key}.absmax</c>, <c>{key}.quant_map</c>, <c>{key}.nested_absmax</c>, <c>{key}.nested_quant_map</c> and
/// <c>{key}.quant_state.bitsandbytes__nf4|fp4</c>), is loaded as it is stored: its codes and absmax state go straight
/// into the projection's <see cref="Nf4Tensor"/>, bit-identical and without a float copy, and a float projection
/// becomes 4-bit. Its shape is <c>Out × In</c> for Conv1D layers too, as transformers quantizes them. The quant state
/// is checked before anything is written, and so is the <c>quantization_config</c> of the folder's <c>config.json</c>
/// (see <see cref="ICheckpointSource.Config"/>): bitsandbytes, 4-bit, uint8 storage, each weight's quant type and
/// double quantization, none of them in <c>llm_int8_skip_modules</c>. A projection made 4-bit by the load computes
/// in the <c>bnb_4bit_compute_dtype</c> the config names; one that was already 4-bit keeps its own.</para>
/// </remarks>
public static class PretrainedLoader
{
    /// <summary>
    /// Loads the base weights of <paramref name="model"/> from a Hugging Face pretrained-model folder
    /// (<c>model.safetensors</c>, or shards with <c>model.safetensors.index.json</c>).
    /// </summary>
    /// <exception cref="CheckpointMismatchException">The checkpoint does not fit (a missing or unreadable shard included); the model is unchanged.</exception>
    /// <exception cref="PeftFormatException">The index or the single weights file is malformed; the model is unchanged.</exception>
    /// <exception cref="InvalidOperationException">A projection has a merged adapter (unmerge first), or reading failed midway.</exception>
    public static PretrainedLoadResult Load(IPeftModel model, string folder, PretrainedLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var source = HfCheckpoint.Open(folder, ReadMode.Collecting);
        return Load(model, source, options);
    }

    /// <summary>Loads the base weights of <paramref name="model"/> from <paramref name="source"/>.</summary>
    /// <exception cref="CheckpointMismatchException">The checkpoint does not fit; the model is unchanged.</exception>
    /// <exception cref="InvalidOperationException">A projection has a merged adapter (unmerge first), or reading failed midway.</exception>
    public static PretrainedLoadResult Load(IPeftModel model, ICheckpointSource source, PretrainedLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        options ??= PretrainedLoadOptions.Default;

        var tensors = ModelTensors.Of(model);
        var merged = model.Projections().Where(p => p.Layer.MergedAdapter is not null).Select(p => p.Path).ToList();
        if (merged.Count > 0)
            throw new InvalidOperationException($"Unmerge the adapters before loading base weights; merged: {string.Join(", ", merged)}.");

        var names = new HashSet<string>(source.Names, StringComparer.Ordinal);
        var keyPrefix = options.KeyPrefix ?? DetectKeyPrefix(tensors.Select(t => t.Key).ToList(), names);
        var plan = Plan(tensors, source, names, keyPrefix, options);
        if (plan.Mismatches.Count > 0) throw new CheckpointMismatchException(source.Description, plan.Mismatches);

        Apply(plan.Reads, source, BitsAndBytesQuantizationConfig.ComputeDTypeOf(source.Config));
        return new PretrainedLoadResult(
            keyPrefix,
            plan.Reads.Count,
            plan.FilledFromTies,
            plan.Skipped,
            plan.Reads.Select(r => source.Info(r.CheckpointKey).DType).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList(),
            plan.Reads.Where(r => !plan.FilledFromTies.Contains(r.Tensor.Key)).ToDictionary(r => r.Tensor.Key, r => r.CheckpointKey, StringComparer.Ordinal));
    }

    /// <summary>
    /// The key mapping under which the most model keys are found among <paramref name="checkpointNames"/>: keys
    /// unchanged, or one leading segment of the model keys dropped (<c>transformer.</c>) and/or one leading segment
    /// of the checkpoint keys added. Keys unchanged wins ties. Under any mapping, a model key whose mapped form is
    /// not stored but that is stored unchanged is read unchanged (GPT2LMHeadModel's <c>lm_head.weight</c> beside
    /// <c>transformer.…</c>).
    /// </summary>
    public static KeyPrefixMapping DetectKeyPrefix(IReadOnlyCollection<string> modelKeys, IReadOnlyCollection<string> checkpointNames)
    {
        ArgumentNullException.ThrowIfNull(modelKeys);
        ArgumentNullException.ThrowIfNull(checkpointNames);
        var names = checkpointNames as IReadOnlySet<string> ?? new HashSet<string>(checkpointNames, StringComparer.Ordinal);
        var modelPrefixes = Prefixes(modelKeys);
        var checkpointPrefixes = Prefixes(checkpointNames);

        var best = KeyPrefixMapping.Identity;
        var bestScore = Score(best);
        foreach (var modelPrefix in modelPrefixes)
        {
            foreach (var checkpointPrefix in checkpointPrefixes)
            {
                if (modelPrefix == checkpointPrefix) continue;
                var candidate = new KeyPrefixMapping(modelPrefix, checkpointPrefix);
                var score = Score(candidate);
                if (score > bestScore) (best, bestScore) = (candidate, score);
            }
        }
        return best;

        int Score(KeyPrefixMapping mapping) => modelKeys.Count(k => names.Contains(ResolveKey(k, mapping, names)));

        static List<string> Prefixes(IEnumerable<string> keys) => keys
            .Select(k => k.IndexOf('.', StringComparison.Ordinal) is var dot and > 0 ? k[..(dot + 1)] : "")
            .Prepend("")
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// The checkpoint key of a model key: the mapped key, or else the unchanged key when only that is stored
    /// (<c>lm_head.weight</c> sits outside the <c>transformer.</c> prefix that the other keys gain).
    /// </summary>
    private static string ResolveKey(string modelKey, KeyPrefixMapping keyPrefix, IReadOnlySet<string> names)
    {
        var mapped = keyPrefix.ToCheckpoint(modelKey);
        return !names.Contains(mapped) && names.Contains(modelKey) ? modelKey : mapped;
    }

    // Layout: the checked quant state when the checkpoint stores the weight in 4 bits.
    private sealed record Read(ModelTensor Tensor, string CheckpointKey, BitsAndBytesState.BitsAndBytesLayout? Layout = null);

    private sealed record LoadPlan(List<Read> Reads, List<CheckpointMismatch> Mismatches, List<string> FilledFromTies, List<string> Skipped);

    private static LoadPlan Plan(
        IReadOnlyList<ModelTensor> tensors, ICheckpointSource source, HashSet<string> names, KeyPrefixMapping keyPrefix, PretrainedLoadOptions options)
    {
        var mismatches = source.Problems.ToList();
        var reads = new List<Read>();
        var filled = new List<string>();
        var consumed = new HashSet<string>(StringComparer.Ordinal);
        var modelKeys = tensors.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        // A tie matters only when the model has the tensor it copies; presets list several namings.
        var ties = options.TiedWeights.Where(t => modelKeys.Contains(t.SourceKey)).DistinctBy(t => t.Key).ToList();
        string Resolve(string modelKey) => ResolveKey(modelKey, keyPrefix, names);

        foreach (var tensor in tensors)
        {
            var readKey = Resolve(tensor.Key);
            if (!names.Contains(readKey))
            {
                var tie = ties.FirstOrDefault(t => t.Key == tensor.Key);
                var tiedTo = tie is null ? null : Resolve(tie.SourceKey);
                if (tiedTo is null || !names.Contains(tiedTo))
                {
                    var tieNote = tiedTo is null ? "" : $", nor the tensor it is tied to, '{tiedTo}'";
                    mismatches.Add(new(CheckpointMismatchKind.Missing, readKey,
                        $"the model's {Describe(tensor)} {ModelTensors.Shape(tensor.StoredShape)} is not in the checkpoint{tieNote}"));
                    continue;
                }
                readKey = tiedTo;
                filled.Add(tensor.Key);
            }
            consumed.Add(readKey);
            if (tensor.Role == ModelTensorRole.ProjectionWeight && IsFourBit(readKey, names))
            {
                // Every part of the quant state belongs to this weight: a malformed one is reported once, for the weight.
                consumed.UnionWith(names.Where(n => n.StartsWith(readKey + ".", StringComparison.Ordinal)));
                if (CheckFourBit(tensor, readKey, source, names, mismatches) is { } layout) reads.Add(new Read(tensor, readKey, layout));
                continue;
            }
            if (Check(tensor, readKey, source.Info(readKey)) is { } problem)
            {
                mismatches.Add(problem);
                continue;
            }
            reads.Add(new Read(tensor, readKey));
        }
        if (source.Config is { } config)
            mismatches.AddRange(BitsAndBytesQuantizationConfig.Check(config,
                reads.Where(r => r.Layout is not null).Select(r => (r.CheckpointKey, r.Layout!.Options)).ToList()));

        foreach (var tie in ties) CheckTie(Resolve(tie.Key), Resolve(tie.SourceKey), source, names, consumed, mismatches);

        var ignored = options.IgnoredKeys.Select(p => new Regex(p, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))).ToList();
        var skipped = new List<string>();
        foreach (var name in names.Where(n => !consumed.Contains(n)).Order(StringComparer.Ordinal))
        {
            if (ignored.Any(r => r.IsMatch(name))) skipped.Add(name);
            else mismatches.Add(new(CheckpointMismatchKind.Unexpected, name, $"{Stored(source.Info(name))} has no place in the model{Hint(keyPrefix)}"));
        }

        // File problems first: they explain the missing tensors that follow.
        var ordered = mismatches.OrderBy(m => m.Kind == CheckpointMismatchKind.File ? -1 : (int)m.Kind).ThenBy(m => m.Key, StringComparer.Ordinal).ToList();
        return new LoadPlan(reads, ordered, filled, skipped);
    }

    private static CheckpointMismatch? Check(ModelTensor tensor, string key, CheckpointTensorInfo info)
    {
        if (!CheckpointDTypes.IsLoadable(info.DType))
            return new(CheckpointMismatchKind.WrongDType, key,
                $"stored as {info.DType}; the model's {Describe(tensor)} loads from F32, F16 or BF16");
        if (!info.Shape.SequenceEqual(tensor.StoredShape))
        {
            var layout = tensor.Transposed ? " (Conv1D layout, In × Out)" : "";
            return new(CheckpointMismatchKind.WrongShape, key,
                $"stored as {ModelTensors.Shape(info.Shape)}; the model's {Describe(tensor)} needs {ModelTensors.Shape(tensor.StoredShape)}{layout}");
        }
        return null;
    }

    /// <summary>Whether the checkpoint stores <paramref name="key"/> in 4 bits: it has a bitsandbytes quant state.</summary>
    private static bool IsFourBit(string key, HashSet<string> names)
        => names.Any(n => n.StartsWith(key + ".quant_state.", StringComparison.Ordinal));

    /// <summary>
    /// Checks a 4-bit weight: its quant state (every part read but the packed codes, which are checked by dtype and
    /// size), its <c>Out × In</c> shape, and that the projection can hold a 4-bit base.
    /// </summary>
    private static BitsAndBytesState.BitsAndBytesLayout? CheckFourBit(
        ModelTensor tensor, string key, ICheckpointSource source, HashSet<string> names, List<CheckpointMismatch> mismatches)
    {
        var projection = (LoraLinear)tensor.Layer.Module;
        BitsAndBytesState.BitsAndBytesLayout layout;
        try
        {
            using var scope = NewDisposeScope();
            var packed = source.Info(key);
            var packedDType = SafeTensorsDTypeOf(packed.DType);
            layout = BitsAndBytesState.ReadLayout(names, key, source.Read, packedDType, packed.Shape.Aggregate(1L, (a, b) => a * b));
        }
        catch (FormatException e)
        {
            mismatches.Add(new(CheckpointMismatchKind.QuantState, key, e.Message));
            return null;
        }
        var needed = new[] { projection.OutFeatures, projection.InFeatures };
        if (!layout.Shape.SequenceEqual(needed))
        {
            var layout4 = tensor.Transposed ? " (4-bit weights are stored Out × In, Conv1D layers too)" : "";
            mismatches.Add(new(CheckpointMismatchKind.WrongShape, key,
                $"stored in 4 bits as {ModelTensors.Shape(layout.Shape)}; the model's {Describe(tensor)} needs {ModelTensors.Shape(needed)}{layout4}"));
            return null;
        }
        if (!projection.IsQuantized && projection.Weight.requires_grad)
        {
            mismatches.Add(new(CheckpointMismatchKind.Config, key,
                $"stored in 4 bits, but the model trains the base of {Describe(tensor)}; a 4-bit base cannot be trained (load a float checkpoint, or freeze that base)"));
            return null;
        }
        return layout;
    }

    private static ScalarType SafeTensorsDTypeOf(string name)
        => SafeTensorsDType.TryParse(name, out var dtype, out _)
            ? dtype
            : throw new FormatException($"unknown dtype {name}");

    /// <summary>A tied tensor that the checkpoint stores as well must be a copy of the tensor it is tied to.</summary>
    private static void CheckTie(
        string key, string sourceKey, ICheckpointSource source, HashSet<string> names, HashSet<string> consumed, List<CheckpointMismatch> mismatches)
    {
        if (!names.Contains(key) || !names.Contains(sourceKey)) return;
        consumed.Add(key);
        var (info, sourceInfo) = (source.Info(key), source.Info(sourceKey));
        if (!CheckpointDTypes.IsLoadable(info.DType) || !CheckpointDTypes.IsLoadable(sourceInfo.DType)) return;
        if (!info.Shape.SequenceEqual(sourceInfo.Shape))
        {
            mismatches.Add(new(CheckpointMismatchKind.TiedDiffers, key,
                $"stored as {ModelTensors.Shape(info.Shape)} but tied to '{sourceKey}' {ModelTensors.Shape(sourceInfo.Shape)}"));
            return;
        }
        using var scope = NewDisposeScope();
        var tied = source.Read(key);
        var original = source.Read(sourceKey);
        if (!tied.to(original.dtype).eq(original).all().item<bool>())
            mismatches.Add(new(CheckpointMismatchKind.TiedDiffers, key, $"the model ties it to '{sourceKey}', but the stored values differ"));
    }

    // computeDType: the compute dtype of projections that become 4-bit by this load.
    private static void Apply(List<Read> reads, ICheckpointSource source, ComputeDType computeDType)
    {
        var done = 0;
        foreach (var group in reads.GroupBy(r => r.Tensor.Layer))
        {
            try
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                if (group.Key.Module is LoraLinear projection)
                {
                    var weightRead = group.Single(r => r.Tensor.Role == ModelTensorRole.ProjectionWeight);
                    var biasRead = group.SingleOrDefault(r => r.Tensor.Role == ModelTensorRole.ProjectionBias);
                    if (weightRead.Layout is { } layout)
                    {
                        // Keys renamed to the projection's own (weight…, bias); the codes and state go in as stored.
                        var state = layout.Keys.ToDictionary(k => "weight" + k[weightRead.CheckpointKey.Length..], source.Read, StringComparer.Ordinal);
                        if (biasRead is not null) state["bias"] = source.Read(biasRead.CheckpointKey);
                        BitsAndBytesState.Load(projection, state, "", computeDType);
                    }
                    else if (!projection.IsQuantized)
                    {
                        // A float base straight into its parameter, as embeddings below: converted block by block when
                        // the dtypes differ, a transposed (Conv1D) one through its transposed view.
                        var weight = projection.Weight;
                        source.ReadInto(weightRead.CheckpointKey, weightRead.Tensor.Transposed ? weight.t() : weight);
                        if (biasRead is not null) source.ReadInto(biasRead.CheckpointKey, projection.Bias!);
                    }
                    else
                    {
                        // As stored, without a converted copy: a 4-bit base quantizes slice by slice and records the
                        // stored dtype as its original one, as bitsandbytes does.
                        var weight = source.Read(weightRead.CheckpointKey);
                        if (weightRead.Tensor.Transposed) weight = weight.t();
                        projection.LoadBase(weight, biasRead is null ? null : source.Read(biasRead.CheckpointKey));
                    }
                }
                else
                {
                    // Straight into the parameter: no full-size temporary of an embedding or head.
                    foreach (var read in group) source.ReadInto(read.CheckpointKey, read.Tensor.Parameter!);
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InvalidOperationException(
                    $"Loading layer '{group.Key.Path}' from '{source.Description}' failed after {done} of {reads.Count} tensors were written; "
                    + $"the model is partly loaded. {e.Message}", e);
            }
            done += group.Count();
        }
    }

    private static string Describe(ModelTensor tensor) => $"{tensor.Layer.Kind} '{tensor.Layer.Path}' {tensor.Key[(tensor.Layer.Path.Length + 1)..]}";

    private static string Stored(CheckpointTensorInfo info) => $"{info.DType} {ModelTensors.Shape(info.Shape)}";

    private static string Hint(KeyPrefixMapping keyPrefix)
        => keyPrefix.IsIdentity ? "" : $" (keys mapped: {keyPrefix})";
}
