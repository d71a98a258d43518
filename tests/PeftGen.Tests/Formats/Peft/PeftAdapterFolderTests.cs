using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Formats;
using PeftGen.Formats.Peft;
using PeftGen.Formats.SafeTensors;
using PeftGen.Tests.Formats.SafeTensors;
using PeftGen.Tests.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Formats.Peft;

public sealed class PeftAdapterFolderTests : IDisposable
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
        [PeftAdapterFolder.LoraAKey("transformer.h.0.attn.c_attn")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 4, 16 }, 1),
        [PeftAdapterFolder.LoraBKey("transformer.h.0.attn.c_attn")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 48, 4 }, 2),
        [PeftAdapterFolder.LoraAKey("transformer.h.1.attn.c_proj")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 2, 16 }, 3),
        [PeftAdapterFolder.LoraBKey("transformer.h.1.attn.c_proj")] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 16, 2 }, 4),
    };

    [Fact]
    public void Lora_adapter_folder_round_trips_with_peft_names()
    {
        var tensors = LoraTensors();
        PeftAdapterFolder.Save(folder.Path, Lora, tensors);
        Assert.Equal(new[] { PeftAdapterConfig.FileName, PeftAdapterFolder.WeightsFileName },
            Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", PeftAdapterFolder.LoraAKey("transformer.h.0.attn.c_attn"));

        var (config, loaded) = PeftAdapterFolder.Load(folder.Path);
        Assert.Equal(Lora.ToJson(), config.ToJson());
        foreach (var (name, tensor) in tensors)
            Assert.Equal(SafeTensorsRoundTripTests.Bytes(tensor), SafeTensorsRoundTripTests.Bytes(loaded[name]));
        using var file = SafeTensorsFile.Open(Path.Combine(folder.Path, PeftAdapterFolder.WeightsFileName));
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void Prompt_tuning_folder_round_trips()
    {
        var config = new PromptTuningAdapterConfig { NumVirtualTokens = 20, TokenDim = 256 };
        var prompt = SafeTensorsRoundTripTests.Sample("F32", new long[] { 20, 256 }, 5);
        PeftAdapterFolder.Save(folder.Path, config, new Dictionary<string, Tensor> { [PeftAdapterFolder.PromptEmbeddingsKey] = prompt });
        var (read, tensors) = PeftAdapterFolder.Load(folder.Path);
        Assert.Equal(20, Assert.IsType<PromptTuningAdapterConfig>(read).NumVirtualTokens);
        Assert.Equal(SafeTensorsRoundTripTests.Bytes(prompt), SafeTensorsRoundTripTests.Bytes(tensors[PeftAdapterFolder.PromptEmbeddingsKey]));
    }

    [Fact]
    public void Saving_tensors_that_do_not_fit_the_config_is_refused_listing_every_problem()
    {
        var tensors = LoraTensors();
        tensors.Remove(PeftAdapterFolder.LoraBKey("transformer.h.0.attn.c_attn"));
        tensors["transformer.wte.weight"] = zeros(4, 4);
        var error = Assert.Throws<ArgumentException>(() => PeftAdapterFolder.Save(folder.Path, Lora, tensors));
        Assert.Contains("Missing 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight'", error.Message);
        Assert.Contains("Unexpected 'transformer.wte.weight': does not start with 'base_model.model.'", error.Message);
        Assert.Empty(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void Loading_tensors_whose_rank_differs_from_the_config_fails_naming_the_tensor()
    {
        PeftAdapterFolder.Save(folder.Path, Lora, LoraTensors());
        new LoraAdapterConfig { Rank = 4, Alpha = 8, TargetModules = ["c_attn", "c_proj"] }.Write(Path.Combine(folder.Path, PeftAdapterConfig.FileName));
        var error = Assert.Throws<CheckpointMismatchException>(() => PeftAdapterFolder.Load(folder.Path));
        var mismatch = Assert.Single(error.Mismatches);
        Assert.Equal(CheckpointMismatchKind.WrongShape, mismatch.Kind);
        Assert.Equal("base_model.model.transformer.h.1.attn.c_proj.lora_A.weight", mismatch.Key);
        Assert.Contains("has lora_A [2, 16] and lora_B [16, 2] but the config says rank 4", error.Message);
        Assert.Equal(folder.Path, error.Checkpoint);
    }

    [Fact]
    public void A_prompt_of_the_wrong_shape_or_a_missing_weights_file_fails_with_the_same_exception_as_lora()
    {
        PeftAdapterFolder.Save(folder.Path, new PromptTuningAdapterConfig { NumVirtualTokens = 20, TokenDim = 256 },
            new Dictionary<string, Tensor> { [PeftAdapterFolder.PromptEmbeddingsKey] = zeros(20, 256) });
        new PromptTuningAdapterConfig { NumVirtualTokens = 10, TokenDim = 256 }.Write(Path.Combine(folder.Path, PeftAdapterConfig.FileName));
        var error = Assert.Throws<CheckpointMismatchException>(() => PeftAdapterFolder.Load(folder.Path));
        Assert.Equal((CheckpointMismatchKind.WrongShape, PeftAdapterFolder.PromptEmbeddingsKey), (error.Mismatches[0].Kind, error.Mismatches[0].Key));
        Assert.Contains("the file has [20, 256] but the config says [10, 256]", error.Message);

        File.Delete(Path.Combine(folder.Path, PeftAdapterFolder.WeightsFileName));
        File.WriteAllBytes(Path.Combine(folder.Path, "adapter_model.bin"), new byte[] { 0x80 });
        error = Assert.Throws<CheckpointMismatchException>(() => PeftAdapterFolder.Load(folder.Path));
        Assert.Equal(CheckpointMismatchKind.File, Assert.Single(error.Mismatches).Kind);
        Assert.Contains("pickle file, which PeftGen never reads", error.Message);
    }

    [Fact]
    public void Collecting_mode_keeps_every_problem_and_strict_mode_throws_them_together()
    {
        var tensors = LoraTensors();
        tensors[PeftAdapterFolder.LoraAKey("transformer.h.0.attn.c_attn")] = zeros(new long[] { 4, 16 }, dtype: ScalarType.Int32);
        tensors["base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector"] = zeros(48);
        TestSafeTensorsFile(tensors);
        Lora.Write(Path.Combine(folder.Path, PeftAdapterConfig.FileName));

        using (var open = PeftAdapterFolder.Open(folder.Path, ReadMode.Collecting))
        {
            Assert.NotNull(open.Config);
            Assert.NotNull(open.Weights);
            Assert.Equal(new[]
            {
                (CheckpointMismatchKind.Unexpected, "base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector"),
                (CheckpointMismatchKind.WrongDType, PeftAdapterFolder.LoraAKey("transformer.h.0.attn.c_attn")),
            }, open.Problems.Select(p => (p.Kind, p.Key)));
        }
        var error = Assert.Throws<CheckpointMismatchException>(() => PeftAdapterFolder.Open(folder.Path).Dispose());
        Assert.Equal(2, error.Mismatches.Count);
        Assert.Contains("I32 is not a floating dtype an adapter loads from (F32, F16, BF16, F64)", error.Message);

        File.Delete(Path.Combine(folder.Path, PeftAdapterConfig.FileName));
        using var withoutConfig = PeftAdapterFolder.Open(folder.Path, ReadMode.Collecting);
        Assert.Null(withoutConfig.Config);
        Assert.Equal(CheckpointMismatchKind.File, Assert.Single(withoutConfig.Problems).Kind);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float64)]
    public void Every_floating_dtype_loads(ScalarType dtype)
    {
        PeftAdapterFolder.Save(folder.Path, Lora, LoraTensors().ToDictionary(t => t.Key, t => t.Value.to(dtype)));
        var (_, loaded) = PeftAdapterFolder.Load(folder.Path);
        Assert.All(loaded.Values, t => Assert.Equal(dtype, t.dtype));
    }

    // Written by the format's own writer, which does not check tensors against a config.
    private void TestSafeTensorsFile(Dictionary<string, Tensor> tensors)
        => SafeTensorsFile.Save(Path.Combine(folder.Path, PeftAdapterFolder.WeightsFileName), tensors);
}
