using System;
using PeftGen.Inference;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Inference;

/// <summary>
/// Causal attention over a whole sequence in bfloat16 on the CPU, which runs as batched products and a softmax: output
/// and gradients against a float64 reference written row by row from the definition, and where that path is taken.
/// </summary>
[Collection("torch")]
public sealed class CausalAttentionTests
{
    [Theory]
    [InlineData(2, 4, 64, 64)] // keys = head width
    [InlineData(1, 3, 128, 32)] // keys = 4 head widths, the bound; a scale 1/√32 that bfloat16 does not hold exactly
    [InlineData(2, 2, 1, 16)] // one position
    public void Bfloat16_products_match_the_float64_definition_output_and_gradients(int batch, int heads, int positions, int width)
    {
        using var scope = NewDisposeScope();
        manual_seed(positions * 7 + width);
        var q = randn(batch, heads, positions, width).to(ScalarType.BFloat16);
        var k = randn(batch, heads, positions, width).to(ScalarType.BFloat16);
        var v = randn(batch, heads, positions, width).to(ScalarType.BFloat16);
        var upstream = randn(batch, heads, positions, width).to(ScalarType.BFloat16);
        Assert.True(CausalAttention.UsesProducts(q, k));

        var (qb, kb, vb) = (q.requires_grad_(true), k.requires_grad_(true), v.requires_grad_(true));
        var output = CausalAttention.Attend(qb, kb, vb);
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        output.backward(new[] { upstream });

        // The reference: the same bfloat16 values in float64, query i over keys 0 … i by the definition.
        var (q64, k64, v64) = (Leaf(q), Leaf(k), Leaf(v));
        var reference = Definition(q64, k64, v64);
        reference.backward(new[] { upstream.to(ScalarType.Float64) });

        // Bounds: the products round their outputs (scores, probabilities, result) to bfloat16, 2⁻⁹ relative each.
        AssertClose(reference, output, maxError: 0.04, meanError: 0.004);
        AssertClose(q64.grad!, qb.grad!, maxError: 0.08, meanError: 0.008);
        AssertClose(k64.grad!, kb.grad!, maxError: 0.08, meanError: 0.008);
        AssertClose(v64.grad!, vb.grad!, maxError: 0.04, meanError: 0.004);
    }

    [Fact]
    public void The_first_position_attends_to_itself_only()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(3);
        var q = randn(1, 2, 16, 8).to(ScalarType.BFloat16);
        var k = randn(1, 2, 16, 8).to(ScalarType.BFloat16);
        var v = randn(1, 2, 16, 8).to(ScalarType.BFloat16);
        var output = CausalAttention.Attend(q, k, v);
        Assert.True(output[.., .., 0].eq(v[.., .., 0]).all().item<bool>());
    }

    [Fact]
    public void Products_are_taken_for_bfloat16_on_the_cpu_up_to_four_head_widths_of_keys()
    {
        using var scope = NewDisposeScope();
        Tensor Q(long positions, ScalarType dtype) => zeros(new long[] { 1, 2, positions, 64 }, dtype: dtype);
        Assert.True(CausalAttention.UsesProducts(Q(256, ScalarType.BFloat16), Q(256, ScalarType.BFloat16)));
        Assert.False(CausalAttention.UsesProducts(Q(257, ScalarType.BFloat16), Q(257, ScalarType.BFloat16)));
        Assert.False(CausalAttention.UsesProducts(Q(128, ScalarType.Float32), Q(128, ScalarType.Float32)));
        Assert.False(CausalAttention.UsesProducts(Q(128, ScalarType.Float16), Q(128, ScalarType.Float16)));
    }

    [Fact]
    public void Beyond_the_bound_the_fused_kernel_gives_the_same_attention()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(5);
        var q = randn(1, 2, 80, 16).to(ScalarType.BFloat16);
        var k = randn(1, 2, 80, 16).to(ScalarType.BFloat16);
        var v = randn(1, 2, 80, 16).to(ScalarType.BFloat16);
        Assert.False(CausalAttention.UsesProducts(q, k));
        AssertClose(Definition(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64)), CausalAttention.Attend(q, k, v), 0.04, 0.004);
    }

    private static Tensor Leaf(Tensor t) => t.detach().to(ScalarType.Float64).requires_grad_(true);

    // softmax_j≤i(q_i · k_j / √d) · v_j, one query row at a time over its visible keys: no mask, no batched product.
    private static Tensor Definition(Tensor q, Tensor k, Tensor v)
    {
        long positions = q.shape[2];
        double scale = 1.0 / Math.Sqrt(q.shape[3]);
        var rows = new Tensor[positions];
        for (long i = 0; i < positions; i++)
        {
            var query = q[.., .., (int)i].unsqueeze(2); // batch × heads × 1 × d
            var visible = k[.., .., ..(int)(i + 1)]; // batch × heads × (i+1) × d
            var logits = (query * visible).sum(new long[] { 3 }, keepdim: false) * scale; // batch × heads × (i+1)
            var weights = (logits - logits.amax(new long[] { 2 }, keepdim: true)).exp();
            weights /= weights.sum(new long[] { 2 }, keepdim: true);
            rows[i] = (weights.unsqueeze(3) * v[.., .., ..(int)(i + 1)]).sum(new long[] { 2 }, keepdim: false);
        }
        return stack(rows, dim: 2);
    }

    private static void AssertClose(Tensor expected, Tensor actual, double maxError, double meanError)
    {
        var error = (actual.detach().to(ScalarType.Float64) - expected.detach()).abs();
        double max = error.max().item<double>(), mean = error.mean().item<double>();
        Assert.True(max <= maxError && mean <= meanError, $"max error {max:E3} (bound {maxError}), mean {mean:E3} (bound {meanError})");
    }
}
