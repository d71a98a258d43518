using System;
using TorchSharp;
using TorchSharp.Modules;
using PeftGen.Inference;
using PeftGen.Precision;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A base weight stored as a float tensor: float32 (trainable for full fine-tuning), a 16-bit dtype (bfloat16 or
/// float16: half the bytes, frozen), or float64 for references. Its <see cref="Parameter"/> is registered on the
/// owning <see cref="LoraLinear"/> as <c>weight</c>, so it appears in the state dict under the checkpoint's key.
/// </summary>
/// <remarks>
/// The product runs in the input's dtype, which is the scope's compute dtype when a
/// <see cref="ComputePrecision"/> scope chose one (the projection casts its input first): a base already stored in
/// that dtype is used as stored, with no per-call copy; a base of another dtype is cast per call (differentiably).
/// </remarks>
public sealed class FloatBaseWeight : BaseWeight
{
    private Parameter parameter;

    private FloatBaseWeight(Parameter parameter)
        : base(parameter.shape[0], parameter.shape[1])
        => this.parameter = parameter;

    /// <summary>
    /// A new weight initialised as <c>torch.nn.Linear</c>'s (Kaiming-uniform, a = √5), frozen.
    /// </summary>
    /// <param name="outFeatures">Rows.</param>
    /// <param name="inFeatures">Columns.</param>
    /// <param name="dtype">The stored dtype (float32, bfloat16, float16 or float64).</param>
    /// <param name="device">Where it lives; the CPU when null.</param>
    public static FloatBaseWeight Create(long outFeatures, long inFeatures, ScalarType dtype, Device? device = null)
    {
        if (!is_floating_point(dtype)) throw new ArgumentException($"A float base weight needs a floating-point dtype, not {dtype}.", nameof(dtype));
        using var _ = no_grad();
        var w = empty(new[] { outFeatures, inFeatures }, dtype: dtype, device: device);
        nn.init.kaiming_uniform_(w, a: Math.Sqrt(5));
        return new FloatBaseWeight(new Parameter(w, requires_grad: false));
    }

    /// <summary>The weight tensor, registered on the projection as <c>weight</c>.</summary>
    public Parameter Parameter => parameter;

    /// <inheritdoc />
    public override Device Device => parameter.device;

    /// <inheritdoc />
    public override ScalarType DType => parameter.dtype;

    /// <inheritdoc />
    public override long StorageBytes => parameter.numel() * parameter.element_size();

    /// <inheritdoc />
    public override bool CanTrain => DType is not (ScalarType.BFloat16 or ScalarType.Float16);

    /// <inheritdoc />
    public override Tensor Dequantize(ScalarType? dtype = null)
    {
        using var _ = no_grad();
        return parameter.detach().to(dtype ?? DType).clone();
    }

    /// <inheritdoc />
    /// <remarks>
    /// Recording gradients with a weight stored in another dtype than the input's (float32 masters under bfloat16
    /// compute), the cast is made again for the backward product instead of being kept from the forward pass
    /// (<see cref="CastLinearFunction"/>).
    /// </remarks>
    internal override Tensor Linear(Tensor input, Tensor? bias)
        => CastLinearFunction.Applies(input, parameter, bias)
            ? CastLinearFunction.Apply(input, parameter, bias)
            : FewRowProduct.Linear(input, InDType(parameter, input.dtype), bias is null ? null : InDType(bias, input.dtype));

    /// <inheritdoc />
    internal override void Load(Tensor weight)
    {
        CheckShape(weight.shape, nameof(weight));
        // copy_ converts on the way in: a weight stored in this dtype goes in as stored, anything else without an extra copy.
        using (no_grad()) parameter.copy_(weight);
    }

    /// <inheritdoc />
    internal override RequantizationReport? Add(Tensor delta, int sign)
    {
        using var alpha = sign.ToScalar();
        using (no_grad()) parameter.add_(delta, alpha: alpha);
        return null;
    }

    /// <inheritdoc />
    internal override void MoveTo(Device device)
    {
        // The parameter is registered on the projection, whose module machinery moves it (see Rebind).
    }

    /// <summary>
    /// Follows the projection's <c>weight</c> parameter after TorchSharp replaced it (a device or dtype move creates a
    /// new parameter and registers it under the same name).
    /// </summary>
    internal void Rebind(Parameter parameter) => this.parameter = parameter;

    /// <summary>Sets whether the weight takes gradients.</summary>
    /// <exception cref="InvalidOperationException">Training a 16-bit base was asked for.</exception>
    internal void SetTrainable(bool trainable)
    {
        if (trainable && !CanTrain)
            throw new InvalidOperationException(
                $"The base weight is stored in {DType} and cannot be trained (training keeps float32 master weights); train LoRA adapters on it, or build the projection in float32.");
        parameter.requires_grad = trainable;
    }

    /// <summary>Wraps an existing parameter (for a base converted by <see cref="WithDType"/>).</summary>
    internal static FloatBaseWeight Of(Parameter parameter) => new(parameter);

    /// <summary>A frozen copy of this weight in <paramref name="dtype"/> (the caller disposes this one).</summary>
    internal FloatBaseWeight WithDType(ScalarType dtype)
    {
        using var _ = no_grad();
        // The detached view and the converted temporary are handles of their own: freed here, not left to the GC. The
        // parameter takes over the tensor it is given, so it gets a copy of its own.
        using var detached = parameter.detach();
        using var converted = detached.to(dtype);
        return new FloatBaseWeight(new Parameter(converted.clone(), requires_grad: false));
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) parameter.Dispose();
    }

    private static Tensor InDType(Tensor tensor, ScalarType dtype) => ComputePrecision.To(tensor, dtype);
}
