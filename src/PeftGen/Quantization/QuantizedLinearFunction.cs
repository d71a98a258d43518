using System;
using System.Collections.Generic;
using TorchSharp;
using PeftGen.Inference;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace PeftGen;

/// <summary>
/// <c>y = x · dequantize(W)ᵀ</c> as a custom autograd function: forward and backward each dequantize the 4-bit weight
/// for the moment they use it, so the graph keeps only a reference to the quantized state, never a dequantized copy.
/// The weight gets no gradient.
/// </summary>
/// <remarks>
/// <para>Lifetimes, from TorchSharp 0.107's <c>AutogradFunction.cs</c> and the native <c>CSharpNode::apply</c>:
/// every tensor handle that crosses the managed/native boundary is a new native <c>at::Tensor</c> owned by a managed
/// wrapper that only a Dispose or a finalizer frees. Left to the garbage collector, a training loop keeps every
/// step's incoming gradients, returned gradients and saved variables alive until a collection runs.</para>
/// <list type="bullet">
/// <item>Nothing is saved with <c>save_for_backward</c> (no native <c>SavedVariable</c>s): the context holds the
/// <see cref="Nf4Tensor"/> and dtypes as plain managed data.</item>
/// <item>The incoming gradient wrapper, created by TorchSharp for the call, is disposed by <see cref="backward"/>
/// once used.</item>
/// <item>The returned gradient cannot be disposed before native code has copied it, which happens after
/// <see cref="backward"/> returns. Its wrapper is kept per thread (<see cref="ReturnedGradients"/>) and disposed at that
/// thread's next call of this function or another of PeftGen's (forward or backward), so at most one call's returned
/// gradients per thread outlive their use.</item>
/// <item>Forward-time wrappers (our output before wrapping, TorchSharp's output cache) are created on the caller's
/// thread inside the caller's dispose scope and die with it; the node itself is released by native code when the
/// graph is freed.</item>
/// </list>
/// </remarks>
internal sealed class QuantizedLinearFunction : SingleTensorFunction<QuantizedLinearFunction>
{

    /// <inheritdoc />
    public override string Name => nameof(QuantizedLinearFunction);

    /// <summary>Applies the function; a plain dequantize-and-matmul when no gradient is needed.</summary>
    public static Tensor Apply(Tensor input, Nf4Tensor weight, ScalarType computeDType)
    {
        ReturnedGradients.Release();
        if (!(is_grad_enabled() && input.requires_grad))
        {
            using var scope = NewDisposeScope();
            using var w = weight.Dequantize(computeDType);
            return FewRowProduct.Linear(input.to(computeDType), w).MoveToOuterDisposeScope();
        }
        return apply(input, weight, computeDType);
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var weight = (Nf4Tensor)vars[1];
        var computeDType = (ScalarType)vars[2];
        ctx.save_data("weight", weight);
        ctx.save_data("computeDType", computeDType);
        ctx.save_data("inputDType", input.dtype);

        using var scope = NewDisposeScope();
        using var w = weight.Dequantize(computeDType);
        return nn.functional.linear(input.to(computeDType), w).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        ReturnedGradients.Release();
        var weight = (Nf4Tensor)ctx.get_data("weight");
        var computeDType = (ScalarType)ctx.get_data("computeDType");
        var inputDType = (ScalarType)ctx.get_data("inputDType");
        Tensor gradInput;
        using (var scope = NewDisposeScope())
        {
            using var w = weight.Dequantize(computeDType);
            gradInput = grad_output.to(computeDType).matmul(w).to(inputDType).MoveToOuterDisposeScope();
        }
        grad_output.Dispose();
        return new List<Tensor> { ReturnedGradients.Keep(gradInput), null!, null! };
    }
}
