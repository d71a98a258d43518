using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen;
using PeftGen.Inference;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>
/// The main job's model serving rows of several tenants in one batch (issue #19 item 3), through the KV cache: each
/// row decodes what it decodes alone with its adapter.
/// </summary>
[Collection("torch")]
public sealed class MixedAdapterTests : IDisposable
{
    private const int Steps = 6;

    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-mixed-tiny-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Cached_greedy_decoding_of_rows_over_two_adapters_and_the_base_matches_each_row_decoded_alone()
    {
        using var scope = NewDisposeScope();
        using var model = TwoTenants(seed: 41);
        model.eval();
        using var noGrad = no_grad();
        string?[] rows = [TinyGptLora.Adapters.Default, "tenant_b", null, "tenant_b"];
        var prompt = tensor(Enumerable.Range(0, rows.Length * 7).Select(i => (long)(1 + i * 131 % 8000)).ToArray(), new long[] { rows.Length, 7 });

        var (mixedTokens, mixedLogits) = DecodeGreedily(model, prompt, () => AdapterContext.UsePerRow(model, rows));
        for (int row = 0; row < rows.Length; row++)
        {
            var name = rows[row];
            var (tokens, logits) = DecodeGreedily(model, prompt.narrow(0, row, 1), () => name is null ? AdapterContext.BaseOnly() : AdapterContext.Use(adapter: name));
            Assert.Equal(tokens[0], mixedTokens[row]);
            var difference = mixedLogits.narrow(0, row, 1).sub(logits).abs().max().item<float>();
            Assert.True(difference < 1e-4, $"row {row} ({name ?? "base"}): last step's logits differ by {difference}");
        }
        // The adapters matter: the first row decoded on the base alone gives other logits.
        var (_, baseLogits) = DecodeGreedily(model, prompt.narrow(0, 0, 1), AdapterContext.BaseOnly);
        Assert.True(mixedLogits.narrow(0, 0, 1).sub(baseLogits).abs().max().item<float>() > 1e-2);
    }

    [Fact]
    public void The_generator_decodes_prompts_of_several_lengths_over_several_adapters_in_one_batch_as_each_alone()
    {
        using var scope = NewDisposeScope();
        using var model = TwoTenants(seed: 43);
        string?[] adapters = [TinyGptLora.Adapters.Default, "tenant_b", null, "tenant_b", TinyGptLora.Adapters.Default];
        // Rows 0 and 4 share prompt and adapter (one prefill); rows 1 and 3 share the prompt under one adapter; lengths differ.
        int[][] prompts = [[5, 9, 31, 2], [7, 400, 12], [7, 400, 12], [7, 400, 12], [5, 9, 31, 2]];
        var options = new GenerationOptions { MaxNewTokens = 8, Precision = TrainingPrecision.Float32, NoRepeatNGramSize = 3 };
        var generator = new TextGenerator(model);
        var together = generator.GenerateBatch(prompts, options, adapters: adapters);
        for (int row = 0; row < prompts.Length; row++)
        {
            var name = adapters[row];
            using var selection = name is null ? AdapterContext.BaseOnly() : AdapterContext.Use(adapter: name);
            Assert.Equal(generator.Generate(prompts[row], options), together[row]);
        }
        Assert.NotEqual(together[0], together[2]);
        Assert.Throws<ArgumentException>(() => generator.GenerateBatch(prompts, options, adapters: ["tenant_b"]));
        Assert.Throws<ArgumentException>(() => generator.GenerateBatch(prompts, options, adapters: ["nobody", null, null, null, null]));
    }

    // The main job's LoRA model over the shipped base with random adapters: its default one and "tenant_b", a rank-4
    // adapter saved by another model and loaded under that name.
    private TinyGptLora TwoTenants(int seed)
    {
        manual_seed(seed);
        using (var rank4 = new TinyGptLoraRank4())
        {
            ModelsTests.RandomizeLoraB(rank4);
            rank4.SaveAdapter(folder);
        }
        var model = new TinyGptLora();
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        ModelsTests.RandomizeLoraB(model);
        model.LoadAdapterAs(folder, "tenant_b");
        return model;
    }

    // Greedy decoding of every row through the KV cache, under the selection: the new tokens of each row and the last
    // step's logits.
    private static (List<long>[] Tokens, Tensor LastLogits) DecodeGreedily(TinyGptLora model, Tensor prompt, Func<IDisposable> select)
    {
        using var selection = select();
        using var cache = new KeyValueCache();
        using var useCache = cache.Use();
        var tokens = Enumerable.Range(0, (int)prompt.shape[0]).Select(_ => new List<long>()).ToArray();
        var input = prompt;
        Tensor last = input;
        for (int step = 0; step < Steps; step++)
        {
            last = model.forward(input).select(1, -1);
            cache.Commit();
            input = last.argmax(-1).unsqueeze(1);
            var chosen = input.data<long>().ToArray();
            for (int row = 0; row < chosen.Length; row++) tokens[row].Add(chosen[row]);
        }
        return (tokens, last);
    }
}
