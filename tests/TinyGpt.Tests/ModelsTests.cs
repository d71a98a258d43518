using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using PeftGen;
using PeftGen.Architectures;
using PeftGen.Data;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>The example models: compile-time accounting, real parameter counts and bytes, merge, training with a frozen base.</summary>
[Collection("torch")]
public sealed class ModelsTests
{
    [Fact]
    public void Compile_time_accounting_reproduces_peft_for_gpt2_small_and_llama2_7b_without_allocating()
    {
        Assert.Equal("trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364", Gpt2SmallLora.Accounting.Summary);
        Assert.Equal("trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622", Llama2_7BLora.Accounting.Summary);
        Assert.Equal(786_432L, Gpt2MediumLora.Accounting.TrainableParameters);
        // QLoRA r = 16 on q, v: 4-bit decoder projections (packed codes, one absmax byte per 64 values, a float32 per 256
        // blocks and the offset), the float32 embedding and head (524,288,000 bytes each), norms and adapters.
        Assert.Equal("trainable params: 8,388,608 || all params: 6,746,804,224 || trainable%: 0.1243", Llama2_7BQLora.Accounting.Summary);
        Assert.Equal(4_423_967_616L, Llama2_7BQLora.Accounting.WeightBytes);
    }

    [Fact]
    public void A_model_built_from_a_seed_starts_from_the_same_adapters_whatever_drew_from_torch_before()
    {
        // LoRA's A is Kaiming-uniform from torch's default generator, which libtorch seeds at random per process; the
        // example builds each method's model from the run's seed, so `finetune` repeats itself and a method's start
        // in `compare` does not depend on the methods before it.
        using var scope = NewDisposeScope();
        static Tensor FirstA(Gpt2LMHeadModel model)
        {
            var (_, layer) = ((IPeftModel)model).Projections().First();
            return layer.LoraA(layer.Adapters.First()).detach().clone();
        }

        using var first = TinyModels.Create(Method.Lora, seed: 1234);
        var a = FirstA(first);
        rand(1000); // what an earlier method's training draws
        using var again = TinyModels.Create(Method.Lora, seed: 1234);
        using var other = TinyModels.Create(Method.Lora, seed: 1235);

        Assert.True(FirstA(again).eq(a).all().item<bool>());
        Assert.False(FirstA(other).eq(a).all().item<bool>());
    }

    public static TheoryData<string> TinyVariants => new() { "full", "lora", "qlora", "prompt", "llama", "llama-qlora", "qwen2" };

    [Theory]
    [MemberData(nameof(TinyVariants))]
    public void Real_parameter_counts_equal_the_compile_time_constants(string variant)
    {
        using var scope = NewDisposeScope();
        var (model, trainable, all, quantized) = Build(variant);
        using var _ = (IDisposable)model;
        long realTrainable = 0, realAll = 0;
        foreach (var p in ((nn.Module)model).parameters())
        {
            realAll += p.numel();
            if (p.requires_grad) realTrainable += p.numel();
        }
        // 4-bit weights are buffers, not parameters: add their logical counts as PEFT reports them.
        realAll += model.Projections().Where(p => p.Layer.IsQuantized).Sum(p => p.Layer.InFeatures * p.Layer.OutFeatures);
        Assert.Equal(trainable, realTrainable);
        Assert.Equal(all, realAll);
        Assert.Equal(quantized, model.Projections().Any(p => p.Layer.IsQuantized));
    }

    private static (IPeftModel Model, long Trainable, long All, bool Quantized) Build(string variant) => variant switch
    {
        "full" => (new TinyGptFull(), TinyGptFull.Accounting.TrainableParameters, TinyGptFull.Accounting.AllParameters, false),
        "lora" => (new TinyGptLora(), TinyGptLora.Accounting.TrainableParameters, TinyGptLora.Accounting.AllParameters, false),
        "qlora" => (new TinyGptQLora(), TinyGptQLora.Accounting.TrainableParameters, TinyGptQLora.Accounting.AllParameters, true),
        "prompt" => (new TinyGptPrompt(), TinyGptPrompt.Accounting.TrainableParameters, TinyGptPrompt.Accounting.AllParameters, false),
        "llama" => (new TinyLlamaLora(), TinyLlamaLora.Accounting.TrainableParameters, TinyLlamaLora.Accounting.AllParameters, false),
        "llama-qlora" => (new TinyLlamaQLora(), TinyLlamaQLora.Accounting.TrainableParameters, TinyLlamaQLora.Accounting.AllParameters, true),
        "qwen2" => (new TinyQwen2Lora(), TinyQwen2Lora.Accounting.TrainableParameters, TinyQwen2Lora.Accounting.AllParameters, false),
        _ => throw new ArgumentOutOfRangeException(nameof(variant)),
    };

    // TorchSharp's Module.to (dtype or device) indexes a module's public properties by name: a model class whose Dims
    // hid a public Dims of the head class it derives from made it throw, so model.to(cuda) failed on every GPU.
    [Theory]
    [InlineData("full")]
    [InlineData("lora")]
    [InlineData("qlora")]
    [InlineData("prompt")]
    public void A_generated_model_converts_with_torchsharps_to(string variant)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(11);
        using nn.Module<Tensor, Tensor> model = variant switch
        {
            "full" => new TinyGptFull(),
            "lora" => new TinyGptLora(),
            "qlora" => new TinyGptQLora(),
            _ => new TinyGptPrompt(),
        };
        model.eval();
        var ids = randint(TinyConfig.Vocab, new long[] { 2, 16 }, dtype: ScalarType.Int64);
        var before = model.forward(ids);
        model.to(ScalarType.Float64);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        var inFloat64 = model.forward(ids);
        Assert.Equal(ScalarType.Float64, inFloat64.dtype);
        Assert.True(inFloat64.to(ScalarType.Float32).allclose(before, rtol: 1e-4, atol: 1e-4), "the float64 model computes what the float32 one did");
        model.to(ScalarType.Float32);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.Equal(TinyConfig.Layers, ((IPeftModel)model).Dims.Int("Layers"));
    }

    [Fact]
    public void The_llama_blocks_build_qwen2_from_its_configuration()
    {
        // Qwen/Qwen2-7B's own count (transformers: 7,615,616,512), from the same blocks as Llama-2-7B: q/k/v biases on.
        Assert.Equal(7_615_616_512L, Qwen2_7BLora.Accounting.BaseParameters);
        Assert.Equal(6_738_415_616L, Llama2_7BLora.Accounting.BaseParameters);
        // Qwen/Qwen2.5-0.5B's (494,032,768): its head is the token embedding, so there is no lm_head to count.
        Assert.Equal(494_032_768L, Qwen25_0_5BLora.Accounting.BaseParameters);

        using var scope = NewDisposeScope();
        using var qwen = new TinyQwen2Lora();
        using var llama = new TinyLlamaLora();
        var attention = qwen.model.layers[0].self_attn;
        // The package's blocks read settings by name: no model of the package's own assembly reaches them to type them.
        Assert.True(attention.Dims.Flag("QkvBias"));
        Assert.Equal(1e6, attention.Dims.Real("RopeTheta"));
        Assert.NotNull(attention.q_proj.Bias);
        Assert.NotNull(attention.v_proj.Bias);
        Assert.Null(attention.o_proj.Bias);
        Assert.Null(llama.model.layers[0].self_attn.q_proj.Bias);
        Assert.Equal(1e-6, qwen.model.norm.Eps);
        Assert.Equal(1e-6, qwen.model.layers[1].input_layernorm.Eps);
        Assert.Equal(1e-5, llama.model.norm.Eps);

        using var _ = no_grad();
        var logits = qwen.forward(randint(0, TinyQwen2Config.Vocab, new long[] { 2, 10 }));
        Assert.Equal(new long[] { 2, 10, TinyQwen2Config.Vocab }, logits.shape);
        Assert.True(isfinite(logits).all().item<bool>());
    }

    [Fact]
    public void Prompt_variant_trains_only_its_20_virtual_tokens()
    {
        Assert.Equal(20L * TinyConfig.Width, TinyGptPrompt.Accounting.TrainableParameters);
        using var model = new TinyGptPrompt();
        var trainable = Assert.Single(((IPeftModel)model).NamedTrainableParameters());
        Assert.Equal("transformer.wte.soft_prompts.default.prompt_embeddings", trainable.Name);
    }

    [Fact]
    public void Merged_forward_equals_unmerged_and_unmerge_restores_the_base()
    {
        manual_seed(11);
        using var scope = NewDisposeScope();
        using var model = new TinyLlamaLora();
        var peft = (IPeftModel)model;
        RandomizeLoraB(peft);
        model.eval();
        using var _ = no_grad();
        var ids = randint(0, TinyLlamaConfig.Vocab, new long[] { 2, 12 });
        var before = CloneProjectionWeights(peft);
        var unmerged = model.forward(ids).to(float64);

        peft.MergeAdapters();
        var merged = model.forward(ids).to(float64);
        Assert.True(RelativeError(merged, unmerged) < 1e-5, $"relative error {RelativeError(merged, unmerged)}");
        Assert.Throws<InvalidOperationException>(() => peft.MergeAdapters());

        peft.UnmergeAdapters();
        Assert.True(RelativeError(model.forward(ids).to(float64), unmerged) < 1e-5);
        foreach (var (path, layer) in peft.Projections())
            Assert.True(RelativeError(layer.Weight.to(float64), before[path]) < 1e-6, path);
    }

    [Fact]
    public void Lora_training_lowers_the_loss_and_leaves_every_base_tensor_bit_identical()
    {
        manual_seed(12);
        using var scope = NewDisposeScope();
        using var model = new TinyLlamaLora();
        var peft = (IPeftModel)model;
        var baseHashes = BaseTensorHashes(peft);
        var ids = randint(0, TinyLlamaConfig.Vocab, new long[] { 4, 16 });
        using var optimizer = optim.AdamW(peft.TrainableParameters(), lr: 1e-2);
        double first = 0, last = 0;
        for (int step = 0; step < 15; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var logits = model.forward(ids[.., ..^1]);
            var loss = nn.functional.cross_entropy(logits.reshape(-1, TinyLlamaConfig.Vocab), ids[.., 1..].reshape(-1));
            loss.backward();
            optimizer.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first * 0.9, $"loss {first} -> {last}");
        Assert.Equal(baseHashes, BaseTensorHashes(peft));
    }

    [Fact]
    public void A_model_wide_4_bit_llama_keeps_its_head_in_float32_as_its_accounting_says()
    {
        using var model = new TinyLlamaQLora();
        var projections = ((IPeftModel)model).Projections().ToList();
        Assert.Equal(new[] { "lm_head" }, projections.Where(p => !p.Layer.IsQuantized).Select(p => p.Path));
        Assert.Equal(ScalarType.Float32, model.HeadWeight.dtype);
        Assert.False(model.HeadWeight.requires_grad);

        // The bytes the built model holds: float32 parameters (embedding, norms, head, adapters) and the 4-bit bases.
        var bytes = ((nn.Module)model).parameters().Sum(p => p.numel() * p.ElementSize)
            + projections.Where(p => p.Layer.IsQuantized).Sum(p => p.Layer.QuantizedWeight!.StorageBytes);
        Assert.Equal(TinyLlamaQLora.Accounting.WeightBytes, bytes);
    }

    [Fact]
    public void A_model_wide_4_bit_llama_trains_with_PeftTrainer_through_its_float_head()
    {
        manual_seed(13);
        using var scope = NewDisposeScope();
        using var model = new TinyLlamaQLora();
        var peft = (IPeftModel)model;
        // The 4-bit bases hold zeros until a checkpoint fills them, and zero projections pass no gradient to LoRA.
        foreach (var (_, layer) in peft.Projections().Where(p => p.Layer.IsQuantized))
            layer.LoadBase(randn(layer.OutFeatures, layer.InFeatures) / Math.Sqrt(layer.InFeatures));
        var baseHashes = BaseTensorHashes(peft);
        var codes = peft.Projections().Where(p => p.Layer.IsQuantized).ToDictionary(p => p.Path, p => Hash(p.Layer.QuantizedWeight!.Packed));

        // Eight fixed sequences to memorise, every position labelled.
        var examples = Enumerable.Range(0, 8)
            .Select(i => Enumerable.Range(0, 12).Select(t => 1 + ((i * 37) + (t * 11)) % (TinyLlamaConfig.Vocab - 1)).ToArray())
            .Select(ids => new TokenizedExample(ids, ids))
            .ToList();
        using var trainer = model.CreateTrainer(new TrainerOptions { MaxSteps = 20, LearningRate = 1e-2, WarmupSteps = 2 });
        var result = trainer.Train(new ExampleBatches(examples, batchSize: 4, padId: 0, seed: 1));

        Assert.Equal(TrainingStopReason.Completed, result.StopReason);
        double first = result.Steps.Take(2).Average(s => s.Loss), last = result.Steps.TakeLast(2).Average(s => s.Loss);
        Assert.True(last < first * 0.9, $"loss {first} -> {last}");
        Assert.Equal(baseHashes, BaseTensorHashes(peft));
        Assert.Equal(codes, peft.Projections().Where(p => p.Layer.IsQuantized).ToDictionary(p => p.Path, p => Hash(p.Layer.QuantizedWeight!.Packed)));
    }

    internal static void RandomizeLoraB(IPeftModel model)
    {
        using var _ = no_grad();
        foreach (var (_, layer) in model.Projections())
        {
            foreach (var adapter in layer.Adapters) layer.LoraB(adapter).normal_(0, 0.05);
        }
    }

    internal static Dictionary<string, string> BaseTensorHashes(IPeftModel model)
        => ((nn.Module)model).named_parameters().Where(p => !p.name.Contains("lora_", StringComparison.Ordinal) && !p.name.Contains("soft_prompts", StringComparison.Ordinal))
            .ToDictionary(p => p.name, p => Hash(p.parameter));

    internal static string Hash(Tensor t)
    {
        using var cpu = t.detach().cpu().contiguous();
        return Convert.ToHexString(SHA256.HashData(cpu.bytes.ToArray()));
    }

    private static Dictionary<string, Tensor> CloneProjectionWeights(IPeftModel model)
        => model.Projections().ToDictionary(p => p.Path, p => p.Layer.Weight.detach().to(float64).clone());

    internal static double RelativeError(Tensor actual, Tensor expected)
        => (actual - expected).norm().item<double>() / Math.Max(expected.norm().item<double>(), double.Epsilon);
}

[CollectionDefinition("torch", DisableParallelization = true)]
public sealed class TorchCollection
{
}
