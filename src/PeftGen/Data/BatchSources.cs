using System;
using System.Collections.Generic;

namespace PeftGen.Data;

/// <summary>
/// Batches addressed by a global index (epoch after epoch), so a resumed run asks for exactly the batches an
/// uninterrupted run would have seen.
/// </summary>
public interface IBatchSource
{
    /// <summary>Batches in one pass over the data.</summary>
    long BatchesPerEpoch { get; }

    /// <summary>The batch at a global index (index / <see cref="BatchesPerEpoch"/> is the epoch).</summary>
    TokenBatch GetBatch(long index);
}

/// <summary>Deterministic per-epoch permutations: the order of epoch <c>e</c> depends only on the seed and <c>e</c>.</summary>
internal static class EpochOrder
{
    public static int[] Permutation(int count, long seed, long epoch, bool shuffle)
    {
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        if (!shuffle) return order;
        // System.Random with an explicit seed is a fixed, documented-stable algorithm across runs and platforms.
        var random = new Random(unchecked((int)(seed * 1_000_003 + epoch * 7_919)));
        random.Shuffle(order);
        return order;
    }
}

/// <summary>Right-padded batches of supervised examples, reshuffled every epoch by seed.</summary>
public sealed class ExampleBatches : IBatchSource
{
    private readonly IReadOnlyList<TokenizedExample> examples;
    private readonly int batchSize;
    private readonly int padId;
    private readonly long seed;
    private readonly bool shuffle;
    private long cachedEpoch = -1;
    private int[] cachedOrder = [];

    /// <summary>Creates the source; the last, smaller batch of an epoch is kept.</summary>
    public ExampleBatches(IReadOnlyList<TokenizedExample> examples, int batchSize, int padId, long seed, bool shuffle = true)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0) throw new ArgumentException("No examples.", nameof(examples));
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Batch size must be positive.");
        this.examples = examples;
        this.batchSize = batchSize;
        this.padId = padId;
        this.seed = seed;
        this.shuffle = shuffle;
    }

    /// <inheritdoc />
    public long BatchesPerEpoch => (examples.Count + batchSize - 1) / batchSize;

    /// <inheritdoc />
    public TokenBatch GetBatch(long index)
    {
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), index, "Batch index must not be negative.");
        long epoch = index / BatchesPerEpoch;
        int first = (int)(index % BatchesPerEpoch) * batchSize;
        if (epoch != cachedEpoch)
        {
            cachedOrder = EpochOrder.Permutation(examples.Count, seed, epoch, shuffle);
            cachedEpoch = epoch;
        }
        var rows = new List<TokenizedExample>();
        for (int i = first; i < Math.Min(first + batchSize, examples.Count); i++) rows.Add(examples[cachedOrder[i]]);
        return TokenBatch.Pad(rows, padId);
    }
}

/// <summary>
/// Pretraining stream: paragraphs are tokenized, joined with EOS after each, and cut into fixed-length blocks
/// (the tail that does not fill a block is dropped); every token of a block is a label.
/// </summary>
public sealed class PackedTextBlocks : IBatchSource
{
    private readonly int[] tokens;
    private readonly int blockLength;
    private readonly int batchSize;
    private readonly long seed;
    private readonly bool shuffle;
    private long cachedEpoch = -1;
    private int[] cachedOrder = [];

    /// <summary>Tokenizes and packs the paragraphs.</summary>
    public PackedTextBlocks(IEnumerable<string> paragraphs, ITextTokenizer tokenizer, int blockLength, int batchSize, long seed, bool shuffle = true)
    {
        ArgumentNullException.ThrowIfNull(paragraphs);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (blockLength < 2) throw new ArgumentOutOfRangeException(nameof(blockLength), blockLength, "A block needs at least two tokens.");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Batch size must be positive.");
        var all = new List<int>();
        foreach (var paragraph in paragraphs)
        {
            all.AddRange(tokenizer.Encode(paragraph));
            all.Add(tokenizer.EndOfSequenceId);
        }
        tokens = [.. all];
        this.blockLength = blockLength;
        this.batchSize = batchSize;
        this.seed = seed;
        this.shuffle = shuffle;
        BlockCount = tokens.Length / blockLength;
        if (BlockCount == 0) throw new ArgumentException($"The text has {tokens.Length} tokens, fewer than one block of {blockLength}.", nameof(paragraphs));
    }

    /// <summary>Tokens in the stream (including the dropped tail).</summary>
    public long TokenCount => tokens.Length;

    /// <summary>Full blocks.</summary>
    public int BlockCount { get; }

    /// <inheritdoc />
    public long BatchesPerEpoch => BlockCount / batchSize > 0 ? BlockCount / batchSize : 1;

    /// <inheritdoc />
    public TokenBatch GetBatch(long index)
    {
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), index, "Batch index must not be negative.");
        long epoch = index / BatchesPerEpoch;
        if (epoch != cachedEpoch)
        {
            cachedOrder = EpochOrder.Permutation(BlockCount, seed, epoch, shuffle);
            cachedEpoch = epoch;
        }
        var order = cachedOrder;
        int rows = Math.Min(batchSize, BlockCount);
        int first = (int)(index % BatchesPerEpoch) * rows;
        var ids = new long[rows * blockLength];
        var mask = new long[rows * blockLength];
        for (int row = 0; row < rows; row++)
        {
            int block = order[first + row];
            for (int t = 0; t < blockLength; t++) ids[row * blockLength + t] = tokens[block * blockLength + t];
        }
        Array.Fill(mask, 1L);
        return new TokenBatch(ids, mask, (long[])ids.Clone(), rows, blockLength);
    }
}
