using System;
using System.Linq;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

[Collection("torch")]
public sealed class RepeatProbeTests
{
    private const int Sequence = 32;

    /// <summary>
    /// A stand-in that copies perfectly and knows nothing else: at position t of the second half it puts all its weight
    /// on the token half a sequence earlier, one place on (what the repeat continues with); everywhere else its logits
    /// are all zero, so it pays ln(vocabulary) per token.
    /// </summary>
    private sealed class PerfectCopier(int vocabulary) : ICausalLanguageModel
    {
        public Tensor HeadWeight { get; } = eye(vocabulary);

        public Tensor ForwardHidden(Tensor inputIds)
        {
            long rows = inputIds.shape[0], length = inputIds.shape[1], half = length / 2;
            var hidden = zeros(rows, length, vocabulary);
            // Position t ≥ half − 1 predicts token t + 1 = token t + 1 − half.
            var source = inputIds.narrow(1, 1, half - 1);
            var target = hidden.narrow(1, half, half - 1);
            var index = source.unsqueeze(2);
            target.scatter_(2, index, full(index.shape, 1000.0f));
            return hidden;
        }
    }

    [Fact]
    public void A_model_that_copies_pays_nothing_for_the_repeat_and_chance_for_the_first_copy()
    {
        var (tokenizer, _) = BaseFolder.Open(BaseFolder.Shipped);
        var paragraphs = ExampleData.PretrainValidParagraphs().Take(8).ToList();
        var probe = RepeatProbe.Measure(new PerfectCopier(tokenizer.VocabularySize), paragraphs, tokenizer, Sequence, batchSize: 4);

        long tokens = paragraphs.Sum(p => tokenizer.Encode(p).Count + 1L);
        long blocks = tokens / (Sequence / 2) / 4 * 4; // whole blocks, in whole batches of 4
        Assert.Equal(blocks * (Sequence / 2 - 1), probe.Tokens);
        Assert.Equal(Math.Log(tokenizer.VocabularySize), probe.FirstLoss, 4);
        Assert.Equal(0, probe.RepeatLoss, 4);
    }

    [Fact]
    public void The_shipped_base_pays_almost_as_much_for_the_repeat_as_for_the_first_copy()
    {
        // What the README reports of the shipped base: it does not read its context (an induction head would bring the
        // repeat well under one nat). Should a new base learn to, this test is the one to update, with the README.
        var (tokenizer, _) = BaseFolder.Open(BaseFolder.Shipped);
        using var model = new TinyGptFull();
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        model.eval();
        var probe = RepeatProbe.Measure(model, ExampleData.PretrainValidParagraphs().Take(40), tokenizer, 128, batchSize: 8);
        Assert.InRange(probe.FirstLoss, 3.0, 4.5);
        Assert.InRange(probe.RepeatLoss, probe.FirstLoss - 1.0, probe.FirstLoss);
    }
}
