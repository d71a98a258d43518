using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using PeftGen.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

public sealed class SoftPromptForwardTests
{
    private const long Vocab = 40, Dim = 16, Context = 24;

    private static Tensor RandomIds(long batch, long length) => randint(0, Vocab, new[] { batch, length }, dtype: ScalarType.Int64);

    [Fact]
    public void Without_a_prompt_the_embedding_and_helpers_change_nothing()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(Vocab, Dim);
        var ids = RandomIds(2, 5);
        var output = embedding.forward(ids);
        Assert.Equal(new[] { 2L, 5, Dim }, output.shape);
        Assert.Equal(0, embedding.VirtualTokens);
        Assert.Equal(TensorHash.Of(output), TensorHash.Of(embedding.DropVirtualTokens(output)));
        var mask = ones(2, 5, dtype: ScalarType.Int64);
        Assert.Equal(TensorHash.Of(mask), TensorHash.Of(embedding.ExtendAttentionMask(mask)));
    }

    [Fact]
    public void Prompt_is_prepended_to_every_sequence_of_the_batch()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(Vocab, Dim);
        Tensor ids = RandomIds(3, 5), plain;
        using (AdapterContext.BaseOnly()) plain = embedding.forward(ids);
        var prompt = embedding.AddSoftPrompt("default",
            new global::PeftGen.SoftPromptConfig(4, global::PeftGen.SoftPromptInit.Random, "", global::PeftGen.PeftTokenizer.Gpt2));

        var output = embedding.forward(ids);
        Assert.Equal(new[] { 3L, 9, Dim }, output.shape);
        Assert.Equal(4, embedding.VirtualTokens);
        for (var b = 0; b < 3; b++)
            Assert.Equal(TensorHash.Of(prompt.Embeddings), TensorHash.Of(output[b].narrow(0, 0, 4)));
        Assert.Equal(TensorHash.Of(plain), TensorHash.Of(output.narrow(1, 4, 5)));
        Assert.Equal(TensorHash.Of(plain), TensorHash.Of(embedding.DropVirtualTokens(output)));
    }

    [Fact]
    public void Mask_and_label_helpers_prepend_ones_and_ignored_labels()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(Vocab, Dim);
        embedding.AddSoftPrompt("p", new SoftPromptConfig(2));
        var mask = tensor(new long[] { 1, 1, 0, 1, 0, 0 }, new long[] { 2, 3 });
        Assert.Equal(new long[] { 1, 1, 1, 1, 0, 1, 1, 1, 0, 0 }, embedding.ExtendAttentionMask(mask).data<long>().ToArray());
        var labels = tensor(new long[] { 7, 8, 9 }, new long[] { 1, 3 });
        Assert.Equal(new long[] { -100, -100, 7, 8, 9 }, embedding.ExtendLabels(labels).data<long>().ToArray());
        var boolMask = ones(1, 3, dtype: ScalarType.Bool);
        Assert.Equal(ScalarType.Bool, embedding.ExtendAttentionMask(boolMask).dtype);
    }

    [Fact]
    public void Virtual_tokens_shift_positions_and_masks_like_manually_concatenated_embeddings()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = new TinyPromptLm(Vocab, Dim, Context, dtype: ScalarType.Float64);
        var prompt = model.Embedding.AddSoftPrompt("p", new SoftPromptConfig(5));
        var ids = RandomIds(2, 7);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0 }, new long[] { 2, 7 });

        var logits = model.forward(ids, mask);

        // The same network fed by hand: [prompt ; table rows], positions 0..N+T-1, mask [1 × N ; mask].
        var rows = model.Embedding.Weight.index_select(0, ids.flatten()).view(2, 7, Dim);
        var manual = cat(new[] { prompt.Embeddings.unsqueeze(0).expand(2, 5, Dim), rows }, 1);
        var manualMask = cat(new[] { ones(2, 5, dtype: ScalarType.Int64), mask }, 1);
        var expected = model.FromEmbeddings(manual, manualMask).narrow(1, 5, 7);

        Assert.Equal(new[] { 2L, 7, Vocab }, logits.shape);
        Assert.True(Reference.RelativeError(logits, expected) < 1e-12);

        // The prompt matters: without it the real tokens sit at positions 0..T-1 and see no prefix.
        Tensor baseLogits;
        using (AdapterContext.BaseOnly()) baseLogits = model.forward(ids, mask);
        Assert.True(Reference.RelativeError(baseLogits, expected) > 1e-3);

        // Padding is masked: changing a padded token's id leaves every real token's output unchanged.
        var altered = ids.clone();
        altered[1, 6] = tensor((ids[1, 6].item<long>() + 1) % Vocab);
        var alteredLogits = model.forward(altered, mask);
        Assert.True(Reference.RelativeError(alteredLogits[1].narrow(0, 0, 4), logits[1].narrow(0, 0, 4)) < 1e-12);
    }

    [Fact]
    public void Loss_over_extended_labels_equals_loss_over_real_tokens()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        using var model = new TinyPromptLm(Vocab, Dim, Context, dtype: ScalarType.Float64);
        var embedding = model.Embedding;
        embedding.AddSoftPrompt("p", new SoftPromptConfig(3));
        var ids = RandomIds(2, 6);
        var labels = RandomIds(2, 6);

        var realLogits = model.forward(ids, null);
        var realLoss = nn.functional.cross_entropy(realLogits.reshape(-1, Vocab), labels.reshape(-1));
        var allLogits = model.FromEmbeddings(embedding.forward(ids), null);
        var extendedLoss = nn.functional.cross_entropy(allLogits.reshape(-1, Vocab), embedding.ExtendLabels(labels).reshape(-1));

        Assert.Equal(realLoss.item<double>(), extendedLoss.item<double>(), 12);
    }

    [Fact]
    public void Named_prompts_chosen_per_call_give_the_outputs_of_each_prompt_alone()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var shared = new TinyPromptLm(Vocab, Dim, Context);
        var a = shared.Embedding.AddSoftPrompt("a", new SoftPromptConfig(3));
        var b = shared.Embedding.AddSoftPrompt("b", new SoftPromptConfig(6, SoftPromptInit.SampleVocab));
        Assert.Equal(new[] { "a", "b" }, shared.Embedding.SoftPrompts);
        Assert.Equal("a", shared.Embedding.ActiveSoftPrompt);

        // A separate model with identical base weights and one prompt each.
        var alone = new Dictionary<string, TinyPromptLm>();
        foreach (var (name, prompt) in new[] { ("a", a), ("b", b) })
        {
            var single = new TinyPromptLm(Vocab, Dim, Context);
            using (no_grad())
            {
                foreach (var (key, value) in shared.state_dict().Where(kv => !kv.Key.Contains("soft_prompts")))
                    single.state_dict()[key].copy_(value);
            }
            single.Embedding.AddSoftPrompt(name, new global::PeftGen.SoftPrompt(prompt.Config, prompt.Embeddings));
            alone[name] = single;
        }

        var ids = RandomIds(2, 5);
        Tensor viaA, viaB, baseOnly, viaActive;
        using (AdapterContext.Use(softPrompt: "a")) viaA = shared.forward(ids, null);
        using (AdapterContext.Use(softPrompt: "b")) viaB = shared.forward(ids, null);
        using (AdapterContext.BaseOnly()) baseOnly = shared.forward(ids, null);
        viaActive = shared.forward(ids, null);

        Assert.Equal(TensorHash.Of(alone["a"].forward(ids, null)), TensorHash.Of(viaA));
        Assert.Equal(TensorHash.Of(alone["b"].forward(ids, null)), TensorHash.Of(viaB));
        Assert.Equal(TensorHash.Of(viaA), TensorHash.Of(viaActive));
        using (AdapterContext.BaseOnly()) Assert.Equal(TensorHash.Of(alone["a"].forward(ids, null)), TensorHash.Of(baseOnly));
        Assert.NotEqual(TensorHash.Of(viaA), TensorHash.Of(viaB));

        // Concurrent callers, each with its own prompt, get what serial calls give.
        var results = Parallel.For(0, 8, i =>
        {
            var name = i % 2 == 0 ? "a" : "b";
            using var callScope = NewDisposeScope();
            using var _ = AdapterContext.Use(softPrompt: name);
            Assert.Equal(TensorHash.Of(name == "a" ? viaA : viaB), TensorHash.Of(shared.forward(ids, null)));
        });
        Assert.True(results.IsCompleted);

        foreach (var single in alone.Values) single.Dispose();
    }

    [Fact]
    public void Active_prompt_can_be_switched_removed_and_unknown_names_are_refused()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(Vocab, Dim);
        embedding.AddSoftPrompt("a", new SoftPromptConfig(2));
        embedding.AddSoftPrompt("b", new SoftPromptConfig(5));
        embedding.SetActiveSoftPrompt("b");
        Assert.Equal(5, embedding.VirtualTokens);
        using (AdapterContext.Use(softPrompt: "a")) Assert.Equal(2, embedding.VirtualTokens);
        using (AdapterContext.BaseOnly()) Assert.Equal(0, embedding.VirtualTokens);

        var unknown = Assert.Throws<KeyNotFoundException>(() => embedding.SetActiveSoftPrompt("c"));
        Assert.Contains("a, b", unknown.Message);
        using (AdapterContext.Use(softPrompt: "c"))
            Assert.Throws<KeyNotFoundException>(() => embedding.forward(RandomIds(1, 2)));
        Assert.Throws<InvalidOperationException>(() => embedding.AddSoftPrompt("a", new SoftPromptConfig(2)));
        Assert.Throws<ArgumentException>(() => embedding.AddSoftPrompt("x.y", new SoftPromptConfig(2)));

        embedding.RemoveSoftPrompt("b");
        Assert.Equal("a", embedding.ActiveSoftPrompt);
        Assert.Equal(new[] { "soft_prompts.a.prompt_embeddings" },
            embedding.named_parameters().Select(p => p.name).Where(n => n.StartsWith("soft_prompts.", StringComparison.Ordinal)));
        embedding.SetActiveSoftPrompt(null);
        Assert.Equal(0, embedding.VirtualTokens);
        embedding.SoftPromptsDisabled = true;
        embedding.SetActiveSoftPrompt("a");
        Assert.Equal(0, embedding.VirtualTokens);
    }
}
