using System;
using System.Collections.Generic;
using PeftGen.Data;
using PeftGen.Training;
using TinyGpt.Models;
using TorchSharp;
using static TorchSharp.torch;

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
        var device = model.HeadDevice();
        using var noGrad = no_grad();
        double firstSum = 0, repeatSum = 0;
        long firstCount = 0, repeatCount = 0;
        for (long i = 0; i < blocks.BatchesPerEpoch; i++)
        {
            using var scope = NewDisposeScope();
            var (ids, firstLabels, repeatLabels) = Doubled(blocks.GetBatch(i));
            // One forward pass over the doubled blocks; each copy's loss reads the same hidden states.
            var hidden = model.ForwardHidden(ids.to(device));
            var (first, n1) = CausalLmLoss.Sum(hidden, model.HeadWeight, firstLabels.to(device));
            var (repeat, n2) = CausalLmLoss.Sum(hidden, model.HeadWeight, repeatLabels.to(device));
            firstSum += first.to(ScalarType.Float64).item<double>();
            repeatSum += repeat.to(ScalarType.Float64).item<double>();
            firstCount += n1;
            repeatCount += n2;
        }
        if (firstCount != repeatCount) throw new InvalidOperationException($"The copies scored {firstCount} and {repeatCount} tokens: they must be the same text.");
        return new RepeatProbe(firstSum / firstCount, repeatSum / repeatCount, firstCount);
    }

    /// <summary>
    /// Each block of <paramref name="batch"/> followed by itself (<c>rows × 2·block</c>), with labels that count the
    /// first copy and labels that count the repeat.
    /// </summary>
    private static (Tensor Ids, Tensor FirstLabels, Tensor RepeatLabels) Doubled(TokenBatch batch)
    {
        int rows = batch.BatchSize, half = batch.SequenceLength, length = 2 * half;
        var ids = new long[rows * length];
        var first = new long[rows * length];
        var repeat = new long[rows * length];
        Array.Fill(first, SupervisedExamples.Ignored);
        Array.Fill(repeat, SupervisedExamples.Ignored);
        for (int row = 0; row < rows; row++)
        {
            Array.Copy(batch.InputIds, row * half, ids, row * length, half);
            Array.Copy(batch.InputIds, row * half, ids, row * length + half, half);
            // Label t is predicted at position t − 1; a copy's first token is never counted (nothing precedes the first,
            // nothing announces the repeat), so both copies count the same half − 1 tokens.
            for (int t = 1; t < half; t++)
            {
                first[row * length + t] = ids[row * length + t];
                repeat[row * length + half + t] = ids[row * length + half + t];
            }
        }
        long[] shape = [rows, length];
        return (tensor(ids, shape), tensor(first, shape), tensor(repeat, shape));
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
}
