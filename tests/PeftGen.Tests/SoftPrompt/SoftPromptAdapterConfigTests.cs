using System.Linq;
using System.Text.Json;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

public sealed class SoftPromptAdapterConfigTests
{
    [Fact]
    public void Writes_the_fields_peft_writes_sorted_as_peft_sorts_them()
    {
        using var embedding = new TokenEmbedding(50257, 8);
        var prompt = embedding.AddSoftPrompt("default", new SoftPromptConfig(4, SoftPromptInit.Text, "Classify:", PeftTokenizer.Gpt2));
        var json = SoftPromptAdapterConfig.For(prompt, "tiny-gpt", numLayers: 2, numAttentionHeads: 4).ToJson();

        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var keys = root.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(keys.OrderBy(k => k, System.StringComparer.Ordinal), keys);
        Assert.Equal("PROMPT_TUNING", root.GetProperty("peft_type").GetString());
        Assert.Equal("CAUSAL_LM", root.GetProperty("task_type").GetString());
        Assert.Equal(4, root.GetProperty("num_virtual_tokens").GetInt32());
        Assert.Equal(8, root.GetProperty("token_dim").GetInt32());
        Assert.Equal(1, root.GetProperty("num_transformer_submodules").GetInt32());
        Assert.Equal("TEXT", root.GetProperty("prompt_tuning_init").GetString());
        Assert.Equal("Classify:", root.GetProperty("prompt_tuning_init_text").GetString());
        Assert.Equal("gpt2", root.GetProperty("tokenizer_name_or_path").GetString());
        Assert.Equal("tiny-gpt", root.GetProperty("base_model_name_or_path").GetString());
        Assert.True(root.GetProperty("inference_mode").GetBoolean());
        Assert.Equal(2, root.GetProperty("num_layers").GetInt32());
        Assert.Equal(4, root.GetProperty("num_attention_heads").GetInt32());
        Assert.StartsWith("{\n  \"auto_mapping\": null,", json.Replace("\r\n", "\n"));
    }

    [Theory]
    [InlineData(SoftPromptInit.Random, "RANDOM")]
    [InlineData(SoftPromptInit.SampleVocab, "SAMPLE_VOCAB")]
    public void Non_text_inits_write_no_text_or_tokenizer(SoftPromptInit init, string name)
    {
        using var embedding = new TokenEmbedding(30, 8);
        var config = SoftPromptAdapterConfig.For(embedding.AddSoftPrompt("p", new SoftPromptConfig(3, init)));
        var root = JsonDocument.Parse(config.ToJson()).RootElement;
        Assert.Equal(name, root.GetProperty("prompt_tuning_init").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("prompt_tuning_init_text").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("tokenizer_name_or_path").ValueKind);
    }

    [Fact]
    public void Round_trips_through_json()
    {
        using var embedding = new TokenEmbedding(50257, 8);
        var prompt = embedding.AddSoftPrompt("default", new SoftPromptConfig(6, SoftPromptInit.Text, "Define: \"é\" <b>", PeftTokenizer.Gpt2));
        var written = SoftPromptAdapterConfig.For(prompt, "base");
        var read = SoftPromptAdapterConfig.Parse(written.ToJson());
        Assert.Equal(written with { ReadProblems = read.ReadProblems }, read);
        Assert.Empty(read.ReadProblems);
        Assert.Empty(read.Problems(8, 6));
        Assert.Equal(prompt.Config, read.ToSoftPromptConfig());
    }

    [Fact]
    public void Every_mismatch_is_named_together()
    {
        const string json = """
            { "peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 12, "token_dim": "64",
              "num_transformer_submodules": 2, "prompt_tuning_init": "MAGIC", "inference_mode": true }
            """;
        var problems = SoftPromptAdapterConfig.Parse(json).Problems(32, 20);
        Assert.Contains(problems, p => p.Contains("token_dim must be an integer"));
        Assert.Contains(problems, p => p.Contains("peft_type is \"LORA\""));
        Assert.Contains(problems, p => p.Contains("task_type is \"SEQ_2_SEQ_LM\""));
        Assert.Contains(problems, p => p.Contains("num_virtual_tokens is 12, but the model's prompt has 20"));
        Assert.Contains(problems, p => p.Contains("token_dim is missing, but the model's embedding width is 32"));
        Assert.Contains(problems, p => p.Contains("num_transformer_submodules is 2"));
        Assert.Contains(problems, p => p.Contains("prompt_tuning_init is \"MAGIC\""));
        Assert.Equal(7, problems.Count);
    }

    [Fact]
    public void Missing_fields_and_non_objects_are_refused()
    {
        Assert.Contains(SoftPromptAdapterConfig.Parse("{}").Problems(8), p => p.Contains("peft_type is missing"));
        Assert.Contains(SoftPromptAdapterConfig.Parse("{}").Problems(8), p => p.Contains("num_virtual_tokens is missing"));
        Assert.Throws<JsonException>(() => SoftPromptAdapterConfig.Parse("[1, 2]"));
        Assert.ThrowsAny<JsonException>(() => SoftPromptAdapterConfig.Parse("{ \"peft_type\": "));
    }
}
