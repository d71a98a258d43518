using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Accounting;

/// <summary>
/// Parameter and memory accounting as a pure function of the model's spec, computed at compile time.
/// Counts are logical (a 4-bit weight counts its values, as PEFT reports them); bytes are real (packed codes and
/// quantization state for 4-bit weights, two bytes per float value of a frozen projection of a 16-bit model, float32 for
/// everything else).
/// </summary>
internal static class ParameterAccounting
{
    private const long Float32Bytes = 4;

    /// <summary>bfloat16 and float16: a 16-bit model's frozen projection values.</summary>
    private const long SixteenBitBytes = 2;

    /// <summary>AdamW keeps two float32 moments per trainable parameter.</summary>
    private const long AdamWBytesPerParameter = 2 * Float32Bytes;

    /// <exception cref="System.OverflowException">A count does not fit a 64-bit integer.</exception>
    public static AccountingResult Compute(AccountingSpec spec)
    {
        checked
        {
            long all = 0, trainable = 0, baseParameters = 0, weightBytes = 0;
            var adapters = new List<NamedCount>();
            var members = new List<MemberCount>();
            foreach (var layer in spec.Layers)
            {
                var layerBase = layer.BaseParameters * layer.Instances;
                var layerAdapters = layer.Adapters.Sum(a => a.Parameters) * layer.Instances;
                var layerTrainable = (layer.Trainable ? layerBase : 0)
                    + layer.Adapters.Where(a => a.Name == spec.ActiveAdapter).Sum(a => a.Parameters) * layer.Instances;
                var floatBytes = spec.SixteenBitBases && SixteenBit.SixteenBitResolution.Applies(layer.Kind, layer.Trainable) ? SixteenBitBytes : Float32Bytes;
                var layerBaseBytes = layer.QuantizedValues > 0 && layer.Quantization is { } quantization
                    ? (Quantization.QuantSpec.StorageBytes(layer.QuantizedValues, quantization.BlockSize, quantization.DoubleQuant)
                        + (layer.BaseParameters - layer.QuantizedValues) * floatBytes) * layer.Instances
                    : layerBase * floatBytes;
                var layerBytes = layerBaseBytes + (layerAdapters * Float32Bytes);

                baseParameters += layerBase;
                all += layerBase + layerAdapters;
                trainable += layerTrainable;
                weightBytes += layerBytes;
                foreach (var adapter in layer.Adapters) Add(adapters, adapter.Name, adapter.Parameters * layer.Instances);
                members.Add(new MemberCount(layer.Path, LayerKinds.RuntimeName(layer.Kind), layer.Instances, layerBase, layerAdapters, layerTrainable, layerBytes));
        }

        var prompts = new List<NamedCount>();
        foreach (var prompt in spec.Prompts)
        {
            all += prompt.Parameters;
            weightBytes += prompt.Parameters * Float32Bytes;
            if (prompt.Name == spec.ActivePrompt) trainable += prompt.Parameters;
            Add(prompts, prompt.Name, prompt.Parameters);
        }

        var fullWeightBytes = baseParameters * Float32Bytes;
        var fullBytes = fullWeightBytes + (baseParameters * Float32Bytes) + (baseParameters * AdamWBytesPerParameter);
        var gradientBytes = trainable * Float32Bytes;
        var optimizerBytes = trainable * AdamWBytesPerParameter;
        return new AccountingResult(
            all,
            trainable,
            baseParameters,
            adapters.ToEquatableArray(),
            prompts.ToEquatableArray(),
            members.ToEquatableArray(),
            fullWeightBytes,
            fullBytes,
            weightBytes,
            gradientBytes,
            optimizerBytes,
            weightBytes + gradientBytes + optimizerBytes,
            Summary(trainable, all));
        }
    }

    /// <summary>
    /// PEFT's <c>print_trainable_parameters</c> line:
    /// <c>f"trainable params: {t:,d} || all params: {a:,d} || trainable%: {100 * t / a:.4f}"</c>.
    /// </summary>
    public static string Summary(long trainable, long all)
    {
        var percent = all == 0 ? 0d : 100d * trainable / all;
        return string.Format(CultureInfo.InvariantCulture, "trainable params: {0:N0} || all params: {1:N0} || trainable%: {2:F4}", trainable, all, percent);
    }

    private static void Add(List<NamedCount> counts, string name, long parameters)
    {
        var index = counts.FindIndex(c => c.Name == name);
        if (index < 0) counts.Add(new NamedCount(name, parameters));
        else counts[index] = counts[index] with { Parameters = checked(counts[index].Parameters + parameters) };
    }
}
