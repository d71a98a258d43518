using System;
using PeftGen.Tests.Support;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

// The lookup's gradient against a float64 reference that sums each id's upstream rows into its table row one at a time
// (repeated ids included), the definition of index_select's gradient; and against that gradient plus a tied head's.
public sealed class TokenRowsFunctionTests
{
    private const long Count = 11, Dim = 6;

    // Token 3 three times, token 0 and the last token twice: repeated rows must be summed.
    private static readonly long[] Ids = { 3, 0, 3, 7, 10, 3, 0, 10, 5 };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_tables_gradient_sums_each_ids_rows_as_a_float64_reference_does(bool gradientExists)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var table = new Parameter(randn(Count, Dim));
        if (gradientExists) table.grad = zeros(Count, Dim);
        var upstream = randn(Ids.Length, Dim, dtype: ScalarType.Float64);

        var rows = TokenRowsFunction.Lookup(table, tensor(Ids));
        Assert.Equal(table.index_select(0, tensor(Ids)).data<float>().ToArray(), rows.data<float>().ToArray());
        (rows * upstream.to(ScalarType.Float32)).sum().backward();

        var grad = table.grad!;
        Assert.False(grad.is_sparse);
        Assert.True(Reference.RelativeError(grad, RowSums(upstream)) < 1e-6);
    }

    [Fact]
    public void A_tied_head_and_the_lookup_add_up_and_accumulate_into_an_existing_gradient()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var start = randn(Count, Dim, dtype: ScalarType.Float64);
        var table = new Parameter(start.to(ScalarType.Float32));
        var earlier = randn(Count, Dim, dtype: ScalarType.Float64);
        table.grad = earlier.to(ScalarType.Float32);
        var upstream = randn(Ids.Length, Count, dtype: ScalarType.Float64);

        // logits = rows · tableᵀ: the table is both the lookup and the head, as GPT-2's tied wte.
        var rows = TokenRowsFunction.Lookup(table, tensor(Ids));
        (rows.matmul(table.t()) * upstream.to(ScalarType.Float32)).sum().backward();

        // d/d(table) = upstreamᵀ · rows (the head) + Σ per id of upstream · table (the lookup), added to the earlier gradient.
        var rows64 = start.index_select(0, tensor(Ids));
        var expected = earlier + upstream.t().matmul(rows64) + RowSums(upstream.matmul(start));
        Assert.False(table.grad!.is_sparse);
        Assert.True(Reference.RelativeError(table.grad!, expected) < 1e-6);
    }

    [Fact]
    public void A_bfloat16_table_adds_its_rows_to_its_bfloat16_gradient()
    {
        using var scope = NewDisposeScope();
        manual_seed(14);
        var table = new Parameter(randn(Count, Dim).to(ScalarType.BFloat16));
        table.grad = zeros(Count, Dim, dtype: ScalarType.BFloat16);
        var upstream = randn(Ids.Length, Dim, dtype: ScalarType.Float64);
        (TokenRowsFunction.Lookup(table, tensor(Ids)).to(ScalarType.Float32) * upstream.to(ScalarType.Float32)).sum().backward();
        Assert.Equal(ScalarType.BFloat16, table.grad!.dtype);
        Assert.False(table.grad!.is_sparse);
        // Each row's sum of up to three values, each rounded to bfloat16 (8 bits of mantissa).
        Assert.True(Reference.RelativeError(table.grad!, RowSums(upstream)) < 1e-2);
    }

    [Fact]
    public void A_frozen_table_or_no_grad_looks_up_the_same_rows()
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        var frozen = new Parameter(randn(Count, Dim), requires_grad: false);
        var trained = new Parameter(frozen.detach().clone());
        var expected = frozen.index_select(0, tensor(Ids)).data<float>().ToArray();
        Assert.Equal(expected, TokenRowsFunction.Lookup(frozen, tensor(Ids)).data<float>().ToArray());
        using (no_grad()) Assert.Equal(expected, TokenRowsFunction.Lookup(trained, tensor(Ids)).data<float>().ToArray());
        Assert.Equal(expected, TokenRowsFunction.Lookup(trained, tensor(Ids).to(ScalarType.Int32)).data<float>().ToArray());
    }

    // Σ over positions i with Ids[i] = r of upstream[i], for every table row r, in float64, one row at a time.
    private static Tensor RowSums(Tensor upstream)
    {
        var sums = new double[Count, Dim];
        var values = upstream.contiguous().data<double>().ToArray();
        for (int i = 0; i < Ids.Length; i++)
            for (int j = 0; j < Dim; j++) sums[Ids[i], j] += values[i * Dim + j];
        var flat = new double[Count * Dim];
        Buffer.BlockCopy(sums, 0, flat, 0, flat.Length * sizeof(double));
        return tensor(flat, new[] { Count, Dim });
    }
}
