using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using TinyGpt.Jobs;
using Xunit;

namespace TinyGpt.Tests;

public sealed class CopiedSpansTests
{
    private const int Rows = 8;
    private const int Length = 128;

    /// <summary>Blocks whose every token is distinct (row, position and batch are written in it), so any copy shows.</summary>
    private sealed class DistinctTokens(bool padded = false) : IBatchSource
    {
        public long BatchesPerEpoch => 1000;

        public TokenBatch GetBatch(long index)
        {
            var ids = new long[Rows * Length];
            for (int i = 0; i < ids.Length; i++) ids[i] = index * Rows * Length + i + 1;
            var mask = Enumerable.Repeat(1L, ids.Length).ToArray();
            if (padded) mask[^1] = 0;
            return new TokenBatch(ids, mask, (long[])ids.Clone(), Rows, Length);
        }
    }

    /// <summary>The span a row holds, found from the row alone: (source, destination, length), or null when it is unchanged.</summary>
    private static (int Source, int Destination, int Span)? SpanOf(long[] original, long[] changed, int row)
    {
        var differs = Enumerable.Range(0, Length).Where(t => original[row * Length + t] != changed[row * Length + t]).ToList();
        if (differs.Count == 0) return null;
        int destination = differs[0], span = differs[^1] - differs[0] + 1;
        // Every changed token is one of the row's own, shifted by the same distance.
        long shift = changed[row * Length + destination] - original[row * Length + destination];
        Assert.All(differs, t => Assert.Equal(shift, changed[row * Length + t] - original[row * Length + t]));
        Assert.Equal(span, differs.Count);
        return (destination + (int)shift, destination, span);
    }

    [Fact]
    public void With_every_block_chosen_each_holds_one_earlier_span_of_8_to_32_tokens_copied_later_and_nothing_else_changes()
    {
        var inner = new DistinctTokens();
        var source = new CopiedSpans(inner, 1.0, seed: 7);
        var lengths = new List<int>();
        var distances = new List<int>();
        for (long index = 0; index < 50; index++)
        {
            var original = inner.GetBatch(index).InputIds;
            var batch = source.GetBatch(index);
            Assert.Equal(batch.InputIds, batch.Labels);
            Assert.All(batch.AttentionMask, m => Assert.Equal(1L, m));
            for (int row = 0; row < Rows; row++)
            {
                var (from, to, span) = SpanOf(original, batch.InputIds, row) ?? throw new Xunit.Sdk.XunitException($"batch {index} row {row} holds no span");
                Assert.InRange(span, CopiedSpans.ShortestSpan, CopiedSpans.LongestSpan);
                Assert.True(from >= 0 && from + span <= to, $"the source [{from}, {from + span}) must end before the copy at {to}");
                Assert.True(to + span <= Length);
                lengths.Add(span);
                distances.Add(to - from);
            }
        }
        // Lengths and distances vary (a fixed distance teaches a fixed offset, not where to look).
        Assert.True(lengths.Distinct().Count() > 15, string.Join(",", lengths.Distinct()));
        Assert.True(distances.Distinct().Count() > 40);
    }

    [Fact]
    public void The_fraction_of_blocks_with_a_span_is_the_one_asked_for_and_a_batch_is_the_same_every_time()
    {
        var inner = new DistinctTokens();
        var source = new CopiedSpans(inner, 0.25, seed: 7);
        int changed = 0, rows = 0;
        for (long index = 0; index < 200; index++)
        {
            var original = inner.GetBatch(index).InputIds;
            var batch = source.GetBatch(index);
            for (int row = 0; row < Rows; row++, rows++)
                if (SpanOf(original, batch.InputIds, row) is not null) changed++;
            Assert.Equal(batch.InputIds, source.GetBatch(index).InputIds);
            Assert.Equal(batch.InputIds, new CopiedSpans(inner, 0.25, seed: 7).GetBatch(index).InputIds);
        }
        // 1,600 rows: the binomial's standard deviation is about 1.1 percentage points.
        Assert.InRange(changed / (double)rows, 0.21, 0.29);
        Assert.NotEqual(source.GetBatch(3).InputIds, new CopiedSpans(inner, 0.25, seed: 8).GetBatch(3).InputIds);
    }

    [Fact]
    public void A_fraction_out_of_range_and_padded_rows_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CopiedSpans(new DistinctTokens(), 0, seed: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CopiedSpans(new DistinctTokens(), 1.5, seed: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CopiedSpans(new DistinctTokens(), double.NaN, seed: 1));
        var error = Assert.Throws<InvalidOperationException>(() => new CopiedSpans(new DistinctTokens(padded: true), 0.5, seed: 1).GetBatch(0));
        Assert.Contains("full blocks", error.Message);
    }
}
