using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen;
using PeftGen.Architectures;
using PeftGen.Inference;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>
/// Decoding with a KV cache gives what recomputing the whole sequence gives, for every way a model can be set up:
/// LoRA active and unmerged, LoRA merged, a 4-bit base, a soft prompt, grouped-query attention with rotary positions.
/// </summary>
[Collection("torch")]
public sealed class KeyValueCacheTests
{
    public static TheoryData<string> Setups => new() { "lora", "lora-merged", "qlora", "prompt", "qwen2", "llama-qlora" };

    [Theory]
    [MemberData(nameof(Setups))]
    public void Cached_logits_equal_recomputed_ones_at_every_position(string setup)
    {
        using var scope = NewDisposeScope();
        using var model = Build(setup);
        var lm = (ICausalLanguageModel)model;
        var ids = Tokens(rows: 3, length: 14, vocab: lm.HeadWeight.shape[0]);
        using var noGrad = no_grad();
        using var precision = ComputePrecision.Use(ScalarType.Float32);

        var full = lm.ForwardHidden(ids).matmul(lm.HeadWeight.t());
        using var cache = new KeyValueCache();
        using (cache.Use())
        {
            // A prefill of 9 positions, then one position per pass.
            const int prefill = 9;
            var first = lm.ForwardHidden(ids.narrow(1, 0, prefill)).matmul(lm.HeadWeight.t());
            // A soft prompt's virtual tokens are cached positions too.
            Assert.Equal(prefill + Virtual(model), cache.Commit());
            AssertClose(full.narrow(1, 0, prefill), first, setup);
            for (int t = prefill; t < ids.shape[1]; t++)
            {
                var step = lm.ForwardHidden(ids.narrow(1, t, 1)).matmul(lm.HeadWeight.t());
                Assert.Equal(1, cache.Commit());
                AssertClose(full.narrow(1, t, 1), step, $"{setup}, position {t}");
            }
        }
        Assert.True(cache.Layers > 0, "the model's attention never used the cache");
        Assert.Equal(ids.shape[1] + Virtual(model), cache.Length);
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void Greedy_generation_with_the_cache_gives_the_same_tokens(string setup)
    {
        using var scope = NewDisposeScope();
        using var model = Build(setup);
        var lm = (ICausalLanguageModel)model;
        long vocab = lm.HeadWeight.shape[0];
        // Rows of two lengths, so generation runs two batches; a stop id makes rows leave the batch (and the cache) early.
        var prompts = new List<IReadOnlyList<int>>();
        for (int row = 0; row < 6; row++) prompts.Add(Enumerable.Range(0, row < 4 ? 7 : 5).Select(t => (int)(1 + ((row * 31) + (t * 17)) % (vocab - 1))).ToList());
        var options = new GenerationOptions { MaxNewTokens = 16, Precision = TrainingPrecision.Float32, NoRepeatNGramSize = 3 };
        var generator = new TextGenerator(model);
        var recomputed = generator.GenerateBatch(prompts, options with { UseKeyValueCache = false });
        // A stop id that ends one row after a few tokens while another row never produces it: rows then leave the batch
        // (and the cache) while others continue.
        int stop = recomputed.SelectMany(r => r.Skip(2)).First(t => recomputed.Any(other => !other.Contains(t)));
        recomputed = generator.GenerateBatch(prompts, options with { UseKeyValueCache = false, EndOfSequenceId = stop });
        var cached = generator.GenerateBatch(prompts, options with { EndOfSequenceId = stop });

        Assert.Contains(recomputed, r => r.Count < options.MaxNewTokens);
        Assert.Contains(recomputed, r => r.Count > 2);
        for (int row = 0; row < prompts.Count; row++) Assert.Equal(recomputed[row], cached[row]);
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void Left_padded_rows_give_the_logits_and_tokens_of_each_row_alone(string setup)
    {
        using var scope = NewDisposeScope();
        using var model = Build(setup);
        var lm = (ICausalLanguageModel)model;
        long vocab = lm.HeadWeight.shape[0];
        Assert.True(lm.SupportsLeftPadding);
        // Three lengths in one batch: the shorter rows are left-padded and attend through the cache's mask.
        var prompts = new List<IReadOnlyList<int>>();
        foreach (var (row, length) in new[] { (0, 9), (1, 4), (2, 6), (3, 9) })
            prompts.Add(Enumerable.Range(0, length).Select(t => (int)(1 + ((row * 37) + (t * 13)) % (vocab - 1))).ToList());
        var options = new GenerationOptions { MaxNewTokens = 10, Precision = TrainingPrecision.Float32, NoRepeatNGramSize = 3 };
        var generator = new TextGenerator(model);
        var together = generator.GenerateBatch(prompts, options);
        for (int row = 0; row < prompts.Count; row++) Assert.Equal(generator.Generate(prompts[row], options), together[row]);

        // The prefill's logits of a padded row equal the row's own, position by position.
        using var noGrad = no_grad();
        using var precision = ComputePrecision.Use(ScalarType.Float32);
        var alone = lm.ForwardHidden(tensor(prompts[1].Select(t => (long)t).ToArray(), new long[] { 1, 4 })).matmul(lm.HeadWeight.t());
        using var cache = new KeyValueCache();
        using (cache.Use())
        {
            var ids = tensor(new long[] { 0, 0, 0, 0, 0 }.Concat(prompts[1].Select(t => (long)t)).Concat(prompts[0].Select(t => (long)t)).ToArray(), new long[] { 2, 9 });
            cache.SetInputMask(tensor(Enumerable.Range(0, 18).Select(i => i >= 5).ToArray(), new long[] { 2, 9 }));
            var padded = lm.ForwardHidden(ids).matmul(lm.HeadWeight.t());
            cache.Commit();
            AssertClose(alone[0], padded[0].narrow(0, 5, 4), $"{setup}, padded prefill");
            Assert.True(cache.HasPadding);
        }
    }

    [Fact]
    public void A_model_without_cache_support_and_a_sliding_window_still_decode_by_recomputing()
    {
        using var scope = NewDisposeScope();
        using var model = Build("lora");
        var prompt = Enumerable.Range(1, 10).ToList();
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 8, Precision = TrainingPrecision.Float32, MaxContext = 12 };
        // Prompt + new tokens outgrow MaxContext: the window slides, so every step recomputes (and must match).
        Assert.Equal(generator.Generate(prompt, options with { UseKeyValueCache = false }), generator.Generate(prompt, options));
    }

    [Fact]
    public void Cached_bfloat16_generation_is_close_to_recomputed()
    {
        // bf16 rounds differently when a position is computed alone: tokens may differ where two are nearly tied,
        // but logits stay within bf16's precision.
        using var scope = NewDisposeScope();
        using var model = Build("lora");
        var lm = (ICausalLanguageModel)model;
        var ids = Tokens(rows: 2, length: 12, vocab: lm.HeadWeight.shape[0]);
        using var noGrad = no_grad();
        using var precision = ComputePrecision.Use(ScalarType.BFloat16);
        Tensor Logits(Tensor hidden) => ComputePrecision.Cast(hidden).matmul(ComputePrecision.Cast(lm.HeadWeight).t()).to(ScalarType.Float32);
        var full = Logits(lm.ForwardHidden(ids));
        using var cache = new KeyValueCache();
        using var use = cache.Use();
        lm.ForwardHidden(ids.narrow(1, 0, 11));
        cache.Commit();
        var last = Logits(lm.ForwardHidden(ids.narrow(1, 11, 1)));
        var diff = (full.narrow(1, 11, 1) - last).abs().max().item<float>();
        var scale = full.abs().max().item<float>();
        Assert.True(diff <= 0.05 * scale, $"bf16 cached logits differ by {diff} (largest logit {scale})");
    }

    private static long Virtual(nn.Module model) => model is TinyGptPrompt prompt ? prompt.transformer.wte.VirtualTokens : 0;

    private static Tensor Tokens(int rows, int length, long vocab) =>
        tensor(Enumerable.Range(0, rows * length).Select(i => (long)(1 + (i * 7919L) % (vocab - 1))).ToArray(), new long[] { rows, length });

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff < 1e-4, $"{what}: cached logits differ by {diff}");
    }

    // Real weights for the GPT variants (the shipped base), random ones for the Llama family; adapters made active.
    private static nn.Module Build(string setup)
    {
        manual_seed(7);
        nn.Module model;
        switch (setup)
        {
            case "lora" or "lora-merged":
                model = WithBase(new TinyGptLora());
                break;
            case "qlora":
                model = WithBase(new TinyGptQLora());
                break;
            case "prompt":
                var prompt = new TinyGptPrompt();
                TinyModels.LoadBase(prompt, BaseFolder.Shipped);
                using (no_grad())
                {
                    var wte = prompt.transformer.wte;
                    wte.SoftPrompt(wte.ActiveSoftPrompt!).Embeddings.normal_(0, 0.5);
                }
                model = prompt;
                break;
            case "qwen2":
                model = new TinyQwen2Lora();
                break;
            case "llama-qlora":
                var llama = new TinyLlamaQLora();
                foreach (var (_, layer) in ((IPeftModel)llama).Projections().Where(p => p.Layer.IsQuantized))
                    layer.LoadBase(randn(layer.OutFeatures, layer.InFeatures) / Math.Sqrt(layer.InFeatures));
                model = llama;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(setup), setup, null);
        }
        if (setup != "prompt") ModelsTests.RandomizeLoraB((IPeftModel)model);
        if (setup == "lora-merged") ((IPeftModel)model).MergeAdapters();
        model.eval();
        return model;
    }

    private static Gpt2LMHeadModel WithBase(Gpt2LMHeadModel model)
    {
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        return model;
    }
}
