using System;
using System.Collections.Generic;
using System.IO;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using PeftGen.Formats;
using PeftGen.Formats.Json;
using PeftGen.IO;

namespace PeftGen.Formats.Peft;

/// <summary>The adapter kinds PeftGen reads and writes, named as PEFT's <c>peft_type</c>.</summary>
public enum PeftType
{
    /// <summary><c>LORA</c>.</summary>
    Lora,

    /// <summary><c>PROMPT_TUNING</c>.</summary>
    PromptTuning,
}

/// <summary>
/// PEFT's <c>adapter_config.json</c>: the fields shared by every adapter kind. <see cref="LoraAdapterConfig"/> and
/// <see cref="PromptTuningAdapterConfig"/> add their own. Files are written exactly as PEFT writes them
/// (<c>json.dumps(indent=2, sort_keys=True)</c>) and read strictly: every known field must have PEFT's type, and
/// fields PeftGen does not model are kept verbatim in <see cref="AdditionalFields"/> and written back.
/// </summary>
public abstract class PeftAdapterConfig
{
    /// <summary>The file name PEFT uses in an adapter folder.</summary>
    public const string FileName = "adapter_config.json";

    private protected PeftAdapterConfig()
    {
    }

    /// <summary>The adapter kind (<c>peft_type</c>).</summary>
    public abstract PeftType PeftType { get; }

    /// <summary><c>task_type</c>, e.g. <c>CAUSAL_LM</c>; <see langword="null"/> when unset.</summary>
    public string? TaskType { get; init; } = "CAUSAL_LM";

    /// <summary><c>base_model_name_or_path</c>: the model the adapter was trained on.</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary><c>revision</c> of the base model, if pinned.</summary>
    public string? Revision { get; init; }

    /// <summary><c>inference_mode</c>; PEFT sets it to <see langword="true"/> when saving.</summary>
    public bool InferenceMode { get; init; } = true;

    /// <summary>Fields PeftGen does not model (newer PEFT versions add some), kept as read and written back unchanged.</summary>
    public IReadOnlyDictionary<string, JsonNode?> AdditionalFields { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>Reads and validates <paramref name="path"/>.</summary>
    /// <param name="path">An <c>adapter_config.json</c> file.</param>
    /// <returns>A <see cref="LoraAdapterConfig"/> or a <see cref="PromptTuningAdapterConfig"/>.</returns>
    /// <exception cref="PeftFormatException">The file is not valid JSON, a field has the wrong type or value, or the adapter kind is unsupported.</exception>
    public static PeftAdapterConfig Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException($"No adapter config at '{path}'.", path);
        // A config is a few hundred bytes; refuse absurd sizes before reading them into memory.
        if (info.Length > MaxFileLength)
            throw new PeftFormatException(path, null, $"the file has {info.Length} bytes; an adapter config is at most {MaxFileLength}.");
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses the UTF-8 JSON of an adapter config.</summary>
    /// <param name="utf8Json">The file's bytes.</param>
    /// <param name="sourcePath">The file name to put in error messages.</param>
    /// <returns>A <see cref="LoraAdapterConfig"/> or a <see cref="PromptTuningAdapterConfig"/>.</returns>
    /// <exception cref="PeftFormatException">The JSON is invalid or does not describe a supported adapter.</exception>
    public static PeftAdapterConfig Parse(ReadOnlySpan<byte> utf8Json, string? sourcePath = null)
    {
        // JsonDocument checks string encoding only when a string is read; check it all first for a clear error.
        if (!Utf8.IsValid(utf8Json))
            throw new PeftFormatException(sourcePath, null, "not valid UTF-8.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8Json.ToArray(), new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new PeftFormatException(sourcePath, null, $"not valid JSON ({e.Message}).", e);
        }
        using (document)
        {
            var fields = new ConfigFields(document.RootElement, sourcePath);
            var peftType = fields.RequiredString("peft_type");
            PeftAdapterConfig config = peftType switch
            {
                "LORA" => LoraAdapterConfig.FromFields(fields),
                "PROMPT_TUNING" => PromptTuningAdapterConfig.FromFields(fields),
                _ => throw fields.Error("peft_type", $"'{peftType}' is not supported (PeftGen reads LORA and PROMPT_TUNING)."),
            };
            return config;
        }
    }

    /// <summary>Validates the values and writes the file atomically, byte-identical to what PEFT writes for them.</summary>
    /// <param name="path">The target file, usually <c>{folder}/adapter_config.json</c>.</param>
    /// <exception cref="ArgumentException">A value is invalid (see <see cref="Validate"/>).</exception>
    public void Write(string path) => AtomicFile.WriteAllText(path, ToJson());

    /// <summary>The JSON text <see cref="Write"/> writes.</summary>
    /// <returns>PEFT-formatted JSON (no trailing newline, as PEFT writes it).</returns>
    public string ToJson()
    {
        Validate();
        var json = new JsonObject();
        AddDefaults(json);
        foreach (var (key, value) in AdditionalFields)
            json[key] = value?.DeepClone();
        json["peft_type"] = PeftType == PeftType.Lora ? "LORA" : "PROMPT_TUNING";
        json["task_type"] = TaskType;
        json["base_model_name_or_path"] = BaseModelNameOrPath;
        json["revision"] = Revision;
        json["inference_mode"] = InferenceMode;
        AddFields(json);
        return PythonJson.Serialize(json);
    }

    /// <summary>Checks the values PEFT would refuse (or PeftGen cannot honour).</summary>
    /// <exception cref="ArgumentException">A value is out of range; the message names the field.</exception>
    public virtual void Validate()
    {
        foreach (var key in AdditionalFields.Keys)
        {
            if (IsModelledField(key))
                throw new ArgumentException($"'{key}' is a modelled field; set its property instead of adding it to AdditionalFields.");
        }
    }

    private protected const long MaxFileLength = 16 << 20;

    private protected abstract void AddDefaults(JsonObject json);

    private protected abstract void AddFields(JsonObject json);

    private protected abstract bool IsModelledField(string key);

    private protected static bool IsCommonField(string key) =>
        key is "peft_type" or "task_type" or "base_model_name_or_path" or "revision" or "inference_mode";
}
