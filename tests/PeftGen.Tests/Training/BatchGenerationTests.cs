using System.Collections.Generic;
using System.Linq;
using PeftGen.Precision;
using PeftGen.Training;
using Xunit;

namespace PeftGen.Tests.Training;

// Serial: the model's weights come from torch's global generator, which parallel tests reseed.
[Collection(nameof(SerialTorchTests))]
public sealed class BatchGenerationTests
{
    private readonly TinyCausalLm model = new(dropout: 0.0, seed: 23);

    private static readonly IReadOnlyList<int>[] Prompts =
    [
        new[] { 5, 9, 3 }, new[] { 1, 2 }, new[] { 7, 7, 7 }, new[] { 4 }, new[] { 8, 1, 6 }, new[] { 3, 3 }, new[] { 12, 40, 2, 9 },
    ];

    [Fact]
    public void A_batch_gives_each_prompt_exactly_what_it_gets_alone()
    {
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 8, EndOfSequenceId = 0, Precision = TrainingPrecision.Float32, BatchSize = 2 };
        var batched = generator.GenerateBatch(Prompts, options);
        Assert.Equal(Prompts.Length, batched.Count);
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(generator.Generate(Prompts[i], options), batched[i]);
    }

    [Fact]
    public void No_repeat_ngram_bans_every_trigram_already_in_the_sequence()
    {
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 30, NoRepeatNGramSize = 3, Precision = TrainingPrecision.Float32 };
        var free = generator.Generate(Prompts[2], options with { NoRepeatNGramSize = 0 });
        var constrained = generator.Generate(Prompts[2], options);
        var sequence = Prompts[2].Concat(constrained).ToList();
        var trigrams = Enumerable.Range(0, sequence.Count - 2).Select(i => (sequence[i], sequence[i + 1], sequence[i + 2])).ToList();
        Assert.Equal(trigrams.Count, trigrams.Distinct().Count());
        // Control: 30 greedy tokens from a 64-token random model repeat a trigram when nothing bans it.
        var unconstrained = Prompts[2].Concat(free).ToList();
        var freeTrigrams = Enumerable.Range(0, unconstrained.Count - 2).Select(i => (unconstrained[i], unconstrained[i + 1], unconstrained[i + 2])).ToList();
        Assert.True(freeTrigrams.Distinct().Count() < freeTrigrams.Count);
    }

    [Fact]
    public void End_of_sequence_is_not_chosen_before_the_minimum()
    {
        var generator = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 5, Precision = TrainingPrecision.Float32 };
        int first = generator.Generate(Prompts[0], options)[0];
        // With the first greedy token as EOS the output is empty; with one token required it is not.
        Assert.Empty(generator.Generate(Prompts[0], options with { EndOfSequenceId = first }));
        var forced = generator.Generate(Prompts[0], options with { EndOfSequenceId = first, MinNewTokens = 1 });
        Assert.NotEmpty(forced);
        Assert.NotEqual(first, forced[0]);
    }
}
