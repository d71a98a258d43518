using System;
using System.IO;
using System.Linq;
using PeftGen.Formats;
using PeftGen.Formats.Peft;
using PeftGen.Tests.Checkpoints;
using PeftGen.Tests.SoftPrompt;
using PeftGen.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Formats.Peft;

/// <summary>
/// LoRA adapters and soft prompts are loaded through the one adapter-folder reader, so the same failure is the same
/// exception with the same mismatch kind, and the same dtypes load.
/// </summary>
public sealed class AdapterLoadersTests
{
    private const long Vocab = 30, Dim = 16, Context = 32;
    private const string QProj = "model.layers.0.self_attn.q_proj";

    private static TinyLlama LoraModel()
    {
        var model = new TinyLlama(new LlamaConfig());
        model.Layer<LoraLinear>(QProj).AddAdapter("default", new LoraConfig(2, 4, 0, false));
        return model;
    }

    [Fact]
    public void A_missing_weights_file_is_the_same_file_mismatch_for_a_lora_adapter_and_a_soft_prompt()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.Sub("lora"));
        Directory.CreateDirectory(temp.Sub("prompt"));
        new LoraAdapterConfig { Rank = 2, Alpha = 4, TargetModules = ["q_proj"] }.Write(Path.Combine(temp.Sub("lora"), PeftAdapterConfig.FileName));
        new PromptTuningAdapterConfig { NumVirtualTokens = 3, TokenDim = (int)Dim }.Write(Path.Combine(temp.Sub("prompt"), PeftAdapterConfig.FileName));
        using var lora = LoraModel();
        using var prompt = new TinyPromptLm(Vocab, Dim, Context);

        var loraError = Assert.Throws<CheckpointMismatchException>(() => ((IPeftModel)lora).LoadAdapter(temp.Sub("lora")));
        var promptError = Assert.Throws<CheckpointMismatchException>(() => prompt.LoadSoftPrompt(temp.Sub("prompt")));

        foreach (var error in new[] { loraError, promptError })
        {
            var mismatch = Assert.Single(error.Mismatches);
            Assert.Equal(CheckpointMismatchKind.File, mismatch.Kind);
            Assert.Contains(PeftAdapterFolder.WeightsFileName, mismatch.Detail);
        }
    }

    [Fact]
    public void Each_loader_refuses_the_other_s_folder_with_a_peft_type_mismatch()
    {
        using var temp = new TempFolder();
        using var lora = LoraModel();
        using var prompt = new TinyPromptLm(Vocab, Dim, Context);
        prompt.Embedding.AddSoftPrompt("default", new SoftPromptConfig(3));
        ((IPeftModel)lora).SaveAdapter(temp.Sub("lora"));
        prompt.SaveSoftPrompt(temp.Sub("prompt"));

        var intoLora = Assert.Throws<CheckpointMismatchException>(() => ((IPeftModel)lora).LoadAdapter(temp.Sub("prompt")));
        var intoPrompt = Assert.Throws<CheckpointMismatchException>(() => prompt.LoadSoftPrompt(temp.Sub("lora"), "other"));

        Assert.Contains(intoLora.Mismatches, m => m is { Kind: CheckpointMismatchKind.Config, Key: "peft_type" });
        Assert.Contains(intoPrompt.Mismatches, m => m is { Kind: CheckpointMismatchKind.Config, Key: "peft_type" });
    }

    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.BFloat16)]
    public void A_lora_adapter_and_a_soft_prompt_load_from_the_same_floating_dtypes(ScalarType dtype)
    {
        using var temp = new TempFolder();
        manual_seed(51);
        using var lora = LoraModel();
        using (no_grad()) lora.Layer<LoraLinear>(QProj).LoraB("default").normal_();
        var stored = ((IPeftModel)lora).AdapterStateDict().ToDictionary(e => e.Key, e => e.Value.detach().to(dtype));
        PeftAdapterFolder.Save(temp.Sub("lora"), LoraAdapterFiles.DescribeAdapter(lora), stored);
        using var prompt = new TinyPromptLm(Vocab, Dim, Context);
        prompt.Embedding.AddSoftPrompt("default", new SoftPromptConfig(3));
        var promptValues = prompt.Embedding.SoftPrompt("default").Embeddings.detach().to(dtype);
        PeftAdapterFolder.Save(temp.Sub("prompt"), SoftPromptFiles.ConfigFor(prompt.Embedding.SoftPrompt("default")),
            new System.Collections.Generic.Dictionary<string, Tensor> { [PeftAdapterFolder.PromptEmbeddingsKey] = promptValues });

        using var loraTarget = LoraModel();
        ((IPeftModel)loraTarget).LoadAdapter(temp.Sub("lora"));
        using var promptTarget = new TinyPromptLm(Vocab, Dim, Context);
        var loaded = promptTarget.LoadSoftPrompt(temp.Sub("prompt"));

        Assert.Equal(ScalarType.Float32, loraTarget.Layer<LoraLinear>(QProj).LoraA("default").dtype);
        Assert.Equal(TensorHash.Of(stored[PeftAdapterFolder.LoraAKey(QProj)].to(ScalarType.Float32)), TensorHash.Of(loraTarget.Layer<LoraLinear>(QProj).LoraA("default")));
        Assert.Equal(TensorHash.Of(promptValues.to(loaded.Embeddings.dtype)), TensorHash.Of(loaded.Embeddings));
    }
}
