using System;
using System.Collections.Generic;
using System.Globalization;
using PeftGen.Formats;
using PeftGen.Formats.SafeTensors;
using PeftGen.Precision;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// A resumable training state in one safetensors file: the trained tensors (<c>trainable/NAME</c>), AdamW's moments
/// (<c>adamw.exp_avg/NAME</c>, <c>adamw.exp_avg_sq/NAME</c>), torch's CPU generator state (<c>rng.cpu</c>), and the
/// step, optimizer step count and seed in the metadata. Written atomically with <see cref="SafeTensorsFile.Save"/>.
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>The file name the trainer writes inside its checkpoint folder.</summary>
    public const string FileName = "checkpoint.safetensors";

    private const string Format = "peftgen.training-checkpoint";
    private const string FormatVersion = "1";

    /// <summary>Writes the state after <paramref name="step"/> completed steps (and the loss scale, when there is one).</summary>
    public static void Save(string path, int step, long seed, IReadOnlyList<(string Name, Parameter Parameter)> trainable, AdamWOptimizer optimizer,
        LossScaler? lossScaler = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(trainable);
        ArgumentNullException.ThrowIfNull(optimizer);
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, parameter) in trainable) tensors["trainable/" + name] = parameter.detach();
        foreach (var (name, (m, v)) in optimizer.Moments)
        {
            tensors["adamw.exp_avg/" + name] = m;
            tensors["adamw.exp_avg_sq/" + name] = v;
        }
        tensors["rng.cpu"] = random.get_rng_state();
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["format_version"] = FormatVersion,
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["optimizer_step"] = optimizer.StepCount.ToString(CultureInfo.InvariantCulture),
            ["seed"] = seed.ToString(CultureInfo.InvariantCulture),
        };
        if (lossScaler is not null)
        {
            metadata["loss_scale"] = lossScaler.Scale.ToString("R", CultureInfo.InvariantCulture);
            metadata["loss_scale_good_steps"] = lossScaler.GoodSteps.ToString(CultureInfo.InvariantCulture);
        }
        SafeTensorsFile.Save(path, tensors, metadata);
    }

    /// <summary>
    /// Restores trained tensors, optimizer state and the generator from <paramref name="path"/> and returns the
    /// number of completed steps. Every trained parameter must be in the file with its shape, and nothing else;
    /// otherwise nothing is changed and the error lists what differs. A damaged file fails with
    /// <see cref="PeftFormatException"/>. <paramref name="lossScaler"/>, when given, takes the file's loss scale; a
    /// checkpoint written without one (a bfloat16 or float32 run) leaves it at its initial scale.
    /// </summary>
    public static int Load(string path, IReadOnlyList<(string Name, Parameter Parameter)> trainable, AdamWOptimizer optimizer,
        LossScaler? lossScaler = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(trainable);
        ArgumentNullException.ThrowIfNull(optimizer);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            Dictionary<string, string> metadata;
            using (var file = SafeTensorsFile.Open(path))
            {
                metadata = new Dictionary<string, string>(file.Metadata, StringComparer.Ordinal);
                foreach (var name in file.Names) tensors[name] = file.Read(name);
            }
            if (!metadata.TryGetValue("format", out var format) || format != Format)
                throw new InvalidOperationException($"'{path}' is not a PeftGen training checkpoint.");
            if (!metadata.TryGetValue("step", out var stepText) || !int.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out var step)
                || !metadata.TryGetValue("optimizer_step", out var optimizerText) || !long.TryParse(optimizerText, NumberStyles.None, CultureInfo.InvariantCulture, out var optimizerStep))
                throw new PeftFormatException(path, null, "the checkpoint metadata has no valid 'step' and 'optimizer_step'");
            (double Scale, int GoodSteps)? savedScale = null;
            if (metadata.TryGetValue("loss_scale", out var scaleText))
            {
                if (!double.TryParse(scaleText, NumberStyles.Float, CultureInfo.InvariantCulture, out var scale) || !(scale > 0) || scale > float.MaxValue
                    || !metadata.TryGetValue("loss_scale_good_steps", out var goodText) || !int.TryParse(goodText, NumberStyles.None, CultureInfo.InvariantCulture, out var good))
                    throw new PeftFormatException(path, null, "the checkpoint metadata has a 'loss_scale' that is not a positive float32 or no valid 'loss_scale_good_steps'");
                savedScale = (scale, good);
            }

            var problems = new List<string>();
            var known = new HashSet<string>(StringComparer.Ordinal) { "rng.cpu" };
            var moments = new Dictionary<string, (Tensor, Tensor)>(StringComparer.Ordinal);
            foreach (var (name, parameter) in trainable)
            {
                var key = "trainable/" + name;
                known.Add(key);
                if (!tensors.TryGetValue(key, out var saved)) problems.Add($"missing '{key}'");
                else if (!saved.shape.AsSpan().SequenceEqual(parameter.shape))
                    problems.Add($"'{key}' is [{string.Join(", ", saved.shape)}], the parameter [{string.Join(", ", parameter.shape)}]");
                string mKey = "adamw.exp_avg/" + name, vKey = "adamw.exp_avg_sq/" + name;
                known.Add(mKey);
                known.Add(vKey);
                if (tensors.TryGetValue(mKey, out var m) && tensors.TryGetValue(vKey, out var v)) moments[name] = (m, v);
            }
            foreach (var name in tensors.Keys)
            {
                if (!known.Contains(name)) problems.Add($"unexpected '{name}'");
            }
            if (!tensors.ContainsKey("rng.cpu")) problems.Add("missing 'rng.cpu'");
            if (problems.Count > 0)
                throw new InvalidOperationException($"Checkpoint '{path}' does not fit the trained parameters: {string.Join("; ", problems)}.");

            optimizer.Restore(optimizerStep, moments);
            using (no_grad())
            {
                foreach (var (name, parameter) in trainable) parameter.copy_(tensors["trainable/" + name]);
            }
            random.set_rng_state(tensors["rng.cpu"]);
            if (lossScaler is not null && savedScale is { } state) lossScaler.Restore(state.Scale, state.GoodSteps);
            return step;
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }
}
