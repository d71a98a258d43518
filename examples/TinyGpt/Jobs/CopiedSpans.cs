using System;
using PeftGen.Data;

namespace TinyGpt.Jobs;

/// <summary>
/// Pretraining blocks of which a fraction hold a span of their own text copied to a random later place, so that a
/// model learns to find an earlier occurrence of what it reads and continue it (an induction head): the ability that
/// <see cref="RepeatProbe"/> measures and that the shipped base, trained on natural text alone, never formed. The
/// copy overwrites the text at its destination; the labels are the changed block, so the copy's tokens after its first
/// are what the model learns to predict from the source. A span's length, source and destination, and whether a block
/// holds one, depend only on the seed, the batch index and the row, so a resumed run sees the same batches.
/// </summary>
public sealed class CopiedSpans : IBatchSource
{
    private readonly IBatchSource inner;
    private readonly double fraction;
    private readonly long seed;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">Full blocks (no padding), such as <see cref="PackedTextBlocks"/>.</param>
    /// <param name="fraction">The fraction of blocks that hold a copied span, above 0 and at most 1.</param>
    /// <param name="seed">The seed of the spans' choice.</param>
    public CopiedSpans(IBatchSource inner, double fraction, long seed)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (!(fraction > 0 && fraction <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The fraction of blocks with a copied span must be above 0 and at most 1.");
        this.inner = inner;
        this.fraction = fraction;
        this.seed = seed;
    }

    /// <summary>The shortest span copied.</summary>
    public const int ShortestSpan = 8;

    /// <summary>The longest span copied (at most a quarter of the block, so that source and destination never overlap).</summary>
    public const int LongestSpan = 32;

    /// <inheritdoc />
    public long BatchesPerEpoch => inner.BatchesPerEpoch;

    /// <inheritdoc />
    public TokenBatch GetBatch(long index)
    {
        var batch = inner.GetBatch(index);
        int length = batch.SequenceLength;
        if (length < 2 * ShortestSpan) throw new InvalidOperationException($"Blocks of {length} tokens are too short for a copied span of {ShortestSpan} tokens and its source.");
        for (int i = 0; i < batch.AttentionMask.Length; i++)
            if (batch.AttentionMask[i] == 0) throw new InvalidOperationException("Copied spans need full blocks; this source pads its rows.");
        var ids = (long[])batch.InputIds.Clone();
        var random = new Random(unchecked((int)(seed * 1_000_003 + index * 7_919 + 17)));
        for (int row = 0; row < batch.BatchSize; row++)
        {
            // Every row draws the same numbers whether or not it gets a span, so a row's choice does not depend on its neighbours'.
            double draw = random.NextDouble();
            int span = random.Next(ShortestSpan, Math.Min(LongestSpan, length / 4 < ShortestSpan ? ShortestSpan : length / 4) + 1);
            int source = random.Next(0, length - 2 * span + 1);
            int destination = random.Next(source + span, length - span + 1);
            if (draw >= fraction) continue;
            Array.Copy(ids, row * length + source, ids, row * length + destination, span);
        }
        return new TokenBatch(ids, batch.AttentionMask, (long[])ids.Clone(), batch.BatchSize, length);
    }
}
