using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using PeftGen.Tests.Support;
using PeftGen.Training;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

public sealed class SoftPromptTrainingTests(ITestOutputHelper output)
{
    private const long Vocab = 24, Dim = 32, Context = 32;
    private const int VirtualTokens = 6;

    [Fact]
    public void Only_the_prompt_trains_and_its_parameter_count_is_n_times_dim()
    {
        using var model = new TinyPromptLm(Vocab, Dim, Context);
        model.Embedding.AddSoftPrompt("default", new SoftPromptConfig(VirtualTokens));
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        Assert.Equal(new[] { "wte.soft_prompts.default.prompt_embeddings" }, trainable.Select(p => p.name));
        Assert.Equal(VirtualTokens * Dim, trainable.Sum(p => p.parameter.numel()));

        model.Embedding.SetSoftPromptTrainable("default", false);
        Assert.DoesNotContain(model.parameters(), p => p.requires_grad);
    }

    [Fact]
    public void Train_soft_prompt_only_leaves_one_prompt_trainable_on_the_model()
    {
        using var model = new TinyPromptLm(Vocab, Dim, Context);
        model.Embedding.AddSoftPrompt("a", new SoftPromptConfig(VirtualTokens));
        model.Embedding.AddSoftPrompt("b", new SoftPromptConfig(VirtualTokens + 2));
        foreach (var p in model.parameters()) p.requires_grad = true;

        model.TrainSoftPromptOnly("b");

        Assert.Equal("b", model.Embedding.ActiveSoftPrompt);
        Assert.Equal(new[] { "wte.soft_prompts.b.prompt_embeddings" }, model.NamedTrainableParameters().Select(p => p.Name));
        Assert.Equal((VirtualTokens + 2) * Dim, model.TrainableParameters().Sum(p => p.numel()));
        Assert.Equal(new[] { "a", "b" }, model.SoftPromptNames());
        Assert.Equal("wte", model.TokenEmbedding().Path);
        Assert.Throws<KeyNotFoundException>(() => model.TrainSoftPromptOnly("c"));
    }

    [Fact]
    public void Prompt_tuned_loss_falls_while_every_base_tensor_stays_bit_identical()
    {
        manual_seed(7);
        using var model = new TinyPromptLm(Vocab, Dim, Context);
        var prompt = model.Embedding.AddSoftPrompt("default", new SoftPromptConfig(VirtualTokens, SoftPromptInit.SampleVocab));
        var before = model.BaseHashes();

        var (first, last) = TrainConstantAnswer(model, prompt, steps: 40);

        Assert.True(last < 0.5 * first, $"Loss should fall: first {first:F3}, last {last:F3}.");
        Assert.Equal(before, model.BaseHashes());
    }

    [Fact]
    public void Generation_with_and_without_the_prompt_decodes_what_the_network_predicts()
    {
        manual_seed(9);
        using var model = new TinyPromptLm(Vocab, Dim, Context);
        var prompt = model.Embedding.AddSoftPrompt("default", new SoftPromptConfig(VirtualTokens));
        TrainConstantAnswer(model, prompt, steps: 40);
        var generator = new TextGenerator(model);
        var start = new[] { 1, 2, 3 };

        var greedy = generator.Generate(start, new GenerationOptions { MaxNewTokens = 6 });
        var sampled = generator.Generate(start, new GenerationOptions { MaxNewTokens = 6, Temperature = 0.05, TopK = 3, Seed = 1 });
        IReadOnlyList<int> baseGreedy;
        using (AdapterContext.BaseOnly()) baseGreedy = generator.Generate(start, new GenerationOptions { MaxNewTokens = 6 });

        // The generator sees the prompt's effect exactly as a hand-made [prompt ; tokens] input does.
        Assert.Equal(GreedyByHand(model, start, 6, prompt.Embeddings), greedy);
        Assert.Equal(GreedyByHand(model, start, 6, null), baseGreedy);
        // And the prompt's lesson (answer 5) shows in what it writes, greedy or sampled; the base model's differs.
        Assert.True(greedy.Count(t => t == 5) >= 4, $"Greedy: {string.Join(" ", greedy)}.");
        Assert.True(sampled.Count(t => t == 5) >= 4, $"Sampled: {string.Join(" ", sampled)}.");
        Assert.NotEqual(greedy, baseGreedy);
    }

    private static List<int> GreedyByHand(TinyPromptLm model, int[] start, int count, Tensor? promptValues)
    {
        using var noGrad = no_grad();
        var sequence = start.Select(t => (long)t).ToList();
        for (var i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            var rows = model.Embedding.Weight.index_select(0, tensor(sequence.ToArray())).unsqueeze(0);
            var input = promptValues is null ? rows : cat(new[] { promptValues.unsqueeze(0), rows }, 1);
            sequence.Add(model.FromEmbeddings(input, null)[0, -1].argmax().item<long>());
        }
        return sequence.Skip(start.Length).Select(t => (int)t).ToList();
    }

    // Toy task the frozen network does not know: whatever the input, the next token is always 5. The prompt can only
    // reach the outputs through attention, so it has to learn to steer it. Inputs are half 5s, as generated text is.
    private (double First, double Last) TrainConstantAnswer(TinyPromptLm model, global::PeftGen.SoftPrompt prompt, int steps)
    {
        using var optimizer = optim.Adam(new[] { prompt.Embeddings }, lr: 0.1);
        var curve = new List<float>();
        double first = 0, last = 0; // the untrained prompt's loss; the mean of the last five steps
        for (var step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            var random = randint(0, Vocab, new long[] { 16, 8 }, dtype: ScalarType.Int64);
            var ids = where(rand(16, 8).lt(0.5), full(new long[] { 16, 8 }, 5L, dtype: ScalarType.Int64), random);
            var targets = full(new long[] { 16 * 8 }, 5L, dtype: ScalarType.Int64);
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.forward(ids, null).reshape(-1, Vocab), targets);
            loss.backward();
            optimizer.step();
            var value = loss.item<float>();
            curve.Add(value);
            if (step == 0) first = value;
            if (step >= steps - 5) last += value / 5;
        }
        output.WriteLine($"loss curve: {string.Join(" ", curve.Select(v => v.ToString("F2", CultureInfo.InvariantCulture)))}");
        return (first, last);
    }

    [Fact]
    public void Prompt_and_lora_train_together_on_one_frozen_base()
    {
        manual_seed(8);
        const int rank = 4;
        using var model = new TinyPromptLm(Vocab, Dim, Context, loraRank: rank);
        var prompt = model.Embedding.AddSoftPrompt("default", new SoftPromptConfig(VirtualTokens));
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        Assert.Equal(VirtualTokens * Dim + rank * (Dim + 3 * Dim), trainable.Sum(p => p.parameter.numel()));

        var before = model.BaseHashes();
        var promptBefore = TensorHash.Of(prompt.Embeddings);
        var loraB = trainable.Single(p => p.name.Contains("lora_B")).parameter;
        var loraBBefore = TensorHash.Of(loraB);
        using var optimizer = optim.Adam(trainable.Select(p => p.parameter), lr: 0.05);
        double first = 0, last = 0;
        for (var step = 0; step < 30; step++)
        {
            using var scope = NewDisposeScope();
            var ids = randint(0, Vocab, new long[] { 16, 8 }, dtype: ScalarType.Int64);
            optimizer.zero_grad();
            var logits = model.forward(ids, null);
            var loss = nn.functional.cross_entropy(logits.reshape(-1, Vocab), full(new long[] { 16 * 8 }, 5L, dtype: ScalarType.Int64));
            loss.backward();
            optimizer.step();
            if (step == 0) first = loss.item<float>();
            if (step >= 25) last += loss.item<float>() / 5;
        }

        Assert.True(last < 0.5 * first, $"Loss should fall: first {first:F3}, last {last:F3}.");
        Assert.NotEqual(promptBefore, TensorHash.Of(prompt.Embeddings));
        Assert.NotEqual(loraBBefore, TensorHash.Of(loraB));
        Assert.Equal(before, model.BaseHashes());
    }
}
