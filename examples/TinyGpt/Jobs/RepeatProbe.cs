using System;
using System.Collections.Generic;
using PeftGen.Data;
using PeftGen.Training;
using TinyGpt.Models;
using TorchSharp;

namespace TinyGpt.Jobs;

/// <summary>
/// Whether a base reads its context: held-out text in blocks of half the pretraining length, each block followed by
/// itself, scored once on the first copy and once on the repeat. A model that finds an earlier occurrence of the
/// current token and reads what followed it (an induction head) predicts the repeat almost surely; one that does not
/// pays about as much the second time as the first. Reusing a headword's stem or a word of the usage example, which
/// many definitions do, needs that ability.
/// </summary>
/// <param name="FirstLoss">Nats per token on the first copy (its first token excluded).</param>
/// <param name="RepeatLoss">Nats per token on the repeat (its first token, which nothing announces, excluded).</param>
/// <param name="Tokens">Tokens scored in each copy.</param>
public sealed record RepeatProbe(double FirstLoss, double RepeatLoss, long Tokens)
{
    /// <summary>Scores <paramref name="model"/> on the held-out paragraphs, every block of <paramref name="sequenceLength"/> / 2 tokens.</summary>
    /// <param name="model">The model, in eval mode.</param>
    /// <param name="paragraphs">Held-out text.</param>
    /// <param name="tokenizer">The base's tokenizer.</param>
    /// <param name="sequenceLength">The pretraining sequence length: each copy is half of it.</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    public static RepeatProbe Measure(ICausalLanguageModel model, IEnumerable<string> paragraphs, ITextTokenizer tokenizer, int sequenceLength, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (sequenceLength < 8) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "Each copy needs at least four tokens.");
        var blocks = new PackedTextBlocks(paragraphs, tokenizer, sequenceLength / 2, batchSize, seed: 0, shuffle: false);
        var first = new Doubled(blocks, repeat: false);
        var second = new Doubled(blocks, repeat: true);
        var (firstSum, firstCount) = ValidationLoss.Summed(model, first, first.BatchesPerEpoch);
        var (repeatSum, repeatCount) = ValidationLoss.Summed(model, second, second.BatchesPerEpoch);
        if (firstCount != repeatCount) throw new InvalidOperationException($"The copies scored {firstCount} and {repeatCount} tokens: they must be the same text.");
        return new RepeatProbe(firstSum / firstCount, repeatSum / repeatCount, firstCount);
    }

    /// <summary>Loads <paramref name="pretrained"/> and probes it on the held-out Brown documents with the run's sequence length.</summary>
    public static RepeatProbe Measure(RunContext context, BaseChoice pretrained)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(pretrained);
        using var model = new TinyGptFull();
        TinyModels.LoadBase(model, pretrained.Folder);
        model.to(context.Device);
        model.eval();
        return Measure(model, ExampleData.PretrainValidParagraphs(), pretrained.Tokenizer, context.Settings.PretrainBlock, context.Settings.PretrainBatch);
    }

    /// <summary>Each block followed by itself; the labels count the first copy or the repeat.</summary>
    private sealed class Doubled(PackedTextBlocks blocks, bool repeat) : IBatchSource
    {
        public long BatchesPerEpoch => blocks.BatchesPerEpoch;

        public TokenBatch GetBatch(long index)
        {
            var batch = blocks.GetBatch(index);
            int rows = batch.BatchSize, half = batch.SequenceLength, length = 2 * half;
            var ids = new long[rows * length];
            var labels = new long[rows * length];
            Array.Fill(labels, SupervisedExamples.Ignored);
            for (int row = 0; row < rows; row++)
            {
                Array.Copy(batch.InputIds, row * half, ids, row * length, half);
                Array.Copy(batch.InputIds, row * half, ids, row * length + half, half);
                // Label t is predicted at position t − 1; a copy's first token is never counted (nothing precedes the first,
                // nothing announces the repeat), so both copies count the same half − 1 tokens.
                int from = repeat ? half + 1 : 1;
                for (int t = from; t < from + half - 1; t++) labels[row * length + t] = ids[row * length + t];
            }
            var mask = new long[rows * length];
            Array.Fill(mask, 1L);
            return new TokenBatch(ids, mask, labels, rows, length);
        }
    }
}
