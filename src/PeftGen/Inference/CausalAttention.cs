using System;
using static TorchSharp.torch;

namespace PeftGen.Inference;

/// <summary>Causal scaled dot-product attention whose queries may be the last positions of a longer key sequence (a KV cache's step).</summary>
public static class CausalAttention
{
    /// <summary>
    /// Attention of <paramref name="queries"/> (<c>batch × heads × q × headDim</c>) over <paramref name="keys"/> and
    /// <paramref name="values"/> (<c>batch × heads × k × headDim</c>, k ≥ q), where the queries are the last q of the k
    /// positions: query i sees keys 0 … k − q + i. With q = k this is ordinary causal attention. When the ambient
    /// <see cref="KeyValueCache"/> holds left-padded rows, padding keys are hidden too (<see cref="KeyValueCache.AttentionMask"/>).
    /// Attention runs in the keys' dtype (a cache may keep them wider than the queries, see
    /// <see cref="KeyValueCache.StorageDType"/>); the result has the queries' dtype.
    /// </summary>
    public static Tensor Attend(Tensor queries, Tensor keys, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        if (values.dtype != keys.dtype)
            throw new ArgumentException($"Keys ({keys.dtype}) and values ({values.dtype}) must have one dtype.", nameof(values));
        if (queries.dtype != keys.dtype)
        {
            using var scope = NewDisposeScope();
            return Attend(queries.to(keys.dtype), keys, values).to(queries.dtype).MoveToOuterDisposeScope();
        }
        long q = queries.shape[2], k = keys.shape[2];
        if (k < q) throw new ArgumentException($"{q} queries but only {k} keys: queries must be the last positions of the keys.", nameof(keys));
        using (var padded = KeyValueCache.AttentionMask(q, k, queries.device))
        {
            if (padded is not null) return nn.functional.scaled_dot_product_attention(queries, keys, values, attn_mask: padded);
        }
        if (q == k) return nn.functional.scaled_dot_product_attention(queries, keys, values, is_casual: true);
        // One new position sees every key; several new positions (a prefill after a cached prefix) see an offset triangle.
        if (q == 1) return nn.functional.scaled_dot_product_attention(queries, keys, values);
        using var mask = ones(q, k, dtype: ScalarType.Bool, device: queries.device).tril(k - q);
        return nn.functional.scaled_dot_product_attention(queries, keys, values, attn_mask: mask);
    }
}
