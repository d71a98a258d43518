using System;
using System.IO;
using System.Linq;
using PeftGen.Architectures;
using PeftGen.Checkpoints;
using PeftGen.Tests.Training;
using PeftGen.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Architectures;

public static class ArchQwen2
{
    public const int Vocab = 64, Context = 32, Width = 16, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 32;
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
    public const bool QkvBias = true;
}

public static class ArchTiedQwen2
{
    public const int Vocab = 64, Context = 32, Width = 16, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 32;
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
    public const bool QkvBias = true, TieWordEmbeddings = true;
}

public static class ArchGpt2
{
    public const int Vocab = 64, Context = 32, Width = 16, Layers = 2, Heads = 2;
}

// Models over the package's architectures, whose blocks come from the PeftGen assembly (metadata): a line each.

[PeftModel(typeof(ArchQwen2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"])]
public partial class ArchQwenLora : Qwen2ForCausalLM { }

[PeftModel(typeof(ArchTiedQwen2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"])]
public partial class ArchTiedQwenLora : TiedQwen2ForCausalLM { }

/// <summary>A tied configuration in the untied class: refused when built.</summary>
[PeftModel(typeof(ArchTiedQwen2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"])]
public partial class ArchMismatchedQwen : Qwen2ForCausalLM { }

[PeftModel(typeof(ArchQwen2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit(BlockSize = 32)]
public partial class ArchQwenQLora : Qwen2ForCausalLM { }

[PeftModel(typeof(ArchGpt2), ContextLength = "Context")]
[Trainable]
public partial class ArchGptFull : Gpt2LMHeadModel { }

[PeftModel(typeof(ArchGpt2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["c_attn"])]
public partial class ArchGptLora : Gpt2LMHeadModel { }

[PeftModel(typeof(ArchGpt2), ContextLength = "Context")]
[SoftPrompt(4)]
public partial class ArchGptPrompt : Gpt2LMHeadModel { }

/// <summary>The package's architectures in a model of another assembly, and the library's loader of trained folders.</summary>
[Collection(nameof(SerialTorchTests))]
public sealed class ArchitecturesTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-arch-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void A_qwen2_model_is_a_line_over_the_package_blocks_with_hf_paths_and_its_accounting_as_a_value()
    {
        using var model = new ArchQwenLora();
        var paths = model.Layers.Select(l => l.Path).ToList();
        Assert.Equal("model.embed_tokens", paths[0]);
        Assert.Contains("model.layers.1.self_attn.k_proj", paths);
        Assert.Equal("lm_head", paths[^1]);
        Assert.NotNull(model.model.layers[0].self_attn.k_proj.Bias);
        Assert.Equal(ArchQwenLora.Accounting.Value, ((IPeftTrainableModel)model).Accounting);
        Assert.Equal(ArchQwenLora.Accounting.TrainableParameters, model.parameters().Where(p => p.requires_grad).Sum(p => p.numel()));

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = model.forward(randint(0, ArchQwen2.Vocab, new long[] { 2, 5 }));
        Assert.Equal(new long[] { 2, 5, ArchQwen2.Vocab }, logits.shape);
    }

    [Fact]
    public void A_tied_head_is_the_token_embedding_and_a_mismatched_head_class_is_refused()
    {
        using var tied = new ArchTiedQwenLora();
        Assert.DoesNotContain(tied.Layers, l => l.Path == "lm_head");
        Assert.Same(tied.model.embed_tokens.Weight, tied.HeadWeight);
        Assert.Equal(ArchTiedQwenLora.Accounting.BaseParameters + ArchTiedQwen2.Vocab * ArchTiedQwen2.Width, ArchQwenLora.Accounting.BaseParameters);

        var error = Assert.Throws<ArgumentException>(() => new ArchMismatchedQwen());
        Assert.Contains(nameof(TiedQwen2ForCausalLM), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_wide_4_bit_setting_keeps_the_head_class_lm_head_in_float()
    {
        using var model = new ArchQwenQLora();
        Assert.False(model.lm_head.IsQuantized);
        Assert.True(model.model.layers[0].self_attn.q_proj.IsQuantized);
    }

    [Fact]
    public void The_trained_folder_loader_returns_the_model_that_fits_what_the_folder_holds()
    {
        var baseFolder = Path.Combine(folder, "base");
        using (var full = new ArchGptFull()) full.SaveTrained(baseFolder);
        var models = new TrainedModels
        {
            Lora = () => new ArchGptLora(),
            PromptTuning = () => new ArchGptPrompt(),
            FullWeights = () => new ArchGptFull(),
        };

        var adapterFolder = Path.Combine(folder, "lora");
        using var lora = new ArchGptLora();
        PretrainedLoader.Load(lora, baseFolder, PretrainedLoadOptions.Gpt2);
        using (no_grad())
        {
            foreach (var parameter in lora.parameters().Where(p => p.requires_grad)) parameter.normal_(0, 0.1);
        }
        lora.SaveTrained(adapterFolder);
        var promptFolder = Path.Combine(folder, "prompt");
        using (var prompt = new ArchGptPrompt()) prompt.SaveTrained(promptFolder);

        Assert.Equal(TrainedKind.FullWeights, TrainedFolder.Detect(baseFolder));
        Assert.Equal(TrainedKind.PromptTuning, TrainedFolder.Detect(promptFolder));
        Directory.CreateDirectory(Path.Combine(folder, "empty"));
        Assert.Throws<FileNotFoundException>(() => TrainedFolder.Detect(Path.Combine(folder, "empty")));

        var (opened, kind) = TrainedFolder.Open(adapterFolder, models, baseFolder, loadOptions: PretrainedLoadOptions.Gpt2);
        using (var reloaded = Assert.IsType<ArchGptLora>(opened))
        {
            Assert.Equal(TrainedKind.Lora, kind);
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            lora.eval();
            reloaded.eval();
            var ids = randint(0, ArchGpt2.Vocab, new long[] { 1, 6 });
            Assert.True(allclose(lora.forward(ids), reloaded.forward(ids)));
        }
        using (var prompt = Assert.IsType<ArchGptPrompt>(TrainedFolder.Open(promptFolder, models, baseFolder, loadOptions: PretrainedLoadOptions.Gpt2).Model)) { }
        using (var full = Assert.IsType<ArchGptFull>(TrainedFolder.Open(baseFolder, models, null, loadOptions: PretrainedLoadOptions.Gpt2).Model)) { }
        Assert.Throws<NotSupportedException>(() => TrainedFolder.Open(adapterFolder, models, baseFolder, quantized: true));
    }
}
