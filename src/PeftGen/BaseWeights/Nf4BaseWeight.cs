using System;
using System.Collections.Generic;
using PeftGen.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A base weight stored in 4 bits (NF4 or FP4, bitsandbytes' layout) as an <see cref="Nf4Tensor"/>, frozen. Each call
/// dequantizes it to the compute dtype for the product only (<see cref="QuantizedLinearFunction"/>); it is not a
/// parameter, so a projection's state dict has no <c>weight</c> and the 4-bit state is saved in transformers +
/// bitsandbytes' keys (<see cref="Formats.BitsAndBytes.BitsAndBytesState"/>, under <c>{path}.weight</c>).
/// </summary>
public sealed class Nf4BaseWeight : BaseWeight
{
    private Nf4Tensor tensor;

    /// <summary>Wraps <paramref name="tensor"/> (<c>Out × In</c>), which this weight then owns.</summary>
    /// <exception cref="ArgumentException">The tensor is not two-dimensional.</exception>
    public Nf4BaseWeight(Nf4Tensor tensor)
        : base(Rows(tensor), tensor.Shape[^1])
        => this.tensor = tensor;

    /// <summary>
    /// The 4-bit state of an all-zero weight, allocated directly (no float weight at any point): a projection's base
    /// before a checkpoint fills it. Quantizing zeros gives exactly this state.
    /// </summary>
    /// <param name="outFeatures">Rows.</param>
    /// <param name="inFeatures">Columns.</param>
    /// <param name="options">The 4-bit settings.</param>
    /// <param name="originalDType">The dtype recorded as the weight's original one until a load records the stored dtype.</param>
    /// <param name="device">Where it lives.</param>
    public static Nf4BaseWeight Zeros(long outFeatures, long inFeatures, Quant4BitOptions options, ScalarType originalDType, Device device)
        => new(Nf4Tensor.Zeros(new[] { outFeatures, inFeatures }, options, originalDType, device));

    /// <summary>Quantizes <paramref name="weight"/> (any float dtype, recorded as the original one) with <paramref name="options"/>.</summary>
    public static Nf4BaseWeight Quantize(Tensor weight, Quant4BitOptions options) => new(Nf4Tensor.Quantize(weight, options));

    /// <summary>The 4-bit codes and quantization state.</summary>
    public Nf4Tensor Tensor => tensor;

    /// <summary>The 4-bit settings (code book, block size, double quantization, compute dtype).</summary>
    public Quant4BitOptions Options => tensor.Options;

    /// <summary>
    /// The dtype the weight is dequantized to for the product: the option's, or with <see cref="ComputeDType.Auto"/> the
    /// scope's compute dtype, else bfloat16 on CUDA and float32 elsewhere.
    /// </summary>
    public ScalarType ComputeScalarType => ResolveComputeDType(Options.ComputeDType, Device);

    /// <inheritdoc />
    public override Device Device => tensor.Device;

    /// <inheritdoc />
    public override ScalarType DType => tensor.OriginalDType;

    /// <inheritdoc />
    public override long StorageBytes => tensor.StorageBytes;

    /// <inheritdoc />
    public override bool CanTrain => false;

    /// <inheritdoc />
    public override Tensor Dequantize(ScalarType? dtype = null) => tensor.Dequantize(dtype ?? DType);

    /// <inheritdoc />
    internal override Tensor Linear(Tensor input, Tensor? bias)
    {
        // As bitsandbytes' Linear4bit: compute in the compute dtype, answer in the input's dtype.
        var output = QuantizedLinearFunction.Apply(input, tensor, ComputeScalarType);
        if (bias is not null) output = output.add(bias.to(output.dtype));
        return output.to(input.dtype);
    }

    /// <inheritdoc />
    internal override void Load(Tensor weight)
    {
        CheckShape(weight.shape, nameof(weight));
        // Quantized on its own device, with its own settings, from the dtype it arrives in (recorded as the original
        // dtype), slice by slice; the old state is overwritten only once the new one exists, and keeps its memory.
        using var onDevice = weight.to(Device);
        var quantized = Nf4Tensor.Quantize(onDevice, Options);
        var old = tensor;
        tensor = quantized.MoveInto(old) ?? quantized;
        old.Dispose();
    }

    /// <inheritdoc />
    internal override RequantizationReport Add(Tensor delta, int sign)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var alpha = sign.ToScalar();
        var exact = tensor.Dequantize(ScalarType.Float32).add(delta.to(ScalarType.Float32), alpha: alpha);
        // Quantized from the weight's own dtype, so the state still records the dtype the checkpoint had.
        var requantized = Nf4Tensor.Quantize(exact.to(DType), Options);
        var rounded = requantized.Dequantize(ScalarType.Float32);
        var error = rounded.sub(exact).abs();
        var report = new RequantizationReport(error.max().item<float>(), error.mean().item<float>());
        Replace(requantized);
        return report;
    }

    /// <inheritdoc />
    internal override void MoveTo(Device device)
    {
        if (tensor.Device.ToString() == device.ToString()) return;
        Replace(tensor.To(device));
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) tensor.Dispose();
    }

    internal static ScalarType ResolveComputeDType(ComputeDType computeDType, Device device) => computeDType switch
    {
        ComputeDType.Float32 => ScalarType.Float32,
        ComputeDType.BFloat16 => ScalarType.BFloat16,
        ComputeDType.Float16 => ScalarType.Float16,
        _ => ComputePrecision.Current ?? (device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32),
    };

    private void Replace(Nf4Tensor tensor)
    {
        var old = this.tensor;
        this.tensor = tensor;
        old.Dispose();
    }

    private static long Rows(Nf4Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Shape.Length != 2) throw new ArgumentException($"A base weight is two-dimensional, not [{string.Join(", ", tensor.Shape)}].", nameof(tensor));
        return tensor.Shape[0];
    }
}
