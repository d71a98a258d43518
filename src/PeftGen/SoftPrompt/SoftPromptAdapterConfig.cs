using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.Json;

namespace PeftGen;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for a prompt-tuning adapter (<c>PromptTuningConfig</c>), written the way PEFT
/// writes it (sorted keys, two-space indent) and read strictly: every field is kept as found, and
/// <see cref="Problems"/> lists everything that does not fit a model.
/// </summary>
public sealed record SoftPromptAdapterConfig
{
    /// <summary>PEFT's <c>peft_type</c> for prompt tuning.</summary>
    public const string PromptTuningType = "PROMPT_TUNING";

    /// <summary>The only task type PeftGen's causal LMs write.</summary>
    public const string CausalLmTask = "CAUSAL_LM";

    /// <summary><c>peft_type</c>.</summary>
    public string? PeftType { get; init; } = PromptTuningType;

    /// <summary><c>task_type</c>.</summary>
    public string? TaskType { get; init; } = CausalLmTask;

    /// <summary><c>num_virtual_tokens</c>.</summary>
    public long? NumVirtualTokens { get; init; }

    /// <summary><c>token_dim</c>.</summary>
    public long? TokenDim { get; init; }

    /// <summary><c>num_transformer_submodules</c> (1 for decoder-only models).</summary>
    public long? NumTransformerSubmodules { get; init; } = 1;

    /// <summary><c>num_layers</c>, or null when not recorded.</summary>
    public long? NumLayers { get; init; }

    /// <summary><c>num_attention_heads</c>, or null when not recorded.</summary>
    public long? NumAttentionHeads { get; init; }

    /// <summary><c>prompt_tuning_init</c>: <c>RANDOM</c>, <c>SAMPLE_VOCAB</c> or <c>TEXT</c>.</summary>
    public string? PromptTuningInit { get; init; } = "RANDOM";

    /// <summary><c>prompt_tuning_init_text</c>.</summary>
    public string? PromptTuningInitText { get; init; }

    /// <summary><c>tokenizer_name_or_path</c>.</summary>
    public string? TokenizerNameOrPath { get; init; }

    /// <summary><c>base_model_name_or_path</c>.</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary><c>inference_mode</c> (PEFT writes true when saving).</summary>
    public bool InferenceMode { get; init; } = true;

    /// <summary>Problems found while reading the file (wrong JSON types); empty for a config built in code.</summary>
    public IReadOnlyList<string> ReadProblems { get; init; } = Array.Empty<string>();

    /// <summary>The config PEFT would write for <paramref name="prompt"/>.</summary>
    public static SoftPromptAdapterConfig For(SoftPrompt prompt, string? baseModelNameOrPath = null, int? numLayers = null, int? numAttentionHeads = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var text = prompt.Config.Init == SoftPromptInit.Text;
        return new SoftPromptAdapterConfig
        {
            NumVirtualTokens = prompt.VirtualTokens,
            TokenDim = prompt.Dim,
            NumLayers = numLayers,
            NumAttentionHeads = numAttentionHeads,
            PromptTuningInit = InitName(prompt.Config.Init),
            PromptTuningInitText = text ? prompt.Config.InitText : null,
            TokenizerNameOrPath = text ? prompt.TokenizerNameOrPath : null,
            BaseModelNameOrPath = baseModelNameOrPath,
        };
    }

    /// <summary>PEFT's name of an initialisation.</summary>
    public static string InitName(SoftPromptInit init) => init switch
    {
        SoftPromptInit.Random => "RANDOM",
        SoftPromptInit.SampleVocab => "SAMPLE_VOCAB",
        SoftPromptInit.Text => "TEXT",
        _ => throw new ArgumentOutOfRangeException(nameof(init), init, "Unknown soft prompt initialisation."),
    };

    /// <summary>
    /// Everything that keeps this config from describing a prompt of <paramref name="tokenDim"/>-wide virtual
    /// tokens (and, when given, exactly <paramref name="virtualTokens"/> of them); empty when it fits.
    /// </summary>
    public IReadOnlyList<string> Problems(long tokenDim, long? virtualTokens = null)
    {
        var problems = new List<string>(ReadProblems);
        if (PeftType != PromptTuningType) problems.Add($"peft_type is {Show(PeftType)}, expected \"{PromptTuningType}\"");
        if (TaskType is not null && TaskType != CausalLmTask) problems.Add($"task_type is {Show(TaskType)}, expected \"{CausalLmTask}\"");
        if (NumVirtualTokens is not (> 0 and <= int.MaxValue))
            problems.Add($"num_virtual_tokens is {Show(NumVirtualTokens)}, expected a positive 32-bit integer");
        else if (virtualTokens is { } n && NumVirtualTokens != n)
            problems.Add($"num_virtual_tokens is {NumVirtualTokens}, but the model's prompt has {n}");
        if (TokenDim != tokenDim) problems.Add($"token_dim is {Show(TokenDim)}, but the model's embedding width is {tokenDim}");
        if (NumTransformerSubmodules != 1)
            problems.Add($"num_transformer_submodules is {Show(NumTransformerSubmodules)}, expected 1 (a decoder-only model)");
        if (PromptTuningInit is not ("RANDOM" or "SAMPLE_VOCAB" or "TEXT"))
            problems.Add($"prompt_tuning_init is {Show(PromptTuningInit)}, expected \"RANDOM\", \"SAMPLE_VOCAB\" or \"TEXT\"");
        return problems;
    }

    /// <summary>The prompt settings this file describes (call after <see cref="Problems"/> came back empty).</summary>
    public SoftPromptConfig ToSoftPromptConfig()
    {
        var init = PromptTuningInit switch
        {
            "SAMPLE_VOCAB" => SoftPromptInit.SampleVocab,
            "TEXT" => SoftPromptInit.Text,
            _ => SoftPromptInit.Random,
        };
        return new SoftPromptConfig(checked((int)(NumVirtualTokens ?? 0)), init, PromptTuningInitText ?? "",
            init == SoftPromptInit.Text ? PromptTokenizer.FromHubName(TokenizerNameOrPath) : PeftTokenizer.None);
    }

    /// <summary>The JSON text, as PEFT writes it (keys sorted, two-space indent, nulls kept).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNull("auto_mapping");
            WriteString(json, "base_model_name_or_path", BaseModelNameOrPath);
            json.WriteBoolean("inference_mode", InferenceMode);
            WriteNumber(json, "num_attention_heads", NumAttentionHeads);
            WriteNumber(json, "num_layers", NumLayers);
            WriteNumber(json, "num_transformer_submodules", NumTransformerSubmodules);
            WriteNumber(json, "num_virtual_tokens", NumVirtualTokens);
            WriteString(json, "peft_type", PeftType);
            WriteString(json, "prompt_tuning_init", PromptTuningInit);
            WriteString(json, "prompt_tuning_init_text", PromptTuningInitText);
            json.WriteNull("revision");
            WriteString(json, "task_type", TaskType);
            WriteNumber(json, "token_dim", TokenDim);
            json.WriteNull("tokenizer_kwargs");
            WriteString(json, "tokenizer_name_or_path", TokenizerNameOrPath);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>
    /// Reads <c>adapter_config.json</c> text. Fields of the wrong JSON type are recorded in
    /// <see cref="ReadProblems"/>; fields PeftGen does not use are ignored, as PEFT ignores them.
    /// </summary>
    /// <exception cref="JsonException">The text is not a JSON object.</exception>
    public static SoftPromptAdapterConfig Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new JsonException($"adapter_config.json must hold a JSON object, not {root.ValueKind}.");
        var problems = new List<string>();
        return new SoftPromptAdapterConfig
        {
            PeftType = ReadString(root, "peft_type", problems),
            TaskType = ReadString(root, "task_type", problems),
            NumVirtualTokens = ReadInteger(root, "num_virtual_tokens", problems),
            TokenDim = ReadInteger(root, "token_dim", problems),
            NumTransformerSubmodules = ReadInteger(root, "num_transformer_submodules", problems),
            NumLayers = ReadInteger(root, "num_layers", problems),
            NumAttentionHeads = ReadInteger(root, "num_attention_heads", problems),
            PromptTuningInit = ReadString(root, "prompt_tuning_init", problems),
            PromptTuningInitText = ReadString(root, "prompt_tuning_init_text", problems),
            TokenizerNameOrPath = ReadString(root, "tokenizer_name_or_path", problems),
            BaseModelNameOrPath = ReadString(root, "base_model_name_or_path", problems),
            InferenceMode = ReadBoolean(root, "inference_mode", problems) ?? false,
            ReadProblems = problems,
        };
    }

    private static string? ReadString(JsonElement root, string name, List<string> problems)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        problems.Add($"{name} must be a string, not {value.ValueKind}");
        return null;
    }

    private static long? ReadInteger(JsonElement root, string name, List<string> problems)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number)) return number;
        problems.Add($"{name} must be an integer, not {value.GetRawText()}");
        return null;
    }

    private static bool? ReadBoolean(JsonElement root, string name, List<string> problems)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False) return value.GetBoolean();
        problems.Add($"{name} must be true or false, not {value.GetRawText()}");
        return null;
    }

    private static void WriteString(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null) json.WriteNull(name);
        else json.WriteString(name, value);
    }

    private static void WriteNumber(Utf8JsonWriter json, string name, long? value)
    {
        if (value is { } v) json.WriteNumber(name, v);
        else json.WriteNull(name);
    }

    private static string Show(object? value) => value switch
    {
        null => "missing",
        string s => $"\"{s}\"",
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "missing",
    };
}
