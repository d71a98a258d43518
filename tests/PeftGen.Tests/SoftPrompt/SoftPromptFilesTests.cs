using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.IO;
using PeftGen.Tests.Support;
using PeftGen.Formats;
using PeftGen.Formats.Peft;
using PeftGen.Formats.SafeTensors;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

public sealed class SoftPromptFilesTests : IDisposable
{
    private const long Vocab = 30, Dim = 16, Context = 32;
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-softprompt-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    private static TinyPromptLm CopyOfBase(TinyPromptLm source)
    {
        var copy = new TinyPromptLm(Vocab, Dim, Context);
        using (no_grad())
        {
            foreach (var (key, value) in source.state_dict().Where(kv => !kv.Key.Contains("soft_prompts")))
                copy.state_dict()[key].copy_(value);
        }
        return copy;
    }

    private static Dictionary<string, string> Hashes(TinyPromptLm model)
        => model.named_parameters().ToDictionary(p => p.name, p => TensorHash.Of(p.parameter));

    private string Folder(string name)
    {
        var path = Path.Combine(folder, name);
        Directory.CreateDirectory(path);
        return path;
    }

    [Fact]
    public void Save_then_load_gives_identical_outputs()
    {
        using var scope = NewDisposeScope();
        manual_seed(21);
        using var trained = new TinyPromptLm(Vocab, Dim, Context);
        trained.Embedding.AddSoftPrompt("default", new SoftPromptConfig(5, SoftPromptInit.SampleVocab));
        using (no_grad()) trained.Embedding.SoftPrompt("default").Embeddings.add_(randn(5, Dim));
        var ids = randint(0, Vocab, new long[] { 2, 6 }, dtype: ScalarType.Int64);
        var expected = trained.forward(ids, null);

        trained.SaveSoftPrompt(folder, "default", "tiny-gpt");

        using var fresh = CopyOfBase(trained);
        var loaded = fresh.LoadSoftPrompt(folder, "tenant");
        Assert.Equal(TensorHash.Of(expected), TensorHash.Of(fresh.forward(ids, null)));
        Assert.Equal("tenant", fresh.Embedding.ActiveSoftPrompt);
        Assert.False(loaded.Embeddings.requires_grad);
        Assert.Equal(new SoftPromptConfig(5, SoftPromptInit.SampleVocab), loaded.Config);

        // Loading into an existing prompt of the same length replaces its values.
        fresh.Embedding.AddSoftPrompt("other", new SoftPromptConfig(5));
        fresh.LoadSoftPrompt(folder, "other");
        using (AdapterContext.Use(softPrompt: "other"))
            Assert.Equal(TensorHash.Of(expected), TensorHash.Of(fresh.forward(ids, null)));
    }

    [Fact]
    public void Files_hold_what_peft_writes()
    {
        using var embedding = new TokenEmbedding(50257, 8);
        var prompt = embedding.AddSoftPrompt("default", new SoftPromptConfig(4, SoftPromptInit.Text, "Hello world", PeftTokenizer.Gpt2));
        SoftPromptFiles.Save(embedding, folder, "default", "gpt2", numLayers: 12, numAttentionHeads: 12);

        Assert.Equal(new[] { "adapter_config.json", "adapter_model.safetensors" },
            Directory.GetFiles(folder).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal));
        using (var file = SafeTensorsFile.Open(Path.Combine(folder, "adapter_model.safetensors")))
        {
            Assert.Equal(new[] { "prompt_embeddings" }, file.Names);
            var (dtype, shape) = file.TensorInfo("prompt_embeddings");
            Assert.Equal("F32", dtype);
            Assert.Equal(new long[] { 4, 8 }, shape);
            Assert.Equal("pt", file.Metadata["format"]);
            Assert.Equal(TensorHash.Of(prompt.Embeddings), TensorHash.Of(file.Read("prompt_embeddings")));
        }
        var config = Assert.IsType<PromptTuningAdapterConfig>(PeftAdapterConfig.Read(Path.Combine(folder, "adapter_config.json")));
        Assert.Equal((PeftType.PromptTuning, "CAUSAL_LM", 4, (int?)8, (int?)1), (config.PeftType, config.TaskType, config.NumVirtualTokens, config.TokenDim, config.NumTransformerSubmodules));
        Assert.Equal((SoftPromptInit.Text, "Hello world", "gpt2", "gpt2"), (config.Init, config.InitText, config.TokenizerNameOrPath, config.BaseModelNameOrPath));
        Assert.Equal(((int?)12, (int?)12), (config.NumLayers, config.NumAttentionHeads));
        Assert.True(config.InferenceMode);
        var json = File.ReadAllText(Path.Combine(folder, "adapter_config.json"));
        Assert.Contains("\"peft_type\": \"PROMPT_TUNING\"", json);
        Assert.Contains("\"prompt_tuning_init\": \"TEXT\"", json);
    }

    [Theory]
    [InlineData(SoftPromptInit.Random, "RANDOM")]
    [InlineData(SoftPromptInit.SampleVocab, "SAMPLE_VOCAB")]
    public void Non_text_inits_write_their_name_and_no_text_or_tokenizer(SoftPromptInit init, string name)
    {
        using var embedding = new TokenEmbedding(30, 8);
        embedding.AddSoftPrompt("p", new SoftPromptConfig(3, init));
        SoftPromptFiles.Save(embedding, folder, "p");
        var json = File.ReadAllText(Path.Combine(folder, "adapter_config.json"));
        Assert.Contains($"\"prompt_tuning_init\": \"{name}\"", json);
        Assert.Contains("\"prompt_tuning_init_text\": null", json);
        Assert.Contains("\"tokenizer_name_or_path\": null", json);
    }

    [Fact]
    public void A_lora_adapter_folder_is_not_taken_for_a_prompt()
    {
        var folder = Folder("lora");
        new LoraAdapterConfig { Rank = 4, Alpha = 8, TargetModules = new[] { "c_attn" } }.Write(Path.Combine(folder, "adapter_config.json"));
        SafeTensorsFile.Save(Path.Combine(folder, "adapter_model.safetensors"), new Dictionary<string, Tensor>
        {
            ["base_model.model.h.0.attn.c_attn.lora_A.weight"] = zeros(4, Dim),
        });
        using var embedding = new TokenEmbedding(Vocab, Dim);
        var error = Assert.Throws<CheckpointMismatchException>(() => SoftPromptFiles.Load(embedding, folder, "default"));
        Assert.Contains(error.Mismatches, m => m is { Kind: CheckpointMismatchKind.Config, Key: "peft_type" } && m.Detail.Contains("LORA in the file", StringComparison.Ordinal));
        // The folder's own check: a LoRA config whose lora_A has no lora_B.
        Assert.Contains(error.Mismatches, m => m is { Kind: CheckpointMismatchKind.Missing, Key: "base_model.model.h.0.attn.c_attn.lora_B.weight" });
        Assert.Empty(embedding.SoftPrompts);
    }

    [Fact]
    public void A_prompt_that_does_not_fit_names_every_mismatch_and_changes_nothing()
    {
        var folder = Folder("bad");
        AtomicFile.WriteAllText(Path.Combine(folder, "adapter_config.json"), """
            { "peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 4, "token_dim": 12,
              "num_transformer_submodules": 2, "prompt_tuning_init": "RANDOM" }
            """);
        SafeTensorsFile.Save(Path.Combine(folder, "adapter_model.safetensors"), new Dictionary<string, Tensor>
        {
            ["prompt_embeddings"] = zeros(new long[] { 3, 12 }, dtype: ScalarType.Int64),
            ["extra"] = zeros(2),
        });
        using var model = new TinyPromptLm(Vocab, Dim, Context);
        model.Embedding.AddSoftPrompt("default", new SoftPromptConfig(6));
        var before = Hashes(model);

        var error = Assert.Throws<CheckpointMismatchException>(() => model.LoadSoftPrompt(folder, "default"));

        var found = error.Mismatches.Select(m => (m.Kind, m.Key)).ToList();
        Assert.Equal(new[]
        {
            // The folder against its own config: a tensor that is not the prompt, the prompt's dtype and its shape
            // (4 tokens × 2 submodules = 8 rows of 12).
            (CheckpointMismatchKind.Unexpected, "extra"),
            (CheckpointMismatchKind.WrongShape, "prompt_embeddings"),
            (CheckpointMismatchKind.WrongDType, "prompt_embeddings"),
            // The config against the model.
            (CheckpointMismatchKind.Config, "task_type"),
            (CheckpointMismatchKind.Config, "num_virtual_tokens"),
            (CheckpointMismatchKind.Config, "token_dim"),
            (CheckpointMismatchKind.Config, "num_transformer_submodules"),
        }, found);
        Assert.Contains("I64", error.Message);
        Assert.Contains("num_virtual_tokens': 4 in the file, but the model's prompt has 6", error.Message);
        Assert.Contains("token_dim': 12 in the file, but the model's embedding width is 16", error.Message);
        Assert.Equal(folder, error.Checkpoint);
        Assert.Equal(before, Hashes(model));
        Assert.Equal(new[] { "default" }, model.Embedding.SoftPrompts);

        Assert.Throws<CheckpointMismatchException>(() => model.LoadSoftPrompt(folder, "new"));
        Assert.Equal(new[] { "default" }, model.Embedding.SoftPrompts);
    }

    [Fact]
    public void Missing_corrupt_and_non_finite_files_are_refused_without_change()
    {
        using var model = new TinyPromptLm(Vocab, Dim, Context);
        model.Embedding.AddSoftPrompt("default", new SoftPromptConfig(3));
        var before = Hashes(model);
        model.SaveSoftPrompt(Folder("good"), "default");

        var empty = Folder("empty");
        var missing = Assert.Throws<CheckpointMismatchException>(() => model.LoadSoftPrompt(empty, "x"));
        Assert.Equal(2, missing.Mismatches.Count(m => m.Kind == CheckpointMismatchKind.File));
        Assert.Contains("adapter_config.json", missing.Message);
        Assert.Contains("adapter_model.safetensors", missing.Message);

        var truncated = Folder("truncated");
        File.Copy(Path.Combine(folder, "good", "adapter_config.json"), Path.Combine(truncated, "adapter_config.json"));
        var bytes = File.ReadAllBytes(Path.Combine(folder, "good", "adapter_model.safetensors"));
        File.WriteAllBytes(Path.Combine(truncated, "adapter_model.safetensors"), bytes[..^7]);
        Assert.Throws<PeftFormatException>(() => model.LoadSoftPrompt(truncated, "default"));

        var badJson = Folder("badjson");
        File.WriteAllText(Path.Combine(badJson, "adapter_config.json"), "{ \"peft_type\": ");
        File.Copy(Path.Combine(folder, "good", "adapter_model.safetensors"), Path.Combine(badJson, "adapter_model.safetensors"));
        Assert.Contains("JSON", Assert.Throws<PeftFormatException>(() => model.LoadSoftPrompt(badJson, "default")).Message);

        var nan = Folder("nan");
        File.Copy(Path.Combine(folder, "good", "adapter_config.json"), Path.Combine(nan, "adapter_config.json"));
        var values = randn(3, Dim);
        values[1, 2] = tensor(float.NaN);
        SafeTensorsFile.Save(Path.Combine(nan, "adapter_model.safetensors"), new Dictionary<string, Tensor> { ["prompt_embeddings"] = values });
        Assert.Contains("NaN", Assert.Throws<PeftFormatException>(() => model.LoadSoftPrompt(nan, "default")).Message);

        Assert.Equal(before, Hashes(model));
        Assert.Equal(new[] { "default" }, model.Embedding.SoftPrompts);
    }
}
