using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen;
using PeftGen.Data;
using PeftGen.Inference;
using PeftGen.Metrics;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>Minimum-Bayes-risk decoding over the shipped base: it returns the consensus of exactly the samples the generator draws.</summary>
[Collection("torch")]
public sealed class MinimumBayesRiskTests
{
    [Fact]
    public void The_decoder_returns_the_consensus_of_the_seeded_samples_and_repeats()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyGptLora();
        var (tokenizer, _) = BaseFolder.Open(BaseFolder.Shipped);
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        var examples = new SupervisedExamples(tokenizer, 64);
        var prompts = new[] { "paint (verb)", "river (noun)", "quickly (adverb)" }.Select(p => (IReadOnlyList<int>)examples.EncodePrompt(p)).ToList();
        var options = new GenerationOptions { MaxNewTokens = 10, Seed = 5, EndOfSequenceId = tokenizer.EndOfSequenceId };
        var mbr = new MinimumBayesRiskOptions { Samples = 6, Temperature = 0.8, BatchSize = 64 };
        var generator = new TextGenerator(model);

        var chosen = new MinimumBayesRiskDecoder(generator, tokenizer).Generate(prompts, options, mbr);

        // The same draws, made directly: each prompt repeated Samples times, one seeded call.
        var rows = prompts.SelectMany(p => Enumerable.Repeat(p, mbr.Samples)).ToList();
        var samples = generator.GenerateBatch(rows, options with { Temperature = mbr.Temperature, BatchSize = mbr.BatchSize })
            .Select(ids => tokenizer.Decode(ids).Trim()).ToList();
        for (int p = 0; p < prompts.Count; p++)
        {
            var mine = samples.Skip(p * mbr.Samples).Take(mbr.Samples).ToList();
            Assert.True(mine.Distinct().Count() > 1, $"prompt {p}: the samples should differ at temperature {mbr.Temperature}");
            // The chosen one has the highest total ROUGE-1 F1 against the other samples.
            double Total(int i) => Enumerable.Range(0, mine.Count).Where(j => j != i).Sum(j => Rouge.Score(mine[j], mine[i]).Rouge1.F1);
            double best = Enumerable.Range(0, mine.Count).Max(Total);
            Assert.Contains(chosen[p], mine);
            Assert.Equal(best, Total(mine.IndexOf(chosen[p])), 12);
        }
        Assert.Equal(chosen, new MinimumBayesRiskDecoder(generator, tokenizer).Generate(prompts, options, mbr));
    }

    [Fact]
    public void Settings_that_cannot_sample_are_refused()
    {
        using var scope = NewDisposeScope();
        using var model = new TinyGptLora();
        var (tokenizer, _) = BaseFolder.Open(BaseFolder.Shipped);
        var decoder = new MinimumBayesRiskDecoder(new TextGenerator(model), tokenizer);
        IReadOnlyList<IReadOnlyList<int>> prompts = [[1, 2, 3]];
        var options = new GenerationOptions { MaxNewTokens = 2 };
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Generate(prompts, options, new MinimumBayesRiskOptions { Samples = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Generate(prompts, options, new MinimumBayesRiskOptions { Temperature = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Generate(prompts, options, new MinimumBayesRiskOptions { BatchSize = 0 }));
    }
}
