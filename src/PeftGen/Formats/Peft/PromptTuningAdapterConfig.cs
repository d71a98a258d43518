using System;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Formats.Json;

namespace PeftGen.Formats.Peft;

/// <summary>PEFT's <c>PromptTuningConfig</c> as saved in <c>adapter_config.json</c> (<c>peft_type</c> <c>PROMPT_TUNING</c>).</summary>
public sealed class PromptTuningAdapterConfig : PeftAdapterConfig
{
    private static readonly string[] Modelled =
    [
        "num_virtual_tokens", "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers",
        "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path",
    ];

    /// <inheritdoc />
    public override PeftType PeftType => PeftType.PromptTuning;

    /// <summary><c>num_virtual_tokens</c>: the number of soft-prompt rows (required, positive).</summary>
    public int NumVirtualTokens { get; init; }

    /// <summary><c>token_dim</c>: the width of each virtual token (the model's embedding width).</summary>
    public int? TokenDim { get; init; }

    /// <summary><c>num_transformer_submodules</c>: 1 for decoder-only models.</summary>
    public int? NumTransformerSubmodules { get; init; } = 1;

    /// <summary><c>num_attention_heads</c> of the base model.</summary>
    public int? NumAttentionHeads { get; init; }

    /// <summary><c>num_layers</c> of the base model.</summary>
    public int? NumLayers { get; init; }

    /// <summary><c>prompt_tuning_init</c>: <c>RANDOM</c>, <c>SAMPLE_VOCAB</c> or <c>TEXT</c>.</summary>
    public SoftPromptInit Init { get; init; } = SoftPromptInit.Random;

    /// <summary><c>prompt_tuning_init_text</c>: the text whose embeddings initialise the prompt (with <see cref="SoftPromptInit.Text"/>).</summary>
    public string? InitText { get; init; }

    /// <summary><c>tokenizer_name_or_path</c>: the tokenizer of the init text (PEFT requires it with <see cref="SoftPromptInit.Text"/>).</summary>
    public string? TokenizerNameOrPath { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (NumVirtualTokens <= 0)
            throw new ArgumentException($"num_virtual_tokens must be positive, not {NumVirtualTokens}.");
        CheckPositive("token_dim", TokenDim);
        CheckPositive("num_transformer_submodules", NumTransformerSubmodules);
        CheckPositive("num_attention_heads", NumAttentionHeads);
        CheckPositive("num_layers", NumLayers);
        if (!Enum.IsDefined(Init))
            throw new ArgumentException($"prompt_tuning_init {Init} is not a known initialisation.");
        if (Init == SoftPromptInit.Text && (InitText is null || TokenizerNameOrPath is null))
            throw new ArgumentException("prompt_tuning_init TEXT needs prompt_tuning_init_text and tokenizer_name_or_path (PEFT refuses it otherwise).");
    }

    private static void CheckPositive(string field, int? value)
    {
        if (value is <= 0)
            throw new ArgumentException($"{field} must be positive, not {value}.");
    }

    internal static PromptTuningAdapterConfig FromFields(ConfigFields fields)
    {
        var config = new PromptTuningAdapterConfig
        {
            TaskType = fields.String("task_type"),
            BaseModelNameOrPath = fields.String("base_model_name_or_path"),
            Revision = fields.String("revision"),
            InferenceMode = fields.Bool("inference_mode", false),
            NumVirtualTokens = fields.PositiveInt("num_virtual_tokens") ?? throw fields.Error("num_virtual_tokens", "is required."),
            TokenDim = fields.PositiveInt("token_dim"),
            NumTransformerSubmodules = fields.PositiveInt("num_transformer_submodules"),
            NumAttentionHeads = fields.PositiveInt("num_attention_heads"),
            NumLayers = fields.PositiveInt("num_layers"),
            Init = ParseInit(fields),
            InitText = fields.String("prompt_tuning_init_text"),
            TokenizerNameOrPath = fields.String("tokenizer_name_or_path"),
            AdditionalFields = fields.Remaining(),
        };
        return fields.Validated(config, c => c.Validate());
    }

    // PEFT writes the enum's value ("TEXT"); older hand-written configs use its repr ("PromptTuningInit.TEXT").
    private static SoftPromptInit ParseInit(ConfigFields fields)
    {
        var text = fields.String("prompt_tuning_init");
        if (text is null)
            return SoftPromptInit.Random;
        return (text.StartsWith("PromptTuningInit.", StringComparison.Ordinal) ? text["PromptTuningInit.".Length..] : text) switch
        {
            "RANDOM" => SoftPromptInit.Random,
            "SAMPLE_VOCAB" => SoftPromptInit.SampleVocab,
            "TEXT" => SoftPromptInit.Text,
            _ => throw fields.Error("prompt_tuning_init", $"'{text}' is not RANDOM, SAMPLE_VOCAB or TEXT."),
        };
    }

    private static string InitName(SoftPromptInit init) => init switch
    {
        SoftPromptInit.SampleVocab => "SAMPLE_VOCAB",
        SoftPromptInit.Text => "TEXT",
        _ => "RANDOM",
    };

    private protected override bool IsModelledField(string key) => IsCommonField(key) || Array.IndexOf(Modelled, key) >= 0;

    // The fields PEFT writes for every prompt-tuning adapter, with their defaults.
    private protected override void AddDefaults(JsonObject json)
    {
        json["auto_mapping"] = null;
        json["tokenizer_kwargs"] = null;
    }

    private protected override void AddFields(JsonObject json)
    {
        json["num_virtual_tokens"] = NumVirtualTokens;
        json["token_dim"] = TokenDim;
        json["num_transformer_submodules"] = NumTransformerSubmodules;
        json["num_attention_heads"] = NumAttentionHeads;
        json["num_layers"] = NumLayers;
        json["prompt_tuning_init"] = InitName(Init);
        json["prompt_tuning_init_text"] = InitText;
        json["tokenizer_name_or_path"] = TokenizerNameOrPath;
    }
}
