using System;
using TorchSharp;
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
        if (q == k)
        {
            return UsesProducts(queries, keys)
                ? AttendByProducts(queries, keys, values)
                : nn.functional.scaled_dot_product_attention(queries, keys, values, is_casual: true);
        }
        // One new position sees every key; several new positions (a prefill after a cached prefix) see an offset triangle.
        if (q == 1) return nn.functional.scaled_dot_product_attention(queries, keys, values);
        using var mask = ones(q, k, dtype: ScalarType.Bool, device: queries.device).tril(k - q);
        return nn.functional.scaled_dot_product_attention(queries, keys, values, attn_mask: mask);
    }

    /// <summary>
    /// Whether causal attention over a whole sequence runs as two batched products and a softmax
    /// (<see cref="AttendByProducts"/>) rather than libtorch's fused kernel: bfloat16 on the CPU, for keys at most four
    /// times as many as the head's width.
    /// </summary>
    /// <remarks>
    /// libtorch's CPU flash-attention kernel multiplies its bfloat16 tiles through MKL, which on AMD processors widens
    /// them to float32 and runs float32 kernels, while a bfloat16 batched product goes to oneDNN, which uses the
    /// processor's bfloat16 instructions. On 2 cores of an AMD EPYC (Zen 4), forward and backward of 8 rows × 8 heads ×
    /// 256 positions × 64 took 43–47 ms fused and 24–27 ms as products (6 heads × 128: 11–16 against 4–5 ms); at 512
    /// positions 52 against 40 ms, at 1,024 68 against 110 (timed in a throwaway harness,
    /// not a committed command). The products keep the probabilities
    /// (<c>batch × heads × k × k</c>) for the backward pass, which the fused kernel does not: bounding k by four head widths
    /// keeps them within four times the queries' size, small beside the rest of a block's activations.
    /// </remarks>
    internal static bool UsesProducts(Tensor queries, Tensor keys)
        => queries.device_type == DeviceType.CPU && queries.dtype == ScalarType.BFloat16
            && keys.shape[2] <= ProductsMaxKeysPerHeadWidth * queries.shape[3];

    /// <summary>The bound of <see cref="UsesProducts"/>: keys per unit of head width.</summary>
    internal const long ProductsMaxKeysPerHeadWidth = 4;

    /// <summary>
    /// Causal attention (q = k) as <c>softmax(q·kᵀ / √d + causal mask) · v</c>: two batched products in the inputs' dtype
    /// (float32 accumulation inside each product) and a softmax that reduces in float32: the formula of PyTorch's reference
    /// ("math") attention, differentiable through autograd.
    /// </summary>
    internal static Tensor AttendByProducts(Tensor queries, Tensor keys, Tensor values)
    {
        using var scope = NewDisposeScope();
        long positions = queries.shape[2];
        // The causal mask as an addend, −∞ above the diagonal and 0 elsewhere: adding it gives every visible score
        // unchanged and runs vectorised, and its backward passes the gradient through (a masked fill is a serial pass
        // each way, about three times as long at the small configuration's shape).
        using Scalar negativeInfinity = double.NegativeInfinity.ToScalar(), scale = (1.0 / Math.Sqrt(queries.shape[3])).ToScalar();
        using var future = zeros(positions, positions, dtype: queries.dtype, device: queries.device)
            .masked_fill_(ones(positions, positions, dtype: ScalarType.Bool, device: queries.device).triu(1), negativeInfinity);
        // In place on the product's own output: its backward reads the queries and keys, not the scores.
        var scores = queries.matmul(keys.transpose(-2, -1)).mul_(scale).add_(future);
        return scores.softmax(-1).matmul(values).MoveToOuterDisposeScope();
    }
}
