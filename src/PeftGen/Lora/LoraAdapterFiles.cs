using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Formats;
using PeftGen.Formats.Peft;
using PeftGen.Checkpoints;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// Saves and loads LoRA adapters in Hugging Face PEFT's layout: a folder with <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c> holding only the adapter's tensors, keyed
/// <c>base_model.model.{module path}.lora_A.weight</c> / <c>lora_B.weight</c>.
/// </summary>
public static class LoraAdapterFiles
{
    /// <summary>Writes the adapter to <paramref name="folder"/> (created if needed). Each file is written atomically.</summary>
    /// <param name="model">The model.</param>
    /// <param name="folder">The adapter folder.</param>
    /// <param name="adapter">The adapter to save.</param>
    /// <param name="baseModelNameOrPath">Recorded as <c>base_model_name_or_path</c>, and checked when loading.</param>
    public static void SaveAdapter(this IPeftModel model, string folder, string adapter = SettingRules.DefaultName, string? baseModelNameOrPath = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var config = DescribeAdapter(model, adapter, baseModelNameOrPath);
        PeftAdapterFolder.Save(folder, config, model.AdapterStateDict(adapter));
    }

    /// <summary>
    /// Describes the adapter as PEFT's <c>LoraConfig</c>: the most common rank, alpha and dropout, with
    /// <c>rank_pattern</c>/<c>alpha_pattern</c> for the projections that differ.
    /// </summary>
    public static LoraAdapterConfig DescribeAdapter(IPeftModel model, string adapter = SettingRules.DefaultName, string? baseModelNameOrPath = null)
    {
        var targets = model.Projections().Where(p => p.Layer.Adapters.Contains(adapter, StringComparer.Ordinal)).ToList();
        if (targets.Count == 0)
            throw new KeyNotFoundException($"The model has no LoRA adapter named '{adapter}'. Adapters: {string.Join(", ", model.AdapterNames())}.");
        var configs = targets.Select(t => (t.Path, Config: t.Layer.AdapterConfig(adapter))).ToList();
        if (configs.Select(c => c.Config.UseRsLora).Distinct().Count() > 1)
            throw new InvalidOperationException($"Adapter '{adapter}' mixes rsLoRA and plain LoRA scaling, which PEFT's adapter_config.json cannot express.");
        var rank = MostCommon(configs.Select(c => c.Config.Rank));
        var alpha = MostCommon(configs.Select(c => c.Config.Alpha));
        var dropouts = configs.Select(c => c.Config.Dropout).Distinct().ToList();
        var layouts = model.Layers.Where(l => targets.Any(t => t.Path == l.Path)).Select(l => l.CheckpointLayout).Distinct().ToList();
        return new LoraAdapterConfig
        {
            BaseModelNameOrPath = baseModelNameOrPath,
            Rank = rank,
            Alpha = alpha,
            Dropout = MostCommon(configs.Select(c => c.Config.Dropout)),
            UseRsLora = configs[0].Config.UseRsLora,
            TargetModules = targets.Select(t => LastSegment(t.Path)).Distinct(StringComparer.Ordinal).OrderBy(n => n, StringComparer.Ordinal).ToList(),
            // GPT-2's Conv1D stores In × Out; PEFT marks adapters on such layers with fan_in_fan_out.
            FanInFanOut = layouts.Count == 1 && layouts[0] == WeightLayout.InOut,
            RankPattern = configs.Where(c => c.Config.Rank != rank).ToDictionary(c => c.Path, c => c.Config.Rank, StringComparer.Ordinal),
            AlphaPattern = configs.Where(c => c.Config.Alpha != alpha).ToDictionary(c => c.Path, c => c.Config.Alpha, StringComparer.Ordinal),
        };
    }

    /// <summary>
    /// Loads an adapter saved by PEFT or by <see cref="SaveAdapter"/> into the model's adapter of that name. The folder
    /// (files present, tensors as its config describes, dtypes: see <see cref="PeftAdapterFolder"/>), names, shapes and
    /// the configuration are all checked first; if anything does not fit, a <see cref="CheckpointMismatchException"/>
    /// lists every problem and the model is left exactly as it was.
    /// </summary>
    /// <param name="model">The model, which declares the adapter (its projections, rank and scaling).</param>
    /// <param name="folder">The adapter folder.</param>
    /// <param name="adapter">The model's adapter to fill.</param>
    /// <param name="expectedBaseModel">When given, the file's <c>base_model_name_or_path</c> must equal it.</param>
    /// <exception cref="CheckpointMismatchException">A file is missing or the adapter does not fit; nothing changed.</exception>
    /// <exception cref="PeftFormatException">A file is malformed; nothing changed.</exception>
    public static void LoadAdapter(this IPeftModel model, string folder, string adapter = SettingRules.DefaultName, string? expectedBaseModel = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        using var files = PeftAdapterFolder.Open(folder, ReadMode.Collecting);
        var problems = new List<CheckpointMismatch>(files.Problems);
        if (files.Config is null || files.Weights is not { } file) throw new CheckpointMismatchException(folder, problems);

        var declared = model.Projections().Where(p => p.Layer.Adapters.Contains(adapter, StringComparer.Ordinal)).ToList();
        if (declared.Count == 0)
            throw new KeyNotFoundException($"The model has no LoRA adapter named '{adapter}' to load into. Adapters: {string.Join(", ", model.AdapterNames())}.");

        if (files.Config is not LoraAdapterConfig lora)
        {
            problems.Add(new(CheckpointMismatchKind.Config, "peft_type", $"expected LORA, found {files.Config.PeftType}."));
            throw new CheckpointMismatchException(folder, problems);
        }
        if (expectedBaseModel is not null && !string.Equals(lora.BaseModelNameOrPath, expectedBaseModel, StringComparison.Ordinal))
            problems.Add(new(CheckpointMismatchKind.Config, "base_model_name_or_path", $"expected '{expectedBaseModel}', found '{lora.BaseModelNameOrPath}'."));

        var expected = new Dictionary<string, (LoraLinear Layer, bool IsA, long[] Shape)>(StringComparer.Ordinal);
        foreach (var (path, layer) in declared)
        {
            var own = layer.AdapterConfig(adapter);
            var rank = lora.RankPattern.TryGetValue(path, out var r) ? r : lora.Rank;
            var alpha = lora.AlphaPattern.TryGetValue(path, out var a) ? a : lora.Alpha;
            if (rank != own.Rank) problems.Add(new(CheckpointMismatchKind.Config, path, $"rank {rank} in the file, {own.Rank} in the model."));
            if (Math.Abs(lora.ScaleFor(rank, alpha) - own.Scale) > 1e-12 * Math.Abs(own.Scale))
                problems.Add(new(CheckpointMismatchKind.Config, path, $"scale {lora.ScaleFor(rank, alpha)} (alpha {alpha}) in the file, {own.Scale} (alpha {own.Alpha}) in the model."));
            expected[PeftAdapterFolder.LoraAKey(path)] = (layer, true, [own.Rank, layer.InFeatures]);
            expected[PeftAdapterFolder.LoraBKey(path)] = (layer, false, [layer.OutFeatures, own.Rank]);
        }

        // Tensors the folder already reported (not part of the adapter, wrong dtype, a missing partner) are not reported twice.
        var reported = problems.Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var name in file.Names.Where(n => !expected.ContainsKey(n) && !reported.Contains(n)).OrderBy(n => n, StringComparer.Ordinal))
            problems.Add(new(CheckpointMismatchKind.Unexpected, name, "the model has no projection with this adapter at that path."));
        foreach (var (key, entry) in expected.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (reported.Contains(key)) continue;
            if (!file.Contains(key))
            {
                problems.Add(new(CheckpointMismatchKind.Missing, key, $"expected shape {ModelTensors.Shape(entry.Shape)}."));
                continue;
            }
            var info = file.TensorInfo(key);
            if (!info.Shape.SequenceEqual(entry.Shape))
                problems.Add(new(CheckpointMismatchKind.WrongShape, key, $"file {ModelTensors.Shape(info.Shape)}, model {ModelTensors.Shape(entry.Shape)}."));
        }
        if (problems.Count > 0) throw new CheckpointMismatchException(folder, problems);

        // Everything fits: read all first, then copy, so a read error cannot leave half an adapter behind.
        var loaded = new List<(Tensor Target, Tensor Value)>();
        try
        {
            foreach (var (key, entry) in expected)
            {
                var target = entry.IsA ? entry.Layer.LoraA(adapter) : entry.Layer.LoraB(adapter);
                loaded.Add((target, file.Read(key).to(target.dtype, target.device)));
            }
            using var _ = no_grad();
            foreach (var (target, value) in loaded) target.copy_(value);
        }
        finally
        {
            foreach (var (_, value) in loaded) value.Dispose();
        }
    }

    /// <summary>
    /// Loads a LoRA adapter saved by PEFT or by <see cref="SaveAdapter"/> as a new adapter named
    /// <paramref name="adapter"/>, with the rank, alpha, dropout and rsLoRA setting its <c>adapter_config.json</c> gives
    /// and on the projections its weights name, whatever the model declared at compile time (PEFT's
    /// <c>load_adapter(path, adapter_name)</c>). The declared adapters and the compile-time accounting, which describes
    /// them, are untouched; the new adapter is frozen (use it with <c>AdapterContext.Use</c> or make it active) and can
    /// be removed again with <see cref="LoraLinear.DeleteAdapter"/>. Everything is checked before anything is added: if
    /// the folder does not fit, a <see cref="CheckpointMismatchException"/> lists every problem and the model is left
    /// exactly as it was.
    /// </summary>
    /// <param name="model">The model whose projections receive the adapter.</param>
    /// <param name="folder">The adapter folder.</param>
    /// <param name="adapter">The new adapter's name; no projection may have an adapter of that name yet.</param>
    /// <exception cref="ArgumentException">The name is empty, contains '.', or is taken.</exception>
    /// <exception cref="CheckpointMismatchException">A file is missing or the adapter does not fit; nothing changed.</exception>
    /// <exception cref="PeftFormatException">A file is malformed; nothing changed.</exception>
    public static void LoadAdapterAs(this IPeftModel model, string folder, string adapter)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(adapter);
        if (!SettingRules.IsValidModuleName(adapter)) throw new ArgumentException($"Adapter name '{adapter}' must not contain '.'.", nameof(adapter));
        if (model.AdapterNames().Contains(adapter, StringComparer.Ordinal))
            throw new ArgumentException($"The model already has an adapter named '{adapter}'; load into it with LoadAdapter, or choose another name.", nameof(adapter));

        using var files = PeftAdapterFolder.Open(folder, ReadMode.Collecting);
        var problems = new List<CheckpointMismatch>(files.Problems);
        if (files.Config is null || files.Weights is not { } file) throw new CheckpointMismatchException(folder, problems);
        if (files.Config is not LoraAdapterConfig lora)
        {
            problems.Add(new(CheckpointMismatchKind.Config, "peft_type", $"expected LORA, found {files.Config.PeftType}."));
            throw new CheckpointMismatchException(folder, problems);
        }

        // The projections the file's weights name, each with the settings the config gives it.
        var targets = new List<(string Path, LoraLinear Layer, LoraConfig Config)>();
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, layer) in model.Projections())
        {
            string aKey = PeftAdapterFolder.LoraAKey(path), bKey = PeftAdapterFolder.LoraBKey(path);
            if (!file.Contains(aKey) && !file.Contains(bKey)) continue;
            expected.Add(aKey);
            expected.Add(bKey);
            var config = new LoraConfig(
                lora.RankPattern.TryGetValue(path, out var r) ? r : lora.Rank,
                lora.AlphaPattern.TryGetValue(path, out var a) ? a : lora.Alpha,
                lora.Dropout,
                lora.UseRsLora);
            try
            {
                config.Validate(layer.InFeatures, layer.OutFeatures);
            }
            catch (ArgumentException e)
            {
                problems.Add(new(CheckpointMismatchKind.Config, path, e.Message));
                continue;
            }
            foreach (var (key, shape) in new[] { (aKey, new long[] { config.Rank, layer.InFeatures }), (bKey, new long[] { layer.OutFeatures, config.Rank }) })
            {
                if (!file.Contains(key)) problems.Add(new(CheckpointMismatchKind.Missing, key, $"expected shape {ModelTensors.Shape(shape)}."));
                else if (!file.TensorInfo(key).Shape.SequenceEqual(shape))
                    problems.Add(new(CheckpointMismatchKind.WrongShape, key, $"file {ModelTensors.Shape(file.TensorInfo(key).Shape)}, model {ModelTensors.Shape(shape)}."));
            }
            targets.Add((path, layer, config));
        }
        var reported = problems.Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var name in file.Names.Where(n => !expected.Contains(n) && !reported.Contains(n)).OrderBy(n => n, StringComparer.Ordinal))
            problems.Add(new(CheckpointMismatchKind.Unexpected, name, "the model has no projection at that path."));
        if (targets.Count == 0 && problems.Count == 0)
            problems.Add(new(CheckpointMismatchKind.Missing, "lora_A/lora_B", "the file holds no LoRA weights for any of the model's projections."));
        if (problems.Count > 0) throw new CheckpointMismatchException(folder, problems);

        // Everything fits: read every tensor first, then add and fill; a failure removes what was added.
        var values = new List<(Tensor A, Tensor B)>();
        var added = new List<LoraLinear>();
        try
        {
            foreach (var (path, _, _) in targets)
                values.Add((file.Read(PeftAdapterFolder.LoraAKey(path)), file.Read(PeftAdapterFolder.LoraBKey(path))));
            using var _ = no_grad();
            for (int i = 0; i < targets.Count; i++)
            {
                var (_, layer, config) = targets[i];
                // Loading does not activate: a projection that had no adapter keeps none active.
                var active = layer.ActiveAdapter;
                layer.AddAdapter(adapter, config);
                added.Add(layer);
                if (active is null) layer.SetActiveAdapter(null);
                var (loraA, loraB) = (layer.LoraA(adapter), layer.LoraB(adapter));
                loraA.copy_(values[i].A);
                loraB.copy_(values[i].B);
                loraA.requires_grad = false;
                loraB.requires_grad = false;
            }
        }
        catch
        {
            foreach (var layer in added) layer.DeleteAdapter(adapter);
            throw;
        }
        finally
        {
            foreach (var (a, b) in values)
            {
                a.Dispose();
                b.Dispose();
            }
        }
    }

    private static string LastSegment(string path) => path[(path.LastIndexOf('.') + 1)..];

    private static T MostCommon<T>(IEnumerable<T> values) where T : notnull
        => values.GroupBy(v => v).OrderByDescending(g => g.Count()).First().Key;
}
