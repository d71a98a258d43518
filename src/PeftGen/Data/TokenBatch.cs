using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace PeftGen.Data;

/// <summary>
/// A right-padded batch, kept as host arrays (row-major <c>BatchSize × SequenceLength</c>) so that its tensors are
/// created inside the consumer's dispose scope.
/// </summary>
public sealed class TokenBatch
{
    /// <summary>Creates a batch from row-major arrays.</summary>
    public TokenBatch(long[] inputIds, long[] attentionMask, long[] labels, int batchSize, int sequenceLength)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(labels);
        long size = (long)batchSize * sequenceLength;
        if (batchSize <= 0 || sequenceLength <= 0 || inputIds.Length != size || attentionMask.Length != size || labels.Length != size)
            throw new ArgumentException($"Arrays must hold {batchSize} × {sequenceLength} values.");
        InputIds = inputIds;
        AttentionMask = attentionMask;
        Labels = labels;
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        foreach (var mask in attentionMask) RealTokens += mask;
        for (int row = 0; row < batchSize; row++)
        {
            // The loss at position t predicts label t + 1, so a row's first label never counts.
            for (int t = 1; t < sequenceLength; t++)
            {
                if (labels[row * sequenceLength + t] != SupervisedExamples.Ignored) LabelledTokens++;
            }
        }
    }

    /// <summary>Token ids; padding positions hold the pad id.</summary>
    public long[] InputIds { get; }

    /// <summary>1 for real tokens, 0 for padding.</summary>
    public long[] AttentionMask { get; }

    /// <summary>Labels aligned with the inputs; -100 on prompts and padding.</summary>
    public long[] Labels { get; }

    /// <summary>Rows.</summary>
    public int BatchSize { get; }

    /// <summary>Columns (the longest row).</summary>
    public int SequenceLength { get; }

    /// <summary>Non-padding tokens.</summary>
    public long RealTokens { get; }

    /// <summary>Positions that the causal-LM loss counts (after the shift).</summary>
    public long LabelledTokens { get; }

    /// <summary>Input ids as a <c>BatchSize × SequenceLength</c> int64 tensor.</summary>
    public Tensor InputIdsTensor(Device? device = null) => tensor(InputIds, new long[] { BatchSize, SequenceLength }, device: device);

    /// <summary>Attention mask as a <c>BatchSize × SequenceLength</c> int64 tensor.</summary>
    public Tensor AttentionMaskTensor(Device? device = null) => tensor(AttentionMask, new long[] { BatchSize, SequenceLength }, device: device);

    /// <summary>Labels as a <c>BatchSize × SequenceLength</c> int64 tensor.</summary>
    public Tensor LabelsTensor(Device? device = null) => tensor(Labels, new long[] { BatchSize, SequenceLength }, device: device);

    /// <summary>Right-pads examples to the longest one: pad id in the inputs, 0 in the mask, -100 in the labels.</summary>
    public static TokenBatch Pad(IReadOnlyList<TokenizedExample> examples, int padId)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0) throw new ArgumentException("A batch needs at least one example.", nameof(examples));
        int length = 0;
        foreach (var example in examples) length = Math.Max(length, example.InputIds.Length);
        int rows = examples.Count;
        var ids = new long[rows * length];
        var mask = new long[rows * length];
        var labels = new long[rows * length];
        Array.Fill(ids, padId);
        Array.Fill(labels, SupervisedExamples.Ignored);
        for (int row = 0; row < rows; row++)
        {
            var example = examples[row];
            for (int t = 0; t < example.InputIds.Length; t++)
            {
                ids[row * length + t] = example.InputIds[t];
                mask[row * length + t] = 1;
                labels[row * length + t] = example.Labels[t];
            }
        }
        return new TokenBatch(ids, mask, labels, rows, length);
    }
}
