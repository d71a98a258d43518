using System;
using System.IO;
using System.Linq;
using PeftGen;
using PeftGen.Checkpoints;
using PeftGen.Formats;
using PeftGen.Formats.Peft;
using PeftGen.Formats.SafeTensors;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>LoRA adapters saved in PEFT's layout: names, size, round trip, and refusals that leave the model untouched.</summary>
[Collection("torch")]
public sealed class AdapterFileTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-adapter-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void A_saved_adapter_holds_only_adapter_tensors_under_peft_names_and_loads_back_to_identical_outputs()
    {
        manual_seed(21);
        using var scope = NewDisposeScope();
        using var source = new TinyLlamaLora();
        ModelsTests.RandomizeLoraB(source);
        source.SaveAdapter(folder, baseModelNameOrPath: "tiny-llama");

        var weights = Path.Combine(folder, "adapter_model.safetensors");
        using (var file = SafeTensorsFile.Open(weights))
        {
            Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", file.Names);
            Assert.Contains("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", file.Names);
            Assert.All(file.Names, n => Assert.Matches(@"^base_model\.model\.model\.layers\.\d\.self_attn\.[qv]_proj\.lora_[AB]\.weight$", n));
            // The file weighs what its adapter tensors weigh, plus the JSON header: never the base.
            long tensorBytes = file.Names.Sum(n => file.TensorInfo(n).ByteLength);
            Assert.Equal(TinyLlamaLora.Accounting.LoraParameters_default * 4, tensorBytes);
            Assert.InRange(new FileInfo(weights).Length - tensorBytes, 8, 8 + 4096);
        }
        var config = Assert.IsType<LoraAdapterConfig>(PeftAdapterConfig.Read(Path.Combine(folder, "adapter_config.json")));
        Assert.Equal(8, config.Rank);
        Assert.Equal(16, config.Alpha);
        Assert.Equal(new[] { "q_proj", "v_proj" }, config.TargetModules);
        Assert.Equal("tiny-llama", config.BaseModelNameOrPath);

        using var target = new TinyLlamaLora();
        CopyBase(source, target);
        target.LoadAdapter(folder, expectedBaseModel: "tiny-llama");
        source.eval();
        target.eval();
        using var _ = no_grad();
        var ids = randint(0, TinyLlamaConfig.Vocab, new long[] { 2, 10 });
        Assert.Equal(ModelsTests.Hash(source.forward(ids)), ModelsTests.Hash(target.forward(ids)));
    }

    [Fact]
    public void An_adapter_that_does_not_fit_is_refused_with_every_mismatch_and_the_model_is_unchanged()
    {
        manual_seed(22);
        using var scope = NewDisposeScope();
        using var source = new TinyLlamaLora();
        source.SaveAdapter(folder, baseModelNameOrPath: "tiny-llama");
        // Damage the file: drop one tensor, reshape another.
        var weights = Path.Combine(folder, "adapter_model.safetensors");
        var tensors = SafeTensorsFile.Load(weights);
        tensors.Remove("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
        tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"] = zeros(3, 3);
        tensors["base_model.model.model.layers.1.mlp.up_proj.lora_A.weight"] = zeros(8, 64);
        SafeTensorsFile.Save(weights, tensors);

        using var target = new TinyLlamaLora();
        var before = ((nn.Module)target).named_parameters().ToDictionary(p => p.name, p => ModelsTests.Hash(p.parameter));
        var error = Assert.Throws<CheckpointMismatchException>(() => target.LoadAdapter(folder, expectedBaseModel: "other-base"));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.Missing && m.Key.EndsWith("layers.0.self_attn.q_proj.lora_A.weight", StringComparison.Ordinal));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.WrongShape && m.Key.EndsWith("layers.1.self_attn.v_proj.lora_B.weight", StringComparison.Ordinal));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.Unexpected && m.Key.Contains("mlp.up_proj", StringComparison.Ordinal));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.Config && m.Key == "base_model_name_or_path");
        Assert.Equal(before, ((nn.Module)target).named_parameters().ToDictionary(p => p.name, p => ModelsTests.Hash(p.parameter)));
    }

    [Fact]
    public void A_prompt_tuning_folder_is_refused_as_a_lora_adapter()
    {
        using var prompt = new TinyGptPrompt();
        prompt.SaveSoftPrompt(folder, "default");
        using var lora = new TinyGptLora();
        var error = Assert.Throws<CheckpointMismatchException>(() => ((IPeftModel)lora).LoadAdapter(folder));
        Assert.Contains("peft_type", error.Message, StringComparison.Ordinal);
    }

    private static void CopyBase(nn.Module from, nn.Module to)
    {
        using var _ = no_grad();
        var source = from.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in to.named_parameters())
        {
            if (!name.Contains("lora_", StringComparison.Ordinal)) p.copy_(source[name]);
        }
    }
}
