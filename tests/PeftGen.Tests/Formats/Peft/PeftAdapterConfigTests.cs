using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Formats.Json;
using PeftGen.Formats.Peft;
using PeftGen.Tests.IO;
using Xunit;

namespace PeftGen.Tests.Formats.Peft;

public sealed class PeftAdapterConfigTests
{
    // What PEFT 0.11 writes for get_peft_model(gpt2, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
    // target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")).save_pretrained(...).
    private const string Gpt2LoraJson = """
        {
          "alpha_pattern": {},
          "auto_mapping": null,
          "base_model_name_or_path": "gpt2",
          "bias": "none",
          "fan_in_fan_out": true,
          "inference_mode": true,
          "init_lora_weights": true,
          "layer_replication": null,
          "layers_pattern": null,
          "layers_to_transform": null,
          "loftq_config": {},
          "lora_alpha": 16,
          "lora_dropout": 0.05,
          "megatron_config": null,
          "megatron_core": "megatron.core",
          "modules_to_save": null,
          "peft_type": "LORA",
          "r": 8,
          "rank_pattern": {},
          "revision": null,
          "target_modules": [
            "c_attn"
          ],
          "task_type": "CAUSAL_LM",
          "use_dora": false,
          "use_rslora": false
        }
        """;

    // A newer PEFT (0.19) file: fields PeftGen does not model must survive a round trip.
    private const string NewerLoraJson = """
        {
          "alora_invocation_tokens": null,
          "alpha_pattern": {"q_proj": 32},
          "base_model_name_or_path": "Qwen/Qwen2.5-3B-Instruct",
          "bias": "none",
          "corda_config": null,
          "fan_in_fan_out": false,
          "inference_mode": true,
          "init_lora_weights": "gaussian",
          "lora_alpha": 256.0,
          "lora_bias": false,
          "lora_dropout": 0.05,
          "peft_type": "LORA",
          "peft_version": "0.19.1",
          "qalora_group_size": 16,
          "r": 128,
          "rank_pattern": {"q_proj": 64},
          "target_modules": ["v_proj", "q_proj"],
          "task_type": "CAUSAL_LM",
          "use_dora": false,
          "use_rslora": true
        }
        """;

    private const string PromptTuningJson = """
        {
          "auto_mapping": null,
          "base_model_name_or_path": "bigscience/bloomz-560m",
          "inference_mode": true,
          "num_attention_heads": 16,
          "num_layers": 24,
          "num_transformer_submodules": 1,
          "num_virtual_tokens": 8,
          "peft_type": "PROMPT_TUNING",
          "prompt_tuning_init": "TEXT",
          "prompt_tuning_init_text": "Classify if the tweet is a complaint or not:",
          "revision": null,
          "task_type": "CAUSAL_LM",
          "token_dim": 1024,
          "tokenizer_kwargs": null,
          "tokenizer_name_or_path": "bigscience/bloomz-560m"
        }
        """;

    private static PeftAdapterConfig Parse(string json) => PeftAdapterConfig.Parse(Encoding.UTF8.GetBytes(json), "adapter_config.json");

    [Fact]
    public void Lora_config_is_written_byte_for_byte_as_peft_writes_it()
    {
        var config = new LoraAdapterConfig
        {
            BaseModelNameOrPath = "gpt2",
            Rank = 8,
            Alpha = 16,
            Dropout = 0.05,
            TargetModules = ["c_attn"],
            FanInFanOut = true,
        };
        Assert.Equal(Gpt2LoraJson, config.ToJson());
    }

    [Fact]
    public void Prompt_tuning_config_is_written_byte_for_byte_as_peft_writes_it()
    {
        var config = new PromptTuningAdapterConfig
        {
            BaseModelNameOrPath = "bigscience/bloomz-560m",
            NumVirtualTokens = 8,
            TokenDim = 1024,
            NumAttentionHeads = 16,
            NumLayers = 24,
            Init = SoftPromptInit.Text,
            InitText = "Classify if the tweet is a complaint or not:",
            TokenizerNameOrPath = "bigscience/bloomz-560m",
        };
        Assert.Equal(PromptTuningJson, config.ToJson());
    }

    [Fact]
    public void Peft_files_read_into_typed_values_and_write_back_identically()
    {
        var lora = Assert.IsType<LoraAdapterConfig>(Parse(Gpt2LoraJson));
        Assert.Equal((8, 16.0, 0.05, true, "gpt2"), (lora.Rank, lora.Alpha, lora.Dropout, lora.FanInFanOut, lora.BaseModelNameOrPath));
        Assert.Equal(["c_attn"], lora.TargetModules!);
        Assert.Equal(Gpt2LoraJson, lora.ToJson());

        var prompt = Assert.IsType<PromptTuningAdapterConfig>(Parse(PromptTuningJson));
        Assert.Equal((8, 1024, SoftPromptInit.Text), (prompt.NumVirtualTokens, prompt.TokenDim, prompt.Init));
        Assert.Equal(PromptTuningJson, prompt.ToJson());
    }

    [Fact]
    public void Newer_peft_fields_are_kept_and_known_ones_typed()
    {
        var lora = Assert.IsType<LoraAdapterConfig>(Parse(NewerLoraJson));
        Assert.Equal(256.0, lora.Alpha);
        Assert.True(lora.UseRsLora);
        Assert.Equal("gaussian", lora.InitLoraWeightsMethod);
        Assert.Equal(64, lora.RankPattern["q_proj"]);
        Assert.Equal(32.0, lora.AlphaPattern["q_proj"]);
        Assert.Equal(256.0 / Math.Sqrt(128), lora.ScaleFor(lora.Rank, lora.Alpha));
        Assert.Equal("0.19.1", lora.AdditionalFields["peft_version"]!.GetValue<string>());

        var again = Assert.IsType<LoraAdapterConfig>(Parse(lora.ToJson()));
        Assert.Equal(lora.ToJson(), again.ToJson());
        var written = JsonNode.Parse(lora.ToJson())!.AsObject();
        Assert.Equal(16, written["qalora_group_size"]!.GetValue<int>());
        Assert.Equal(["q_proj", "v_proj"], new[] { written["target_modules"]![0]!.GetValue<string>(), written["target_modules"]![1]!.GetValue<string>() });
    }

    [Fact]
    public void Write_and_Read_round_trip_through_a_file()
    {
        using var folder = new TempFolder();
        var path = folder.File(PeftAdapterConfig.FileName);
        var config = new LoraAdapterConfig { Rank = 4, Alpha = 8.5, Dropout = 0.1, TargetModulesRegex = @".*\.(q|v)_proj$", UseRsLora = true };
        config.Write(path);
        var read = Assert.IsType<LoraAdapterConfig>(PeftAdapterConfig.Read(path));
        Assert.Equal((4, 8.5, 0.1, true), (read.Rank, read.Alpha, read.Dropout, read.UseRsLora));
        Assert.Equal(@".*\.(q|v)_proj$", read.TargetModulesRegex);
        Assert.Null(read.TargetModules);
        Assert.Contains("\"lora_alpha\": 8.5,", File.ReadAllText(path));
    }

    [Theory]
    [InlineData(0.0, "0.0")]
    [InlineData(0.05, "0.05")]
    [InlineData(1e-05, "1e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(16.0, "16.0")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1234567890123456.0, "1234567890123456.0")]
    [InlineData(-2.5e-7, "-2.5e-07")]
    [InlineData(0.1 + 0.2, "0.30000000000000004")]
    [InlineData(1.5e300, "1.5e+300")]
    public void Floats_are_spelled_as_python_spells_them(double value, string expected) => Assert.Equal(expected, PythonJson.Float(value));

    [Fact]
    public void Non_ascii_text_is_escaped_as_python_does()
    {
        var config = new LoraAdapterConfig { BaseModelNameOrPath = "modèle/日本\u007f" };
        Assert.Contains("\"base_model_name_or_path\": \"mod\\u00e8le/\\u65e5\\u672c\\u007f\",", config.ToJson());
        Assert.Equal("modèle/日本\u007f", Parse(config.ToJson()).BaseModelNameOrPath);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "must be a JSON object")]
    [InlineData("{\"r\": 8}", "field 'peft_type': is required")]
    [InlineData("{\"peft_type\": \"IA3\"}", "'IA3' is not supported")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": \"8\"}", "field 'r': must be a positive integer, not the string \"8\"")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 8.5}", "field 'r': must be a positive integer")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 0}", "field 'r': must be a positive integer")]
    [InlineData("{\"peft_type\": \"LORA\", \"lora_alpha\": \"16\"}", "field 'lora_alpha': must be a finite number")]
    [InlineData("{\"peft_type\": \"LORA\", \"lora_dropout\": 1.5}", "lora_dropout must be in [0, 1)")]
    [InlineData("{\"peft_type\": \"LORA\", \"bias\": \"some\"}", "bias must be none, all or lora_only")]
    [InlineData("{\"peft_type\": \"LORA\", \"target_modules\": [1]}", "field 'target_modules': must hold strings only")]
    [InlineData("{\"peft_type\": \"LORA\", \"fan_in_fan_out\": 1}", "field 'fan_in_fan_out': must be true or false")]
    [InlineData("{\"peft_type\": \"LORA\", \"rank_pattern\": {\"q\": -1}}", "field 'rank_pattern.q': must be a positive integer")]
    [InlineData("{\"peft_type\": \"LORA\", \"use_dora\": true}", "DoRA adapters are not supported")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 8, \"r\": 4}", "not valid JSON")]
    [InlineData("{\"peft_type\": \"LORA\", \"init_lora_weights\": 3}", "field 'init_lora_weights'")]
    [InlineData("{\"peft_type\": \"PROMPT_TUNING\"}", "field 'num_virtual_tokens': is required")]
    [InlineData("{\"peft_type\": \"PROMPT_TUNING\", \"num_virtual_tokens\": 20, \"prompt_tuning_init\": \"ZEROS\"}", "'ZEROS' is not RANDOM, SAMPLE_VOCAB or TEXT")]
    [InlineData("{\"peft_type\": \"PROMPT_TUNING\", \"num_virtual_tokens\": 20, \"prompt_tuning_init\": \"TEXT\"}", "needs prompt_tuning_init_text and tokenizer_name_or_path")]
    [InlineData("{\"peft_type\": \"PROMPT_TUNING\", \"num_virtual_tokens\": 20, \"token_dim\": -4}", "field 'token_dim': must be a positive integer")]
    public void Bad_configs_are_rejected_with_the_field_named(string json, string fragment)
    {
        var error = Assert.Throws<PeftFormatException>(() => Parse(json));
        Assert.Equal("adapter_config.json", error.FilePath);
        Assert.Contains(fragment, error.Message);
    }

    [Fact]
    public void Old_style_enum_spelling_of_prompt_tuning_init_is_accepted()
    {
        var config = Assert.IsType<PromptTuningAdapterConfig>(Parse(
            "{\"peft_type\": \"PROMPT_TUNING\", \"num_virtual_tokens\": 20, \"prompt_tuning_init\": \"PromptTuningInit.SAMPLE_VOCAB\"}"));
        Assert.Equal(SoftPromptInit.SampleVocab, config.Init);
    }

    [Fact]
    public void Writing_invalid_values_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new LoraAdapterConfig { Rank = 0 }.ToJson());
        Assert.Throws<ArgumentException>(() => new LoraAdapterConfig { Alpha = double.NaN }.ToJson());
        Assert.Throws<ArgumentException>(() => new LoraAdapterConfig { TargetModules = ["q"], TargetModulesRegex = "q" }.ToJson());
        Assert.Throws<ArgumentException>(() => new LoraAdapterConfig { AdditionalFields = new Dictionary<string, JsonNode?> { ["r"] = 4 } }.ToJson());
        Assert.Throws<ArgumentException>(() => new PromptTuningAdapterConfig { NumVirtualTokens = 0 }.ToJson());
    }
}
