using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace PeftGen.Precision;

/// <summary>
/// <c>y = x · cast(W)ᵀ + cast(b)</c> with gradients, where the weight (and bias) are stored in another dtype than the
/// compute dtype of <c>x</c> (float32 masters under bfloat16 compute): the cast is made for the forward product and
/// made again for the backward one, so the graph keeps the stored weight, which lives anyway, instead of a converted
/// copy of every weight from the forward pass until the backward pass reaches it.
/// </summary>
/// <remarks>
/// <para>Composed of a differentiable cast and <c>linear</c>, autograd saves the converted weight for the input's
/// gradient: two bytes per weight in bfloat16, held at the peak of a step, on top of the float32 weights; for a batch of
/// few rows that is more than every activation, and full fine-tuning of the small configuration in bfloat16 then peaked
/// above float32. Recasting costs one read of the float32 weight per backward pass.</para>
/// <para>Gradients: the input's is <c>gy · cast(W)</c> in the compute dtype; the weight's is <c>gyᵀ · x</c>, a product
/// in the compute dtype (accumulated in float32 by the GEMM, rounded once) converted to the stored dtype, as the
/// cast-then-linear composition gives it; the bias's is the sum of <c>gy</c> over rows, accumulated in float32.</para>
/// <para>Lifetimes follow <see cref="QuantizedLinearFunction"/>: the saved tensors are disposed in backward, and each
/// returned gradient's wrapper is kept per thread until that thread's next call, after native code has copied it.</para>
/// </remarks>
internal sealed class CastLinearFunction : SingleTensorFunction<CastLinearFunction>
{

    /// <inheritdoc />
    public override string Name => nameof(CastLinearFunction);

    /// <summary>
    /// Whether <see cref="Apply"/> is the product to use: gradients are recorded, and the weight must be converted to the
    /// input's floating-point dtype.
    /// </summary>
    internal static bool Applies(Tensor input, Tensor weight, Tensor? bias)
        => is_grad_enabled()
            && (input.requires_grad || weight.requires_grad || (bias?.requires_grad ?? false))
            && input.is_floating_point() && weight.dtype != input.dtype
            && (bias is null || bias.dtype == weight.dtype);

    /// <summary>The product; call only where <see cref="Applies"/>.</summary>
    public static Tensor Apply(Tensor input, Tensor weight, Tensor? bias)
    {
        ReturnedGradients.Release();
        return bias is null ? apply(input, weight) : apply(input, weight, bias);
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var bias = vars.Length > 2 ? (Tensor)vars[2] : null;
        ctx.save_for_backward(new List<Tensor> { input, weight });
        ctx.save_data("hasBias", bias is not null);
        ctx.save_data("inputGrad", input.requires_grad);
        ctx.save_data("weightGrad", weight.requires_grad);
        ctx.save_data("biasGrad", bias?.requires_grad ?? false);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var w = weight.to(input.dtype);
        var b = bias?.to(input.dtype);
        return nn.functional.linear(input, w, b).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        ReturnedGradients.Release();
        var saved = ctx.get_saved_variables();
        bool hasBias = (bool)ctx.get_data("hasBias");
        bool inputGrad = (bool)ctx.get_data("inputGrad");
        bool weightGrad = (bool)ctx.get_data("weightGrad");
        bool biasGrad = (bool)ctx.get_data("biasGrad");
        var input = saved[0];
        var weight = saved[1];
        Tensor? gradInput = null, gradWeight = null, gradBias = null;
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var gy = grad_output.to(input.dtype);
            long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
            if (inputGrad) gradInput = gy.matmul(weight.to(input.dtype)).MoveToOuterDisposeScope();
            if (weightGrad)
            {
                var gy2 = gy.reshape(-1, outFeatures);
                gradWeight = gy2.t().mm(input.reshape(-1, inFeatures)).to(weight.dtype).MoveToOuterDisposeScope();
            }
            if (hasBias && biasGrad) gradBias = gy.reshape(-1, outFeatures).sum(new long[] { 0 }, keepdim: false, type: ScalarType.Float32).to(weight.dtype).MoveToOuterDisposeScope();
        }
        finally
        {
            grad_output.Dispose();
            foreach (var tensor in saved) tensor.Dispose();
        }
        foreach (var gradient in new[] { gradInput, gradWeight, gradBias })
        {
            if (gradient is not null) ReturnedGradients.Keep(gradient);
        }
        var result = new List<Tensor> { gradInput!, gradWeight! };
        if (hasBias) result.Add(gradBias!);
        return result;
    }
}
