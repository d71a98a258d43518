using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Formats.Json;

namespace PeftGen.Formats.Peft;

/// <summary>PEFT's <c>LoraConfig</c> as saved in <c>adapter_config.json</c> (<c>peft_type</c> <c>LORA</c>).</summary>
public sealed class LoraAdapterConfig : PeftAdapterConfig
{
    private static readonly string[] Modelled =
    [
        "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "fan_in_fan_out", "use_rslora", "rank_pattern",
        "alpha_pattern", "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern", "use_dora",
    ];

    /// <inheritdoc />
    public override PeftType PeftType => PeftType.Lora;

    /// <summary><c>r</c>: the rank. PEFT's default is 8.</summary>
    public int Rank { get; init; } = 8;

    /// <summary><c>lora_alpha</c>: the scaling numerator. Written as an integer when it is one (PEFT types it <c>int</c>).</summary>
    public double Alpha { get; init; } = 8;

    /// <summary><c>lora_dropout</c>, in [0, 1).</summary>
    public double Dropout { get; init; }

    /// <summary><c>target_modules</c> as a list of module-name suffixes (written sorted, as PEFT's set is).</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }

    /// <summary>
    /// <c>target_modules</c> given as one string: a regular expression that must match the full module name, or PEFT's
    /// special value <c>all-linear</c>.
    /// </summary>
    public string? TargetModulesRegex { get; init; }

    /// <summary><c>bias</c>: <c>none</c>, <c>all</c> or <c>lora_only</c>.</summary>
    public string Bias { get; init; } = "none";

    /// <summary><c>fan_in_fan_out</c>: true when the base weights are stored <c>In × Out</c> (GPT-2's Conv1D).</summary>
    public bool FanInFanOut { get; init; }

    /// <summary><c>use_rslora</c>: scale by <c>alpha / √r</c> instead of <c>alpha / r</c>.</summary>
    public bool UseRsLora { get; init; }

    /// <summary><c>rank_pattern</c>: per-module ranks that override <see cref="Rank"/>.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary><c>alpha_pattern</c>: per-module alphas that override <see cref="Alpha"/>.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary><c>modules_to_save</c>: modules trained in full and saved beside the adapter.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary><c>init_lora_weights</c> when it is a boolean (true: PEFT's default init; false: B random too).</summary>
    public bool InitLoraWeights { get; init; } = true;

    /// <summary><c>init_lora_weights</c> when it names a method (<c>gaussian</c>, <c>pissa</c>, ...); overrides <see cref="InitLoraWeights"/>.</summary>
    public string? InitLoraWeightsMethod { get; init; }

    /// <summary><c>layers_to_transform</c>: only these layer indices get LoRA.</summary>
    public IReadOnlyList<int>? LayersToTransform { get; init; }

    /// <summary><c>layers_pattern</c>: the name of the layer stack that <see cref="LayersToTransform"/> indexes.</summary>
    public IReadOnlyList<string>? LayersPattern { get; init; }

    /// <summary>The scale PEFT applies to <c>B·A</c> for a module with rank <paramref name="rank"/> and alpha <paramref name="alpha"/>.</summary>
    /// <param name="rank">The module's rank.</param>
    /// <param name="alpha">The module's alpha.</param>
    /// <returns><c>alpha / r</c>, or <c>alpha / √r</c> with rsLoRA.</returns>
    public double ScaleFor(int rank, double alpha) => UseRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Rank <= 0)
            throw new ArgumentException($"r must be positive, not {Rank}.");
        if (!(Alpha > 0) || !double.IsFinite(Alpha))
            throw new ArgumentException($"lora_alpha must be positive and finite, not {Alpha}.");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ArgumentException($"lora_dropout must be in [0, 1), not {Dropout}.");
        if (Bias is not ("none" or "all" or "lora_only"))
            throw new ArgumentException($"bias must be none, all or lora_only, not '{Bias}'.");
        if (TargetModules is not null && TargetModulesRegex is not null)
            throw new ArgumentException("Set TargetModules or TargetModulesRegex, not both.");
        foreach (var (module, rank) in RankPattern)
        {
            if (rank <= 0)
                throw new ArgumentException($"rank_pattern['{module}'] must be positive, not {rank}.");
        }
        foreach (var (module, alpha) in AlphaPattern)
        {
            if (!(alpha > 0) || !double.IsFinite(alpha))
                throw new ArgumentException($"alpha_pattern['{module}'] must be positive and finite, not {alpha}.");
        }
        if (LayersPattern is not null && LayersToTransform is null)
            throw new ArgumentException("layers_pattern needs layers_to_transform (PEFT refuses it alone).");
    }

    internal static LoraAdapterConfig FromFields(ConfigFields fields)
    {
        if (fields.Bool("use_dora", false))
            throw fields.Error("use_dora", "DoRA adapters are not supported by PeftGen.");
        var targets = fields.StringList("target_modules", out var targetRegex, allowSingle: true);
        var (init, initMethod) = fields.BoolOrString("init_lora_weights", true);
        var config = new LoraAdapterConfig
        {
            TaskType = fields.String("task_type"),
            BaseModelNameOrPath = fields.String("base_model_name_or_path"),
            Revision = fields.String("revision"),
            InferenceMode = fields.Bool("inference_mode", false),
            Rank = fields.PositiveInt("r") ?? 8,
            Alpha = fields.Number("lora_alpha") ?? 8,
            Dropout = fields.Number("lora_dropout") ?? 0,
            TargetModules = targets,
            TargetModulesRegex = targetRegex,
            Bias = fields.String("bias") ?? "none",
            FanInFanOut = fields.Bool("fan_in_fan_out", false),
            UseRsLora = fields.Bool("use_rslora", false),
            RankPattern = fields.Map("rank_pattern", fields.AsPositiveInt),
            AlphaPattern = fields.Map("alpha_pattern", fields.AsNumber),
            ModulesToSave = fields.StringList("modules_to_save", out _, allowSingle: false),
            InitLoraWeights = init,
            InitLoraWeightsMethod = initMethod,
            LayersToTransform = fields.IntList("layers_to_transform"),
            LayersPattern = ReadLayersPattern(fields),
            AdditionalFields = fields.Remaining(),
        };
        return fields.Validated(config, c => c.Validate());
    }

    private static IReadOnlyList<string>? ReadLayersPattern(ConfigFields fields)
    {
        var list = fields.StringList("layers_pattern", out var single, allowSingle: true);
        return single is null ? list : [single];
    }

    private protected override bool IsModelledField(string key) => IsCommonField(key) || Modelled.Contains(key);

    // The fields PEFT (0.10 to 0.13) writes for every LoRA adapter, with their defaults.
    private protected override void AddDefaults(JsonObject json)
    {
        json["auto_mapping"] = null;
        json["layer_replication"] = null;
        json["loftq_config"] = new JsonObject();
        json["megatron_config"] = null;
        json["megatron_core"] = "megatron.core";
    }

    private protected override void AddFields(JsonObject json)
    {
        json["r"] = Rank;
        json["lora_alpha"] = Number(Alpha);
        json["lora_dropout"] = Dropout;
        json["target_modules"] = TargetModulesRegex is not null ? JsonValue.Create(TargetModulesRegex) : Strings(TargetModules, sort: true);
        json["bias"] = Bias;
        json["fan_in_fan_out"] = FanInFanOut;
        json["use_rslora"] = UseRsLora;
        json["use_dora"] = false;
        var ranks = new JsonObject();
        foreach (var (module, rank) in RankPattern)
            ranks[module] = rank;
        json["rank_pattern"] = ranks;
        var alphas = new JsonObject();
        foreach (var (module, alpha) in AlphaPattern)
            alphas[module] = Number(alpha);
        json["alpha_pattern"] = alphas;
        json["modules_to_save"] = Strings(ModulesToSave, sort: false);
        json["init_lora_weights"] = InitLoraWeightsMethod is not null ? JsonValue.Create(InitLoraWeightsMethod) : JsonValue.Create(InitLoraWeights);
        json["layers_to_transform"] = LayersToTransform is null ? null : new JsonArray(LayersToTransform.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());
        json["layers_pattern"] = LayersPattern is null ? null : LayersPattern.Count == 1 ? JsonValue.Create(LayersPattern[0]) : Strings(LayersPattern, sort: false);
    }

    // PEFT types alpha as int: an integral alpha is written 16, not 16.0.
    private static JsonNode Number(double value) =>
        Math.Abs(value) < 1e15 && value == Math.Floor(value) ? JsonValue.Create((long)value) : JsonValue.Create(value);

    private static JsonArray? Strings(IReadOnlyList<string>? values, bool sort)
    {
        if (values is null)
            return null;
        var ordered = sort ? values.Order(StringComparer.Ordinal) : values.AsEnumerable();
        return new JsonArray(ordered.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
    }
}
