using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Metrics;
using PeftGen.Tests.Data;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

public sealed class TextGeneratorTests
{
    private static readonly TinyCausalLm Model = new(dropout: 0.5, seed: 21);
    private static readonly int[] Prompt = { 5, 9, 3 };

    /// <summary>Greedy decoding by hand: full logits from the module's own forward, argmax of the last row.</summary>
    private static List<int> GreedyByHand(int steps)
    {
        using var noGrad = no_grad();
        Model.eval();
        var sequence = Prompt.Select(i => (long)i).ToList();
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            var logits = Model.forward(tensor(sequence.ToArray(), new long[] { 1, sequence.Count }));
            sequence.Add(logits[0, -1].argmax().item<long>());
        }
        Model.train();
        return sequence.Skip(Prompt.Length).Select(i => (int)i).ToList();
    }

    [Fact]
    public void Greedy_decoding_takes_the_argmax_of_the_full_logits_in_eval_mode()
    {
        var generator = new TextGenerator(Model);
        Model.train();
        var generated = generator.Generate(Prompt, new GenerationOptions { MaxNewTokens = 6 });
        Assert.Equal(GreedyByHand(6), generated);
        Assert.True(Model.training);
    }

    [Fact]
    public void Generation_stops_at_eos_without_returning_it()
    {
        var greedy = GreedyByHand(6);
        var generator = new TextGenerator(Model);
        var stopped = generator.Generate(Prompt, new GenerationOptions { MaxNewTokens = 6, EndOfSequenceId = greedy[2] });
        Assert.Equal(greedy.TakeWhile(t => t != greedy[2]), stopped);
    }

    [Fact]
    public void Sampling_is_repeatable_by_seed_and_top_k_one_is_greedy()
    {
        var generator = new TextGenerator(Model);
        var options = new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopK = 20, Seed = 3 };
        var first = generator.Generate(Prompt, options);
        Assert.Equal(first, generator.Generate(Prompt, options));
        Assert.NotEqual(first, generator.Generate(Prompt, options with { Seed = 4 }));
        Assert.Equal(12, first.Count);
        Assert.Equal(GreedyByHand(5), generator.Generate(Prompt, options with { TopK = 1, MaxNewTokens = 5 }));
    }

    [Fact]
    public void Top_k_sampling_only_draws_from_the_k_most_likely_tokens()
    {
        var generator = new TextGenerator(Model);
        int[] allowed;
        using (no_grad())
        {
            Model.eval();
            var logits = Model.forward(tensor(Prompt.Select(i => (long)i).ToArray(), new long[] { 1, 3 }));
            allowed = logits[0, -1].topk(3).indexes.data<long>().ToArray().Select(i => (int)i).ToArray();
            Model.train();
        }
        var drawn = Enumerable.Range(0, 40)
            .Select(seed => generator.Generate(Prompt, new GenerationOptions { MaxNewTokens = 1, Temperature = 5, TopK = 3, Seed = seed })[0])
            .ToHashSet();
        Assert.Subset(allowed.ToHashSet(), drawn);
        Assert.True(drawn.Count >= 2);
    }

    [Fact]
    public void Text_in_text_out_through_a_tokenizer_with_a_context_window()
    {
        var tokenizer = new LetterTokenizer();
        var model = new TinyCausalLm(vocab: 29, context: 8, seed: 2);
        var generator = new TextGenerator(model);
        // The window keeps the sequence within the model's 8 positions however long the prompt and output get.
        var options = new GenerationOptions { MaxNewTokens = 10, MaxContext = 8, EndOfSequenceId = -1 };
        var ids = generator.Generate(tokenizer.Encode("abcdefghij"), options);
        Assert.Equal(10, ids.Count);
        Assert.Equal(tokenizer.Decode(ids), generator.Generate(tokenizer, "abcdefghij", options));
    }
}

public sealed class GenerationScoringTests
{
    [Fact]
    public void Scores_generated_completions_against_references()
    {
        var tokenizer = new LetterTokenizer();
        var model = new TinyCausalLm(vocab: 29, context: 32, seed: 8);
        var generator = new TextGenerator(model);
        var examples = new SupervisedExamples(tokenizer, maxLength: 32);
        var records = new[] { new PromptCompletion("ab", "cd ef"), new PromptCompletion("x", "y") };
        var options = new GenerationOptions { MaxNewTokens = 6 };

        var score = GenerationScoring.Run(generator, examples, tokenizer, records, options);

        Assert.Equal(2, score.Predictions.Count);
        var expected0 = tokenizer.Decode(generator.Generate(examples.EncodePrompt("ab"), options with { EndOfSequenceId = 0 })).Trim();
        Assert.Equal(expected0, score.Predictions[0]);
        Assert.Equal(Rouge.ScoreCorpus(new[] { "cd ef", "y" }, score.Predictions), score.Rouge);
    }
}
