using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Architectures;
using PeftGen.Tests.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.MixedBatch;

public static class MixedGpt2
{
    public const int Vocab = 64, Context = 32, Width = 32, Layers = 2, Heads = 2;
}

/// <summary>The tenants' shared base with its declared adapter (rank 4 on the attention and MLP inputs).</summary>
[PeftModel(typeof(MixedGpt2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["c_attn", "c_fc"])]
public partial class MixedGptLora : Gpt2LMHeadModel { }

/// <summary>The same base in NF4.</summary>
[PeftModel(typeof(MixedGpt2), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8, Targets = ["c_attn", "c_fc"])]
[Quantize4Bit]
public partial class MixedGptQLora : Gpt2LMHeadModel { }

/// <summary>Another tenant's model: rank 2 on the attention input only, loaded into the base with LoadAdapterAs.</summary>
[PeftModel(typeof(MixedGpt2), ContextLength = "Context")]
[Lora(Rank = 2, Alpha = 6, Targets = ["c_attn"])]
public partial class MixedGptAttentionRank2 : Gpt2LMHeadModel { }

/// <summary>A base with a 3-token soft prompt.</summary>
[PeftModel(typeof(MixedGpt2), ContextLength = "Context")]
[SoftPrompt(3)]
public partial class MixedGptPrompt : Gpt2LMHeadModel { }

/// <summary>
/// Mixed-adapter batches (issue #19 item 3): each row names its adapter or soft prompt, and its logits are those of the
/// row run alone with that adapter.
/// </summary>
[Collection(nameof(SerialTorchTests))]
public sealed class MixedBatchTests : IDisposable
{
    // Four adapters of three ranks (one on the attention input only) and a row with none.
    private static readonly string?[] Rows = ["default", "wide", null, "attention_only", "wide", "default"];

    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-mixed-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Rows_over_four_adapters_of_different_ranks_match_each_row_run_alone_on_a_float_base()
    {
        manual_seed(31);
        using var model = WithTenants(new MixedGptLora());
        AssertRowsMatchRunsAlone(model);
    }

    [Fact]
    public void Rows_over_four_adapters_of_different_ranks_match_each_row_run_alone_on_an_nf4_base()
    {
        manual_seed(32);
        using var model = WithTenants(new MixedGptQLora());
        // A 4-bit base holds zeros until a checkpoint fills it; random weights stand in for one.
        using (NewDisposeScope())
        {
            foreach (var (_, layer) in model.Projections()) layer.LoadBase(randn(layer.OutFeatures, layer.InFeatures).mul_(0.3));
        }
        Assert.True(model.transformer.h[0].attn.c_attn.IsQuantized);
        AssertRowsMatchRunsAlone(model);
    }

    [Fact]
    public void Rows_that_all_name_one_adapter_or_none_give_what_the_whole_batch_gives()
    {
        manual_seed(33);
        using var scope = NewDisposeScope();
        using var model = WithTenants(new MixedGptLora());
        model.eval();
        using var _ = no_grad();
        var ids = Ids(3);
        Tensor perRow, whole, perRowBase, wholeBase;
        using (AdapterContext.UsePerRow(model, ["wide", "wide", "wide"])) perRow = model.forward(ids);
        using (AdapterContext.Use(adapter: "wide")) whole = model.forward(ids);
        using (AdapterContext.UsePerRow(model, [null, null, null])) perRowBase = model.forward(ids);
        using (AdapterContext.BaseOnly()) wholeBase = model.forward(ids);
        Assert.True(perRow.eq(whole).all().item<bool>());
        Assert.True(perRowBase.eq(wholeBase).all().item<bool>());
    }

    [Fact]
    public void Unknown_names_a_wrong_row_count_a_merged_model_and_training_mode_are_refused_clearly()
    {
        manual_seed(34);
        using var scope = NewDisposeScope();
        using var model = WithTenants(new MixedGptLora());
        model.eval();
        var ids = Ids(Rows.Length);

        var unknown = Assert.Throws<ArgumentException>(() => AdapterContext.UsePerRow(model, ["default", "sql"]));
        Assert.Contains("'sql' (row 1)", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("default, wide, attention_only", unknown.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => AdapterContext.UsePerRow(model, softPrompts: ["tenant"]));
        Assert.Throws<ArgumentException>(() => AdapterContext.UsePerRow(model, Array.Empty<string?>()));
        Assert.Throws<ArgumentException>(() => AdapterContext.UsePerRow(model, ["default"], [null, null]));

        using (AdapterContext.UsePerRow(model, Rows))
        {
            var count = Assert.Throws<ArgumentException>(() => model.forward(Ids(2)));
            Assert.Contains($"names {Rows.Length} rows", count.Message, StringComparison.Ordinal);
            Assert.Contains("2 rows", count.Message, StringComparison.Ordinal);

            model.train();
            var training = Assert.Throws<InvalidOperationException>(() => model.forward(ids));
            Assert.Contains("training mode", training.Message, StringComparison.Ordinal);
            model.eval();

            model.MergeAdapters();
            var merged = Assert.Throws<InvalidOperationException>(() => model.forward(ids));
            Assert.Contains("'default' is merged", merged.Message, StringComparison.Ordinal);
            model.UnmergeAdapters();
            using var _ = no_grad();
            Assert.Equal(new long[] { Rows.Length, 5, MixedGpt2.Vocab }, model.forward(ids).shape);
        }

        // Without the model, a projection checks the names against its own adapters: the attention output projection,
        // which has only "wide", refuses the others and says what to do.
        using (AdapterContext.UsePerRow(Rows))
        {
            var partial = Assert.Throws<KeyNotFoundException>(() => model.forward(ids));
            Assert.Contains("'attention_only' (row 3)", partial.Message, StringComparison.Ordinal);
            Assert.Contains("its adapters: wide.", partial.Message, StringComparison.Ordinal);
            Assert.Contains("UsePerRow(model", partial.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_single_projection_mixes_rows_and_refuses_names_it_does_not_have()
    {
        manual_seed(35);
        using var scope = NewDisposeScope();
        using var layer = new LoraLinear(16, 12);
        layer.AddAdapter("a", new LoraConfig(2, 4));
        layer.AddAdapter("b", new LoraConfig(6, 3, UseRsLora: true));
        using (no_grad())
        {
            layer.LoraB("a").normal_();
            layer.LoraB("b").normal_();
        }
        layer.eval();
        var x = randn(4, 5, 16);
        string?[] rows = ["b", null, "a", "b"];

        Tensor mixed;
        using (AdapterContext.UsePerRow(rows)) mixed = layer.forward(x);
        for (int row = 0; row < rows.Length; row++)
        {
            Tensor alone;
            using (rows[row] is { } name ? AdapterContext.Use(adapter: name) : AdapterContext.BaseOnly()) alone = layer.forward(x.narrow(0, row, 1));
            Assert.True(mixed.narrow(0, row, 1).allclose(alone, rtol: 1e-5, atol: 1e-5), $"row {row}");
        }

        using (AdapterContext.UsePerRow(["a", "c", null, "c"]))
        {
            var error = Assert.Throws<KeyNotFoundException>(() => layer.forward(x));
            Assert.Contains("'c' (row 1), 'c' (row 3)", error.Message, StringComparison.Ordinal);
            Assert.Contains("its adapters: a, b", error.Message, StringComparison.Ordinal);
        }
        using (AdapterContext.UsePerRow(rows))
        {
            var flat = Assert.Throws<ArgumentException>(() => layer.forward(randn(16)));
            Assert.Contains("no batch dimension", flat.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Rows_naming_different_soft_prompts_of_one_length_match_each_row_run_alone()
    {
        manual_seed(36);
        using var scope = NewDisposeScope();
        using var model = new MixedGptPrompt();
        var embedding = model.TokenEmbedding().Embedding;
        embedding.AddSoftPrompt("tenant_b", new SoftPromptConfig(3));
        embedding.AddSoftPrompt("long", new SoftPromptConfig(5));
        model.eval();
        using var _ = no_grad();
        var ids = Ids(3);
        string?[] prompts = [MixedGptPrompt.SoftPrompts.Default, "tenant_b", "tenant_b"];

        Tensor mixed;
        using (AdapterContext.UsePerRow(model, softPrompts: prompts)) mixed = model.forward(ids);
        Assert.Equal(new long[] { 3, 5, MixedGpt2.Vocab }, mixed.shape);
        var alone = new List<Tensor>();
        for (int row = 0; row < prompts.Length; row++)
        {
            using (AdapterContext.Use(softPrompt: prompts[row])) alone.Add(model.forward(ids.narrow(0, row, 1)));
            Assert.True(mixed.narrow(0, row, 1).allclose(alone[row], rtol: 1e-5, atol: 1e-5), $"row {row}: max difference {mixed.narrow(0, row, 1).sub(alone[row]).abs().max().item<float>()}");
        }
        Tensor otherPrompt;
        using (AdapterContext.Use(softPrompt: "tenant_b")) otherPrompt = model.forward(ids.narrow(0, 0, 1));
        Assert.False(alone[0].allclose(otherPrompt, rtol: 1e-3, atol: 1e-3), "the two prompts must give different logits");

        foreach (var mismatched in new string?[][] { ["default", null, "tenant_b"], ["default", "long", "default"] })
        {
            using (AdapterContext.UsePerRow(model, softPrompts: mismatched))
            {
                var error = Assert.Throws<NotSupportedException>(() => model.forward(ids));
                Assert.Contains("different lengths", error.Message, StringComparison.Ordinal);
                Assert.Contains("attention masks", error.Message, StringComparison.Ordinal);
            }
        }
        using (AdapterContext.UsePerRow(model, softPrompts: prompts))
            Assert.Throws<ArgumentException>(() => model.forward(Ids(2)));
    }

    // The base with its declared adapter, a rank-8 adapter added on every projection, and a rank-2 one trained on the
    // attention input alone and loaded from its PEFT folder; every B random so each adapter changes the logits.
    private T WithTenants<T>(T model) where T : nn.Module, IPeftModel
    {
        using (no_grad())
        {
            foreach (var (_, layer) in model.Projections())
            {
                layer.AddAdapter("wide", new LoraConfig(8, 4));
                foreach (var adapter in layer.Adapters) layer.LoraB(adapter).normal_(0, 0.3);
            }
        }
        using (var other = new MixedGptAttentionRank2())
        {
            using (no_grad())
            {
                foreach (var (_, layer) in other.Projections().Where(p => p.Layer.Adapters.Count > 0)) layer.LoraB(MixedGptAttentionRank2.Adapters.Default).normal_(0, 0.3);
            }
            other.SaveAdapter(folder);
        }
        model.LoadAdapterAs(folder, "attention_only");
        return model;
    }

    private static void AssertRowsMatchRunsAlone<T>(T model) where T : nn.Module<Tensor, Tensor>, IPeftModel
    {
        using var scope = NewDisposeScope();
        model.eval();
        using var _ = no_grad();
        var ids = Ids(Rows.Length);
        Tensor mixed;
        using (AdapterContext.UsePerRow(model, Rows)) mixed = model.forward(ids);

        var alone = new Dictionary<string, Tensor>();
        for (int row = 0; row < Rows.Length; row++)
        {
            Tensor logits;
            using (Rows[row] is { } name ? AdapterContext.Use(adapter: name) : AdapterContext.BaseOnly()) logits = model.forward(ids.narrow(0, row, 1));
            var difference = mixed.narrow(0, row, 1).sub(logits).abs().max().item<float>();
            Assert.True(mixed.narrow(0, row, 1).allclose(logits, rtol: 1e-5, atol: 1e-5), $"row {row} ({Rows[row] ?? "base"}): max difference {difference}");
            alone[Rows[row] ?? "base"] = logits;
        }
        // Each adapter really changes what its rows compute, so equality above is not the base's on every row.
        using (AdapterContext.BaseOnly())
        {
            foreach (var (row, name) in new[] { (0, "default"), (1, "wide"), (3, "attention_only") })
            {
                var baseLogits = model.forward(ids.narrow(0, row, 1));
                Assert.True(alone[name].sub(baseLogits).abs().max().item<float>() > 1e-2, $"adapter {name} must change row {row}");
            }
        }
    }

    // Different tokens in every row, so a row written back to the wrong place shows.
    private static Tensor Ids(int rows)
        => tensor(Enumerable.Range(0, rows * 5).Select(i => (long)((i * 37 + 11) % MixedGpt2.Vocab)).ToArray(), new long[] { rows, 5 });
}
