using System;
using PeftGen.Inference;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Inference;

/// <summary>The cache's bookkeeping and the offset-causal attention a cached step runs, against a float64 reference.</summary>
[Collection("torch")]
public sealed class KeyValueCacheTests
{
    [Fact]
    public void Without_a_cache_in_use_extend_returns_its_inputs_and_past_length_is_zero()
    {
        using var scope = NewDisposeScope();
        var k = randn(1, 2, 3, 4);
        var v = randn(1, 2, 3, 4);
        var (keys, values) = KeyValueCache.Extend(new object(), k, v);
        Assert.Same(k, keys);
        Assert.Same(v, values);
        Assert.Equal(0, KeyValueCache.PastLength);
        Assert.Null(KeyValueCache.Current);
    }

    [Fact]
    public void Layers_append_their_positions_and_commit_moves_the_past_length()
    {
        using var scope = NewDisposeScope();
        object first = new(), second = new();
        using var cache = new KeyValueCache();
        using (cache.Use())
        {
            Assert.Same(cache, KeyValueCache.Current);
            var k1 = randn(2, 2, 3, 4);
            var (keys, _) = KeyValueCache.Extend(first, k1, randn(2, 2, 3, 4));
            KeyValueCache.Extend(second, randn(2, 2, 3, 4), randn(2, 2, 3, 4));
            Assert.Equal(0, KeyValueCache.PastLength);
            Assert.Equal(3, cache.Commit());
            Assert.Equal(3, KeyValueCache.PastLength);

            var k2 = randn(2, 2, 1, 4);
            (keys, _) = KeyValueCache.Extend(first, k2, randn(2, 2, 1, 4));
            Assert.Equal(new long[] { 2, 2, 4, 4 }, keys.shape);
            Assert.True(keys.narrow(2, 0, 3).eq(k1).all().item<bool>());
            Assert.True(keys.narrow(2, 3, 1).eq(k2).all().item<bool>());
            // The second layer has not extended yet: the pass is not complete.
            Assert.Throws<InvalidOperationException>(() => cache.Commit());
            KeyValueCache.Extend(second, randn(2, 2, 1, 4), randn(2, 2, 1, 4));
            Assert.Equal(1, cache.Commit());
            Assert.Equal(2, cache.Layers);
            Assert.Equal(2, cache.Rows);
            Assert.Equal(2L * 2 * (2 * 2 * 4 * 4 * 4), cache.Bytes);
        }
        Assert.Null(KeyValueCache.Current);
    }

    [Fact]
    public void Extending_twice_in_one_pass_or_joining_late_is_an_error()
    {
        using var scope = NewDisposeScope();
        object layer = new();
        using var cache = new KeyValueCache();
        using var use = cache.Use();
        KeyValueCache.Extend(layer, randn(1, 1, 2, 4), randn(1, 1, 2, 4));
        cache.Commit();
        KeyValueCache.Extend(layer, randn(1, 1, 1, 4), randn(1, 1, 1, 4));
        Assert.Contains("twice in one forward pass", Assert.Throws<InvalidOperationException>(() => KeyValueCache.Extend(layer, randn(1, 1, 1, 4), randn(1, 1, 1, 4))).Message);
        Assert.Contains("joined after", Assert.Throws<InvalidOperationException>(() => KeyValueCache.Extend(new object(), randn(1, 1, 1, 4), randn(1, 1, 1, 4))).Message);
        Assert.Throws<ArgumentException>(() => KeyValueCache.Extend(layer, randn(1, 2, 4), randn(1, 2, 4)));
    }

    [Fact]
    public void Keep_rows_selects_rows_in_order_and_clear_starts_over()
    {
        using var scope = NewDisposeScope();
        object layer = new();
        using var cache = new KeyValueCache();
        using var use = cache.Use();
        var k = arange(4 * 1 * 2 * 2, dtype: ScalarType.Float32).view(4, 1, 2, 2);
        KeyValueCache.Extend(layer, k, k.clone());
        cache.Commit();
        cache.KeepRows([3, 1]);
        Assert.Equal(2, cache.Rows);
        var (keys, _) = KeyValueCache.Extend(layer, zeros(2, 1, 1, 2), zeros(2, 1, 1, 2));
        Assert.True(keys.narrow(2, 0, 2).eq(stack([k[3], k[1]])).all().item<bool>());
        cache.Commit();
        cache.Clear();
        Assert.Equal(0, cache.Length);
        Assert.Equal(0, cache.Layers);
    }

    [Fact]
    public void A_layer_keeps_its_positions_when_they_outgrow_the_reserved_room()
    {
        using var scope = NewDisposeScope();
        object layer = new();
        using var cache = new KeyValueCache { Reserve = 2 };
        using var use = cache.Use();
        var all = randn(1, 2, 7, 4);
        KeyValueCache.Extend(layer, all.narrow(2, 0, 2), all.narrow(2, 0, 2));
        cache.Commit();
        Tensor keys = all;
        for (int t = 2; t < 7; t++)
        {
            (keys, _) = KeyValueCache.Extend(layer, all.narrow(2, t, 1), all.narrow(2, t, 1));
            cache.Commit();
        }
        Assert.True(keys.eq(all).all().item<bool>());
        Assert.Equal(7, cache.Length);
        Assert.Equal(2L * (1 * 2 * 7 * 4 * 4), cache.Bytes);
    }

    [Fact]
    public void Padding_numbers_real_positions_from_zero_and_hides_padding_keys()
    {
        using var scope = NewDisposeScope();
        using var cache = new KeyValueCache();
        using var use = cache.Use();
        // Row 0 is real at all 4 positions; row 1 has 2 positions of left padding.
        cache.SetInputMask(tensor(new[] { true, true, true, true, false, false, true, true }, new long[] { 2, 4 }));
        Assert.Equal(new long[] { 0, 1, 2, 3, 0, 0, 0, 1 }, KeyValueCache.PositionIds(4, CPU).data<long>().ToArray());
        var mask = KeyValueCache.AttentionMask(4, 4, CPU)!;
        Assert.Equal(new long[] { 2, 1, 4, 4 }, mask.shape);
        // Row 0: causal. Row 1: padding queries see only themselves; real queries see the real keys up to themselves.
        bool[] expected =
        [
            true, false, false, false, true, true, false, false, true, true, true, false, true, true, true, true,
            true, false, false, false, false, true, false, false, false, false, true, false, false, false, true, true,
        ];
        Assert.Equal(expected, mask.data<bool>().ToArray());
        object layer = new();
        KeyValueCache.Extend(layer, randn(2, 1, 4, 2), randn(2, 1, 4, 2));
        cache.Commit();
        // The next position of each row continues its own numbering, and padding stays hidden.
        Assert.Equal(new long[] { 4, 2 }, KeyValueCache.PositionIds(1, CPU).data<long>().ToArray());
        Assert.Equal(new[] { true, true, true, true, true, false, false, true, true, true }, KeyValueCache.AttentionMask(1, 5, CPU)!.data<bool>().ToArray());
        Assert.Throws<ArgumentException>(() => cache.SetInputMask(ones(3, 1, dtype: ScalarType.Bool)));
    }

    [Fact]
    public void Without_padding_positions_continue_the_cache_and_there_is_no_mask()
    {
        using var scope = NewDisposeScope();
        using var cache = new KeyValueCache();
        using var use = cache.Use();
        KeyValueCache.Extend(new object(), randn(1, 1, 3, 2), randn(1, 1, 3, 2));
        cache.Commit();
        Assert.Equal(new long[] { 3, 4 }, KeyValueCache.PositionIds(2, CPU).data<long>().ToArray());
        Assert.Null(KeyValueCache.AttentionMask(2, 5, CPU));
        Assert.False(cache.HasPadding);
    }

    [Theory]
    [InlineData(5, 5)]
    [InlineData(1, 6)]
    [InlineData(3, 7)]
    public void Attention_of_the_last_queries_matches_a_float64_reference(int queries, int keys)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var q = randn(2, 3, queries, 8);
        var k = randn(2, 3, keys, 8);
        var v = randn(2, 3, keys, 8);
        var actual = CausalAttention.Attend(q, k, v);
        Assert.True((actual.to(ScalarType.Float64) - Reference(q, k, v)).abs().max().item<double>() < 1e-5);
    }

    [Fact]
    public void More_queries_than_keys_is_an_error()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => CausalAttention.Attend(randn(1, 1, 3, 4), randn(1, 1, 2, 4), randn(1, 1, 2, 4)));
    }

    // softmax(q·kᵀ/√d) v in float64, query i (the (k − q + i)-th position) seeing keys 0 … k − q + i: written from the
    // definition, element by element.
    private static Tensor Reference(Tensor q, Tensor k, Tensor v)
    {
        var qd = q.to(ScalarType.Float64).data<double>().ToArray();
        var kd = k.to(ScalarType.Float64).data<double>().ToArray();
        var vd = v.to(ScalarType.Float64).data<double>().ToArray();
        long b = q.shape[0], h = q.shape[1], nq = q.shape[2], nk = k.shape[2], d = q.shape[3];
        var output = new double[b * h * nq * d];
        for (long bh = 0; bh < b * h; bh++)
        {
            for (long i = 0; i < nq; i++)
            {
                long visible = nk - nq + i + 1;
                var weights = new double[visible];
                double max = double.NegativeInfinity;
                for (long j = 0; j < visible; j++)
                {
                    double dot = 0;
                    for (long x = 0; x < d; x++) dot += qd[(bh * nq + i) * d + x] * kd[(bh * nk + j) * d + x];
                    weights[j] = dot / Math.Sqrt(d);
                    max = Math.Max(max, weights[j]);
                }
                double sum = 0;
                for (long j = 0; j < visible; j++) sum += weights[j] = Math.Exp(weights[j] - max);
                for (long x = 0; x < d; x++)
                {
                    double acc = 0;
                    for (long j = 0; j < visible; j++) acc += weights[j] / sum * vd[(bh * nk + j) * d + x];
                    output[(bh * nq + i) * d + x] = acc;
                }
            }
        }
        return tensor(output, new[] { b, h, nq, d });
    }
}
