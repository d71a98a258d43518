using System;
using System.Collections.Generic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace PeftGen;

/// <summary>
/// The rows of a trained embedding table for a flat list of token ids (<c>weight.index_select(0, ids)</c>), whose
/// backward hands autograd only the looked-up rows when the table already has a gradient to add them to.
/// </summary>
/// <remarks>
/// <c>index_select</c>'s backward makes a zero-filled gradient of the whole table and adds the rows into it: a fresh
/// table-sized allocation every step (103 MB, page-faulted in, for a 50,257 × 512 float32 table), alive at the peak of the
/// backward pass beside the table's <c>.grad</c>. When the table's <c>.grad</c> is dense (a training loop that zeroes
/// gradients in place, as <see cref="Training.PeftTrainer"/> does), this function returns the rows as a sparse gradient
/// instead (the ids as indices; repeated ids are summed, as <c>index_add</c> sums them), which autograd adds to
/// <c>.grad</c> in place, or, for a table that is also the output head (GPT-2's tied <c>wte</c>), first sums with the
/// head's gradient (into a new table-sized tensor: libtorch accumulates a sparse gradient in place only into
/// <c>.grad</c>). Without a gradient to add to, it returns the dense gradient <c>index_select</c> would, so a table's
/// <c>.grad</c> never becomes sparse.
/// </remarks>
internal sealed class TokenRowsFunction : SingleTensorFunction<TokenRowsFunction>
{
    public override string Name => nameof(TokenRowsFunction);

    /// <summary>
    /// <c>weight.index_select(0, ids)</c> (<paramref name="ids"/> flat, int64 or int32); through this function only
    /// when a gradient will be computed for <paramref name="weight"/>.
    /// </summary>
    public static Tensor Lookup(Parameter weight, Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(ids);
        if (!weight.requires_grad || !is_grad_enabled() || weight.dim() != 2 || ids.dim() != 1) return weight.index_select(0, ids);
        ReturnedGradients.Release();
        return apply(weight, ids);
    }

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var weight = (Parameter)vars[0];
        var ids = (Tensor)vars[1];
        ctx.save_for_backward(new List<Tensor> { ids });
        // The table itself is needed, not a saved copy: its .grad at backward time decides the gradient's layout.
        // (TorchSharp's save_data refuses tensors, so the table travels in a holder.)
        ctx.save_data(nameof(Table), new Table(weight));
        return weight.index_select(0, ids);
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        ReturnedGradients.Release();
        var saved = ctx.get_saved_variables();
        var weight = ((Table)ctx.get_data(nameof(Table))).Weight;
        Tensor gradient;
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var ids = saved[0].to(ScalarType.Int64);
            using var one = 1.0.ToScalar();
            var rows = grad_output.to(weight.dtype);
            gradient = AddsToDenseGradient(weight)
                ? sparse_coo_tensor(ids.unsqueeze(0), rows, weight.shape, dtype: weight.dtype, device: weight.device)
                : zeros(weight.shape, dtype: weight.dtype, device: weight.device).index_add_(0, ids, rows, one);
            gradient.MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var tensor in saved) tensor?.Dispose();
            grad_output.Dispose();
        }
        // No gradient for the ids.
        return new List<Tensor> { ReturnedGradients.Keep(gradient), null! };
    }

    private sealed record Table(Parameter Weight);

    // Whether the table has a dense gradient that autograd will add this one to (so a sparse one never becomes .grad).
    private static bool AddsToDenseGradient(Parameter weight)
    {
        using var grad = weight.grad;
        return grad is not null && !grad.IsInvalid && !grad.is_sparse && grad.dtype == weight.dtype;
    }
}
