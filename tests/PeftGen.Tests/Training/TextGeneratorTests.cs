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

    [Theory]
    [InlineData(PeftGen.Precision.TrainingPrecision.Float16)]
    [InlineData(PeftGen.Precision.TrainingPrecision.BFloat16)]
    [InlineData(PeftGen.Precision.TrainingPrecision.Float32)]
    [InlineData(PeftGen.Precision.TrainingPrecision.Auto)]
    public void An_explicit_precision_the_cpu_emulates_is_warned_of_once_per_generator(PeftGen.Precision.TrainingPrecision precision)
    {
        var generator = new TextGenerator(Model);
        var warnings = new List<string>();
        generator.Warning += (_, w) => warnings.Add(w);
        var options = new GenerationOptions { MaxNewTokens = 2, Precision = precision };

        generator.Generate(Prompt, options);
        generator.Generate(Prompt, options); // the same generator again: said once

        // This host's verdict, from the same /proc/cpuinfo the generator reads; Auto chooses a fast type and is never warned of.
        var dtype = PeftGen.Precision.PrecisionSupport.ComputeDType(precision, CPU);
        string? expected = precision == PeftGen.Precision.TrainingPrecision.Auto ? null : PeftGen.Precision.PrecisionSupport.SlowComputeWarning(dtype, CPU);
        if (precision == PeftGen.Precision.TrainingPrecision.Float32) Assert.Null(expected);
        if (expected is null) Assert.Empty(warnings);
        else Assert.Equal(expected, Assert.Single(warnings));
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

    // softmax(logits / temperature) of the next token after Prompt, in float64, from the module's own forward.
    private static double[] NextTokenProbabilities(double temperature)
    {
        using var noGrad = no_grad();
        Model.eval();
        var logits = Model.forward(tensor(Prompt.Select(i => (long)i).ToArray(), new long[] { 1, Prompt.Length }))[0, -1].to(ScalarType.Float64).data<double>().ToArray();
        Model.train();
        double max = logits.Max();
        var weights = logits.Select(l => System.Math.Exp((l - max) / temperature)).ToArray();
        double total = weights.Sum();
        return weights.Select(w => w / total).ToArray();
    }

    // One token drawn for each of n copies of Prompt in one batch.
    private static int[] Draw(int n, GenerationOptions options)
    {
        var prompts = Enumerable.Repeat<IReadOnlyList<int>>(Prompt, n).ToList();
        return new TextGenerator(Model).GenerateBatch(prompts, options with { MaxNewTokens = 1, BatchSize = n }).Select(r => r[0]).ToArray();
    }

    [Fact]
    public void Sampled_tokens_follow_the_softmax_distribution()
    {
        const int n = 4000;
        var p = NextTokenProbabilities(2.0);
        var drawn = Draw(n, new GenerationOptions { Temperature = 2.0, Seed = 5 });
        // Each token's count within 5 standard deviations of n·p, and Pearson's chi-square over the tokens with an
        // expected count of at least 5 below its 0.999 quantile (for up to 64 degrees of freedom, < 110).
        double chi = 0;
        int cells = 0;
        for (int token = 0; token < p.Length; token++)
        {
            int count = drawn.Count(t => t == token);
            double expected = n * p[token];
            Assert.True(System.Math.Abs(count - expected) <= 5 * System.Math.Sqrt(expected * (1 - p[token])) + 1, $"token {token}: {count} draws, {expected:F1} expected");
            if (expected >= 5)
            {
                chi += (count - expected) * (count - expected) / expected;
                cells++;
            }
        }
        Assert.True(cells >= 10, $"only {cells} tokens are likely enough to test");
        Assert.True(chi < 110, $"chi-square {chi:F1} over {cells} tokens");
    }

    [Fact]
    public void Top_p_draws_only_from_the_nucleus_and_a_tiny_top_p_is_greedy()
    {
        var p = NextTokenProbabilities(1.5);
        // The nucleus: the most likely tokens until their probabilities reach 0.6 (the one that crosses it included).
        var order = Enumerable.Range(0, p.Length).OrderByDescending(t => p[t]).ToArray();
        var nucleus = new HashSet<int>();
        double sum = 0;
        foreach (var token in order)
        {
            if (sum >= 0.6) break;
            nucleus.Add(token);
            sum += p[token];
        }
        Assert.True(nucleus.Count >= 2, "the test needs a nucleus of several tokens");
        var drawn = Draw(1000, new GenerationOptions { Temperature = 1.5, TopP = 0.6, Seed = 9 }).ToHashSet();
        Assert.Subset(nucleus, drawn);
        Assert.Equal(nucleus.Count, drawn.Count);
        Assert.All(Draw(50, new GenerationOptions { Temperature = 1.5, TopP = 1e-6, Seed = 9 }), t => Assert.Equal(order[0], t));
        Assert.Throws<System.ArgumentOutOfRangeException>(() => Draw(1, new GenerationOptions { Temperature = 1, TopP = 0 }));
        Assert.Throws<System.ArgumentOutOfRangeException>(() => Draw(1, new GenerationOptions { Temperature = 1, TopP = 1.5 }));
    }

    [Fact]
    public void A_stop_sequence_ends_the_row_and_is_not_returned()
    {
        var greedy = GreedyByHand(8);
        var generator = new TextGenerator(Model);
        var options = new GenerationOptions { MaxNewTokens = 8 };
        // The first place where tokens 2 and 3 occur in a row is where it stops.
        IReadOnlyList<int> stop = new[] { greedy[2], greedy[3] };
        int at = Enumerable.Range(0, 7).First(i => greedy[i] == stop[0] && greedy[i + 1] == stop[1]);
        Assert.Equal(greedy.Take(at), generator.Generate(Prompt, options with { StopSequences = [stop] }));
        Assert.Equal(greedy, generator.Generate(Prompt, options with { StopSequences = [new[] { -5 }] }));
        Assert.Throws<System.ArgumentException>(() => generator.Generate(Prompt, options with { StopSequences = [System.Array.Empty<int>()] }));
    }

    [Fact]
    public void Streamed_tokens_arrive_in_order_and_make_up_each_row()
    {
        var generator = new TextGenerator(Model);
        var prompts = new List<IReadOnlyList<int>> { Prompt, new[] { 7, 1 }, new[] { 2, 2, 8 } };
        var options = new GenerationOptions { MaxNewTokens = 6, Temperature = 1, Seed = 2, EndOfSequenceId = GreedyByHand(3)[2] };
        var streamed = prompts.Select(_ => new List<int>()).ToArray();
        var result = generator.GenerateBatch(prompts, options, token =>
        {
            Assert.Equal(streamed[token.Row].Count, token.Index);
            streamed[token.Row].Add(token.Token);
        });
        for (int row = 0; row < prompts.Count; row++) Assert.Equal(result[row], streamed[row]);
        Assert.Equal(result, generator.GenerateBatch(prompts, options));
    }

    [Fact]
    public async System.Threading.Tasks.Task Streamed_text_joins_to_the_generated_text_and_stops_before_a_stop_text()
    {
        var tokenizer = new LetterTokenizer();
        var model = new TinyCausalLm(vocab: 29, context: 32, seed: 2);
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 12, EndOfSequenceId = -1 };
        var whole = generator.Generate(tokenizer, "abc", options);
        Assert.Equal(12, whole.Length);
        var pieces = new List<string>();
        await foreach (var piece in generator.StreamAsync(tokenizer, "abc", options)) pieces.Add(piece);
        Assert.Equal(whole, string.Concat(pieces));
        Assert.True(pieces.Count > 1);

        // A stop text from the middle of the output: the text ends right before its first occurrence.
        var stop = whole.Substring(4, 2);
        var cut = whole[..whole.IndexOf(stop, System.StringComparison.Ordinal)];
        Assert.Equal(cut, generator.Generate(tokenizer, "abc", options, [stop]));
        pieces.Clear();
        await foreach (var piece in generator.StreamAsync(tokenizer, "abc", options, [stop])) pieces.Add(piece);
        Assert.Equal(cut, string.Concat(pieces));
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
