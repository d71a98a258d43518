using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A weight stored in 4 bits in bitsandbytes' blockwise layout (NF4 or FP4 code book), resident on one device.
/// </summary>
/// <remarks>
/// <para>Layout (bit-exact with bitsandbytes' CUDA kernels): the weight is flattened row-major and cut into blocks of
/// <see cref="Quant4BitOptions.BlockSize"/> values (the last one may be partial). Each block is scaled by the reciprocal
/// of its float32 absmax and each value gets the code whose decision interval holds it (strict <c>&gt;</c> against
/// bitsandbytes' thresholds). Element 2k goes to the high nibble of byte k, element 2k+1 to the low one; an odd count
/// is padded with the code of 0.0, as bitsandbytes' kernel does.</para>
/// <para>With double quantization the absmax values minus their mean (the offset) are quantized again in blocks of
/// 256 with the signed 8-bit dynamic map (<see cref="CodeBooks.DynamicMap"/>), keeping a float32 absmax per block of
/// 256. The offset is the float32 mean computed by torch on the weight's device, as bitsandbytes computes it.</para>
/// <para>Code books are shared per device (<see cref="CodeBooks"/>); <see cref="StorageBytes"/> counts what this
/// tensor owns.</para>
/// </remarks>
public sealed partial class Nf4Tensor : IDisposable
{
    /// <summary>bitsandbytes' block size for the second-level (absmax) quantization.</summary>
    public const int NestedBlockSize = 256;

    private Tensor _packed;
    private Tensor? _absmax;
    private Tensor? _quantizedAbsmax;
    private Tensor? _nestedAbsmax;
    private bool _disposed;

    private Nf4Tensor(Tensor packed, Tensor? absmax, Tensor? quantizedAbsmax, Tensor? nestedAbsmax, float offset,
        long[] shape, ScalarType originalDType, Quant4BitOptions options)
    {
        _packed = packed;
        _absmax = absmax;
        _quantizedAbsmax = quantizedAbsmax;
        _nestedAbsmax = nestedAbsmax;
        Offset = offset;
        Shape = shape;
        OriginalDType = originalDType;
        Options = options;
        Count = shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>The logical shape of the weight.</summary>
    public long[] Shape { get; }

    /// <summary>Number of weight values.</summary>
    public long Count { get; }

    /// <summary>The dtype the weight had before quantization (written to bitsandbytes' state as <c>dtype</c>).</summary>
    public ScalarType OriginalDType { get; }

    /// <summary>Code book, block size and double quantization.</summary>
    public Quant4BitOptions Options { get; }

    /// <summary>The mean subtracted from the absmax values before their quantization (0 without double quantization).</summary>
    public float Offset { get; }

    /// <summary>Number of first-level blocks.</summary>
    public long BlockCount => (Count + Options.BlockSize - 1) / Options.BlockSize;

    /// <summary>The device all state lives on.</summary>
    public Device Device => Packed.device;

    /// <summary>The packed codes, uint8, <c>ceil(Count/2)</c> bytes.</summary>
    public Tensor Packed => _disposed ? throw new ObjectDisposedException(nameof(Nf4Tensor)) : _packed;

    /// <summary>float32 absmax per block (null with double quantization).</summary>
    public Tensor? Absmax => _absmax;

    /// <summary>uint8 codes of absmax − offset in the dynamic map (null without double quantization).</summary>
    public Tensor? QuantizedAbsmax => _quantizedAbsmax;

    /// <summary>float32 absmax per block of 256 first-level absmax values (null without double quantization).</summary>
    public Tensor? NestedAbsmax => _nestedAbsmax;

    /// <summary>Bytes this tensor owns on its device: packed codes plus the absmax state (code books are shared).</summary>
    public long StorageBytes
        => Packed.NumberOfElements
           + (_absmax?.NumberOfElements * 4 ?? 0)
           + (_quantizedAbsmax?.NumberOfElements ?? 0)
           + (_nestedAbsmax?.NumberOfElements * 4 ?? 0)
           + (Options.DoubleQuant ? sizeof(float) : 0);

    /// <summary>Quantizes a floating-point weight on its own device.</summary>
    public static Nf4Tensor Quantize(Tensor weight, Quant4BitOptions options)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!weight.is_floating_point())
            throw new ArgumentException($"Only floating-point weights can be quantized, got {weight.dtype}.", nameof(weight));
        if (weight.NumberOfElements == 0) throw new ArgumentException("Cannot quantize an empty weight.", nameof(weight));

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = weight.device;
        var n = weight.NumberOfElements;
        var blockSize = options.BlockSize;
        var blocks = (n + blockSize - 1) / blockSize;

        var flat = weight.detach().to(ScalarType.Float32).reshape(-1);
        var padded = PadTo(flat, blocks * blockSize).view(blocks, blockSize);
        var absmax = padded.abs().amax(new long[] { 1 });
        var scaled = padded.mul(absmax.reciprocal().unsqueeze(1)).view(-1);
        // An odd count keeps the code of the 0.0 that bitsandbytes' kernel loads past the end (the padding above).
        var codes = Encode(scaled, options.QuantType, device).narrow(0, 0, (n + 1) / 2 * 2);
        var pairs = codes.view(-1, 2);
        var packed = pairs.select(1, 0).bitwise_left_shift(4).bitwise_or(pairs.select(1, 1)).to(ScalarType.Byte);

        Tensor? plainAbsmax = null, quantizedAbsmax = null, nestedAbsmax = null;
        var offset = 0f;
        if (options.DoubleQuant)
        {
            var mean = absmax.mean();
            offset = mean.item<float>();
            var centered = absmax.sub(mean);
            (quantizedAbsmax, nestedAbsmax) = QuantizeDynamic(centered, device);
        }
        else
        {
            plainAbsmax = absmax;
        }

        var result = new Nf4Tensor(packed.contiguous(), plainAbsmax?.contiguous(), quantizedAbsmax, nestedAbsmax, offset,
            weight.shape.ToArray(), weight.dtype, options);
        result.DetachAll();
        return result;
    }

    /// <summary>
    /// Dequantizes on this tensor's device: <c>code[nibble] × absmax[block]</c> in float32, then cast to <paramref name="dtype"/>.
    /// The caller owns (and disposes) the result.
    /// </summary>
    public Tensor Dequantize(ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = Device;
        var blockSize = Options.BlockSize;
        var blocks = BlockCount;
        var absmax = BlockAbsmax();
        var values = CodeBooks.PairTable(Options.QuantType, device)
            .index_select(0, Packed.to(ScalarType.Int32))
            .view(-1);
        values = PadTo(values, blocks * blockSize);
        var weight = values.view(blocks, blockSize).mul(absmax.unsqueeze(1)).view(-1).narrow(0, 0, Count);
        return weight.to(dtype).view(Shape).MoveToOuterDisposeScope();
    }

    /// <summary>The float32 absmax of every first-level block (dequantized first when double quantization is on).</summary>
    public Tensor BlockAbsmax()
    {
        if (_absmax is not null) return _absmax.alias();
        using var scope = NewDisposeScope();
        var nestedBlocks = _nestedAbsmax!.NumberOfElements;
        var values = CodeBooks.DynamicCode(Device).index_select(0, _quantizedAbsmax!.to(ScalarType.Int64));
        var absmax = PadTo(values, nestedBlocks * NestedBlockSize).view(nestedBlocks, NestedBlockSize)
            .mul(_nestedAbsmax.unsqueeze(1)).view(-1).narrow(0, 0, BlockCount);
        return absmax.add(Offset).MoveToOuterDisposeScope();
    }

    /// <summary>A copy on another device (the same codes and state).</summary>
    public Nf4Tensor To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        using var scope = NewDisposeScope();
        var copy = new Nf4Tensor(Packed.to(device), _absmax?.to(device), _quantizedAbsmax?.to(device), _nestedAbsmax?.to(device),
            Offset, Shape, OriginalDType, Options);
        copy.DetachAll();
        return copy;
    }

    /// <summary>Releases the device memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _packed.Dispose();
        _absmax?.Dispose();
        _quantizedAbsmax?.Dispose();
        _nestedAbsmax?.Dispose();
    }

    private void DetachAll()
    {
        _packed.DetachFromDisposeScope();
        _absmax?.DetachFromDisposeScope();
        _quantizedAbsmax?.DetachFromDisposeScope();
        _nestedAbsmax?.DetachFromDisposeScope();
    }

    /// <summary>4-bit codes (int32) of values already scaled into [-1, 1].</summary>
    private static Tensor Encode(Tensor scaled, QuantType quantType, Device device)
    {
        var nan = scaled.isnan();
        if (quantType == QuantType.Nf4)
        {
            // The number of thresholds strictly below x: bitsandbytes' decision tree, ties to the lower code.
            return bucketize(scaled, CodeBooks.Thresholds(quantType, device), outInt32: true).masked_fill(nan, 0);
        }

        var rank = bucketize(scaled.abs(), CodeBooks.Thresholds(quantType, device), outInt32: true).masked_fill(nan, 0);
        var magnitude = CodeBooks.Fp4Ranks(device).index_select(0, rank.view(-1)).view(rank.shape);
        return magnitude.add(scaled.lt(0).to(ScalarType.Int32).mul(8));
    }

    /// <summary>bitsandbytes' blockwise 8-bit quantization with the dynamic map (blocks of 256, binary search).</summary>
    private static (Tensor Codes, Tensor Absmax) QuantizeDynamic(Tensor values, Device device)
    {
        var n = values.NumberOfElements;
        var blocks = (n + NestedBlockSize - 1) / NestedBlockSize;
        var padded = PadTo(values, blocks * NestedBlockSize).view(blocks, NestedBlockSize);
        var absmax = padded.abs().amax(new long[] { 1 });
        var x = padded.mul(absmax.reciprocal().unsqueeze(1)).view(-1).narrow(0, 0, n);
        var code = CodeBooks.DynamicCode(device);

        var pivot = full(n, 127L, dtype: ScalarType.Int64, device: device);
        var lower = zeros(n, dtype: ScalarType.Int64, device: device);
        var upper = full(n, 255L, dtype: ScalarType.Int64, device: device);
        for (long step = 64; step > 0; step >>= 1)
        {
            var above = x.gt(code.index_select(0, pivot));
            lower = where(above, pivot, lower);
            upper = where(above, upper, pivot);
            pivot = pivot.add(above.to(ScalarType.Int64).mul(2 * step).sub(step));
        }
        upper = upper.masked_fill(upper.eq(255), 254);
        var lowerDistance = x.sub(code.index_select(0, lower)).abs();
        var upperDistance = x.sub(code.index_select(0, upper)).abs();
        var codes = where(lowerDistance.lt(upperDistance), lower, upper).to(ScalarType.Byte);
        return (codes.contiguous(), absmax.contiguous());
    }

    private static Tensor PadTo(Tensor flat, long length)
    {
        var missing = length - flat.NumberOfElements;
        return missing == 0 ? flat : nn.functional.pad(flat, new[] { 0L, missing });
    }
}
