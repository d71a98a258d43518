using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftGen.Formats;

namespace PeftGen.Formats.BitsAndBytes;

/// <summary>
/// The <c>quantization_config</c> entry of <c>config.json</c> that transformers writes for a model quantized with
/// bitsandbytes in 4 bits (<c>BitsAndBytesConfig.to_dict()</c>), and what a folder holding 4-bit weights must say in it.
/// </summary>
/// <remarks>
/// One setting covers the whole model: quant type, double quantization, compute dtype and uint8 storage. The block
/// size is not part of it (transformers reads it from each weight's quant state). <c>llm_int8_skip_modules</c> lists
/// the linear modules that stay in 16/32 bits; an explicit list replaces transformers' default (the output head), so
/// it also names <c>lm_head</c> unless the model stores that head in 4 bits.
/// </remarks>
internal static class BitsAndBytesQuantizationConfig
{
    /// <summary>The key in <c>config.json</c>.</summary>
    public const string Key = "quantization_config";

    /// <summary>transformers' name for a causal language model's output projection.</summary>
    public const string OutputHead = SettingRules.OutputHeadName;

    /// <summary>
    /// The entry for a model whose 4-bit projections all use <paramref name="options"/> and whose float projections
    /// are <paramref name="floatModules"/> (checkpoint module names, without <c>.weight</c>).
    /// </summary>
    public static JsonObject Describe(Quant4BitOptions options, IEnumerable<string> floatModules, IReadOnlyCollection<string> quantizedModules)
    {
        var skip = floatModules.ToHashSet(StringComparer.Ordinal);
        if (!quantizedModules.Contains(OutputHead)) skip.Add(OutputHead);
        return new JsonObject
        {
            ["_load_in_4bit"] = true,
            ["_load_in_8bit"] = false,
            ["bnb_4bit_compute_dtype"] = ComputeDTypeName(options.ComputeDType),
            ["bnb_4bit_quant_storage"] = "uint8",
            ["bnb_4bit_quant_type"] = CodeBooks.Name(options.QuantType),
            ["bnb_4bit_use_double_quant"] = options.DoubleQuant,
            ["llm_int8_enable_fp32_cpu_offload"] = false,
            ["llm_int8_has_fp16_weight"] = false,
            ["llm_int8_skip_modules"] = new JsonArray(skip.Order(StringComparer.Ordinal).Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
            ["llm_int8_threshold"] = 6.0,
            ["load_in_4bit"] = true,
            ["load_in_8bit"] = false,
            ["quant_method"] = "bitsandbytes",
        };
    }

    /// <summary>
    /// What is wrong with <paramref name="config"/>'s entry for a folder whose 4-bit weights are
    /// <paramref name="quantized"/> (checkpoint key of the weight, its settings): it must exist, be bitsandbytes' 4-bit
    /// entry with uint8 storage, name the quant type and double quantization of every weight, and skip none of them.
    /// </summary>
    public static IEnumerable<CheckpointMismatch> Check(JsonObject config, IReadOnlyList<(string Key, Quant4BitOptions Options)> quantized)
    {
        if (quantized.Count == 0) yield break;
        if (config[Key] is not JsonObject entry)
        {
            yield return Mismatch($"the checkpoint stores {quantized.Count} weights in 4 bits (bitsandbytes) but config.json has no {Key} object");
            yield break;
        }
        if (String(entry, "quant_method") != "bitsandbytes")
            yield return Mismatch($"{Key}.quant_method is {Text(entry, "quant_method")}, expected \"bitsandbytes\" for 4-bit bitsandbytes weights");
        if (Bool(entry, "load_in_4bit") != true)
            yield return Mismatch($"{Key}.load_in_4bit is {Text(entry, "load_in_4bit")}, expected true for 4-bit weights");
        if (entry["bnb_4bit_quant_storage"] is not null && String(entry, "bnb_4bit_quant_storage") != "uint8")
            yield return Mismatch($"{Key}.bnb_4bit_quant_storage is {Text(entry, "bnb_4bit_quant_storage")}; only \"uint8\" storage is read");

        var quantType = String(entry, "bnb_4bit_quant_type");
        var doubleQuant = Bool(entry, "bnb_4bit_use_double_quant");
        var skip = entry["llm_int8_skip_modules"] is JsonArray list ? list.Select(n => n?.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : null).ToList() : [];
        foreach (var (key, options) in quantized)
        {
            if (quantType != CodeBooks.Name(options.QuantType))
                yield return new(CheckpointMismatchKind.Config, key, $"stored as {CodeBooks.Name(options.QuantType)}, but {Key}.bnb_4bit_quant_type is {Text(entry, "bnb_4bit_quant_type")}");
            if (doubleQuant != options.DoubleQuant)
                yield return new(CheckpointMismatchKind.Config, key, $"stored {(options.DoubleQuant ? "with" : "without")} double quantization, but {Key}.bnb_4bit_use_double_quant is {Text(entry, "bnb_4bit_use_double_quant")}");
            var module = ModuleOf(key);
            var skipping = skip.FirstOrDefault(s => s is not null && (module == s || module.StartsWith(s + ".", StringComparison.Ordinal) || module.Contains("." + s + ".", StringComparison.Ordinal) || module.EndsWith("." + s, StringComparison.Ordinal)));
            if (skipping is not null)
                yield return new(CheckpointMismatchKind.Config, key, $"stored in 4 bits, but {Key}.llm_int8_skip_modules keeps '{skipping}' unquantized");
        }
    }

    /// <summary>The compute dtype the entry names; <see cref="ComputeDType.Auto"/> when it names none we know.</summary>
    public static ComputeDType ComputeDTypeOf(JsonObject? config)
        => (config?[Key] as JsonObject)?["bnb_4bit_compute_dtype"] is JsonValue value && value.GetValueKind() == JsonValueKind.String
            ? value.GetValue<string>() switch
            {
                "float32" => ComputeDType.Float32,
                "bfloat16" => ComputeDType.BFloat16,
                "float16" => ComputeDType.Float16,
                _ => ComputeDType.Auto,
            }
            : ComputeDType.Auto;

    /// <summary>The module of a weight key (<c>model.layers.0.mlp.up_proj.weight</c> → <c>model.layers.0.mlp.up_proj</c>).</summary>
    public static string ModuleOf(string weightKey)
        => weightKey.EndsWith(".weight", StringComparison.Ordinal) ? weightKey[..^".weight".Length] : weightKey;

    /// <summary>
    /// transformers' spelling of the compute dtype. <see cref="ComputeDType.Auto"/> (bfloat16 on CUDA, float32
    /// elsewhere) has no counterpart; it is written as float32, transformers' own default.
    /// </summary>
    private static string ComputeDTypeName(ComputeDType computeDType) => computeDType switch
    {
        ComputeDType.BFloat16 => "bfloat16",
        ComputeDType.Float16 => "float16",
        _ => "float32",
    };

    private static CheckpointMismatch Mismatch(string detail) => new(CheckpointMismatchKind.Config, HfConfigKey, detail);

    private const string HfConfigKey = "config.json";

    private static string? String(JsonObject entry, string field)
        => entry[field] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    private static bool? Bool(JsonObject entry, string field)
        => entry[field] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;

    private static string Text(JsonObject entry, string field) => entry[field]?.ToJsonString() ?? "missing";
}
