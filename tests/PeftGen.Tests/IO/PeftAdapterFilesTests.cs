using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.IO;

public sealed class PeftAdapterFilesTests : IDisposable
{
    private readonly TempFolder folder = new();
    private readonly DisposeScope scope = NewDisposeScope();

    public void Dispose()
    {
        scope.Dispose();
        folder.Dispose();
    }

    private static readonly LoraAdapterConfig Lora = new()
    {
        BaseModelNameOrPath = "gpt2",
        Rank = 4,
        Alpha = 8,
        TargetModules = ["c_attn", "c_proj"],
        FanInFanOut = true,
        RankPattern = new Dictionary<string, int> { ["h.1.attn.c_proj"] = 2 },
    };

    private static Dictionary<string, Tensor> LoraTensors() => new()
    {
        [PeftAdapterFiles.LoraAKey("transformer.h.0.attn.c_attn")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 4, 16 }, 1),
        [PeftAdapterFiles.LoraBKey("transformer.h.0.attn.c_attn")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 48, 4 }, 2),
        [PeftAdapterFiles.LoraAKey("transformer.h.1.attn.c_proj")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 2, 16 }, 3),
        [PeftAdapterFiles.LoraBKey("transformer.h.1.attn.c_proj")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 16, 2 }, 4),
    };

    [Fact]
    public void Lora_adapter_folder_round_trips_with_peft_names()
    {
        var tensors = LoraTensors();
        PeftAdapterFiles.Save(folder.Path, Lora, tensors);
        Assert.Equal(new[] { PeftAdapterConfig.FileName, PeftAdapterFiles.WeightsFileName },
            Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", PeftAdapterFiles.LoraAKey("transformer.h.0.attn.c_attn"));

        var (config, loaded) = PeftAdapterFiles.Load(folder.Path);
        Assert.Equal(Lora.ToJson(), config.ToJson());
        foreach (var (name, tensor) in tensors)
            Assert.Equal(SafeTensorsRoundTripTests.Bytes(tensor), SafeTensorsRoundTripTests.Bytes(loaded[name]));
        using var file = SafeTensorsFile.Open(Path.Combine(folder.Path, PeftAdapterFiles.WeightsFileName));
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void Prompt_tuning_folder_round_trips()
    {
        var config = new PromptTuningAdapterConfig { NumVirtualTokens = 20, TokenDim = 256 };
        var prompt = SafeTensorsRoundTripTests.Sample("F32", new long[] { 20, 256 }, 5);
        PeftAdapterFiles.Save(folder.Path, config, new Dictionary<string, Tensor> { [PeftAdapterFiles.PromptEmbeddingsKey] = prompt });
        var (read, tensors) = PeftAdapterFiles.Load(folder.Path);
        Assert.Equal(20, Assert.IsType<PromptTuningAdapterConfig>(read).NumVirtualTokens);
        Assert.Equal(SafeTensorsRoundTripTests.Bytes(prompt), SafeTensorsRoundTripTests.Bytes(tensors[PeftAdapterFiles.PromptEmbeddingsKey]));
    }

    [Fact]
    public void Saving_tensors_that_do_not_fit_the_config_is_refused_listing_every_problem()
    {
        var tensors = LoraTensors();
        tensors.Remove(PeftAdapterFiles.LoraBKey("transformer.h.0.attn.c_attn"));
        tensors["transformer.wte.weight"] = zeros(4, 4);
        var error = Assert.Throws<ArgumentException>(() => PeftAdapterFiles.Save(folder.Path, Lora, tensors));
        Assert.Contains("'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight' is missing", error.Message);
        Assert.Contains("'transformer.wte.weight' does not start with 'base_model.model.'", error.Message);
        Assert.Empty(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void Loading_tensors_whose_rank_differs_from_the_config_fails_naming_the_tensor()
    {
        PeftAdapterFiles.Save(folder.Path, Lora, LoraTensors());
        new LoraAdapterConfig { Rank = 4, Alpha = 8, TargetModules = ["c_attn", "c_proj"] }.Write(Path.Combine(folder.Path, PeftAdapterConfig.FileName));
        var error = Assert.Throws<PeftFormatException>(() => PeftAdapterFiles.Load(folder.Path));
        Assert.Equal("base_model.model.transformer.h.1.attn.c_proj.lora_A.weight", error.TensorName);
        Assert.Contains("has lora_A [2, 16] and lora_B [16, 2] but rank 4", error.Message);
    }

    [Fact]
    public void A_prompt_of_the_wrong_shape_or_a_missing_weights_file_fails()
    {
        PeftAdapterFiles.Save(folder.Path, new PromptTuningAdapterConfig { NumVirtualTokens = 20, TokenDim = 256 },
            new Dictionary<string, Tensor> { [PeftAdapterFiles.PromptEmbeddingsKey] = zeros(20, 256) });
        new PromptTuningAdapterConfig { NumVirtualTokens = 10, TokenDim = 256 }.Write(Path.Combine(folder.Path, PeftAdapterConfig.FileName));
        var error = Assert.Throws<PeftFormatException>(() => PeftAdapterFiles.Load(folder.Path));
        Assert.Contains("has shape [20, 256] but the config says [10, 256]", error.Message);

        File.Delete(Path.Combine(folder.Path, PeftAdapterFiles.WeightsFileName));
        File.WriteAllBytes(Path.Combine(folder.Path, "adapter_model.bin"), new byte[] { 0x80 });
        error = Assert.Throws<PeftFormatException>(() => PeftAdapterFiles.Load(folder.Path));
        Assert.Contains("pickle file, which PeftGen never reads", error.Message);
    }
}
